"""A compact columnar index of the store's trades, built at start-up and extended on each import.

Trades are held sorted by (user, ts) as one packed 64-bit key per trade, with prefix sums of volume
and profit. Any user's totals over any time range are then two binary searches and two subtractions,
so a window costs O(users · log trades), never a scan of the trades. Per-bucket figures for the three
bucket sizes come from small rollups (volume, trade count and distinct users per bucket and kind),
kept exact as new trades arrive. SQLite stays the truth: the index is rebuilt from it at will.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, replace
from typing import Final

import numpy as np
from numpy.typing import NDArray

from cymetica_mcp.store import Store

SHIFT: Final = 34
"""key = user << SHIFT | ts: ts < 2^33 (imports refuse later times), bucket ends < 2^34."""
SIZES: Final = (3_600, 21_600, 86_400)
FLOAT_EXACT: Final = 2**53
INT64_SAFE: Final = 2**62
_CHUNK: Final = 250_000

I64 = NDArray[np.int64]


def group_sum(groups: I64, values: I64, n: int) -> I64:
    """Exact per-group integer sums (float accumulation only where every partial sum is exact)."""
    if values.size == 0:
        return np.zeros(n, dtype=np.int64)
    if float(np.abs(values).sum(dtype=np.float64)) < FLOAT_EXACT:
        return np.rint(np.bincount(groups, weights=values, minlength=n)).astype(np.int64)
    out = np.zeros(n, dtype=np.int64)
    np.add.at(out, groups, values)
    return out


@dataclass(frozen=True, slots=True)
class Rollup:
    """Per-bucket totals for one bucket size, split by kind (row 0 humans, row 1 agents)."""

    size: int
    base: int
    volume: I64
    trades: I64
    users: I64

    @classmethod
    def empty(cls, size: int) -> Rollup:
        """A rollup with no buckets."""
        zero = np.zeros((2, 0), dtype=np.int64)
        return cls(size, 0, zero, zero.copy(), zero.copy())

    def window(self, first: int, count: int) -> tuple[I64, I64, I64]:
        """(volume, trades, users), each shaped (2, count), for buckets first .. first+count-1."""
        out = np.zeros((3, 2, count), dtype=np.int64)
        lo, hi = max(first, self.base), min(first + count, self.base + self.volume.shape[1])
        if lo < hi:
            src = slice(lo - self.base, hi - self.base)
            dst = slice(lo - first, hi - first)
            out[0, :, dst] = self.volume[:, src]
            out[1, :, dst] = self.trades[:, src]
            out[2, :, dst] = self.users[:, src]
        return out[0], out[1], out[2]

    def plus(self, bucket: I64, kind: I64, volume: I64, first: NDArray[np.bool_]) -> Rollup:
        """A new rollup with these trades added (`first` marks a user's first trade in its bucket)."""
        if bucket.size == 0:
            return self
        width = self.volume.shape[1]
        base = min(self.base, int(bucket.min())) if width else int(bucket.min())
        top = max(self.base + width, int(bucket.max()) + 1) if width else int(bucket.max()) + 1
        n = top - base
        vol = np.zeros((2, n), dtype=np.int64)
        trades = np.zeros((2, n), dtype=np.int64)
        users = np.zeros((2, n), dtype=np.int64)
        if width:
            at = slice(self.base - base, self.base - base + width)
            vol[:, at], trades[:, at], users[:, at] = self.volume, self.trades, self.users
        slot = bucket - base
        for k in (0, 1):
            mine = kind == k
            vol[k] += group_sum(slot[mine], volume[mine], n)
            trades[k] += np.bincount(slot[mine], minlength=n)
            users[k] += np.bincount(slot[mine & first], minlength=n)
        return Rollup(self.size, base, vol, trades, users)


@dataclass(frozen=True, slots=True)
class TradeIndex:
    """An immutable snapshot of the store at `version`; `refreshed()` returns a newer one."""

    version: int
    last_trade: int
    kind: NDArray[np.int8]
    capital: I64
    key: I64
    cum_volume: I64
    cum_pnl: I64
    traders: tuple[I64, I64, I64]
    rollups: dict[int, Rollup]

    @property
    def trade_count(self) -> int:
        """How many trades the index holds."""
        return int(self.key.size)

    @classmethod
    def load(cls, store: Store) -> TradeIndex:
        """Build the index from the whole store."""
        empty = np.zeros(0, dtype=np.int64)
        start = cls(
            version=-1,
            last_trade=0,
            kind=np.zeros(0, dtype=np.int8),
            capital=empty,
            key=empty,
            cum_volume=np.zeros(1, dtype=np.int64),
            cum_pnl=np.zeros(1, dtype=np.int64),
            traders=(empty, empty, empty),
            rollups={size: Rollup.empty(size) for size in SIZES},
        )
        return start.refreshed(store)

    def refreshed(self, store: Store) -> TradeIndex:
        """This index extended with whatever the store committed since it was built."""
        conn = store.connect()
        try:
            conn.execute("BEGIN")  # one read snapshot for the version, the users and the trades
            version = store.data_version(conn)
            if version == self.version:
                return self
            return self._extended(conn, version)
        finally:
            conn.close()

    def _extended(self, conn: sqlite3.Connection, version: int) -> TradeIndex:
        users = np.array(
            conn.execute(
                "SELECT id, kind, capital_micro FROM users WHERE changed_in > ?", (self.version,)
            ).fetchall(),
            dtype=np.int64,
        ).reshape(-1, 3)
        kind, capital = self.kind, self.capital
        kinds_changed = False
        if users.size:
            size = max(kind.size, int(users[:, 0].max()) + 1)
            kind = np.full(size, -1, dtype=np.int8)
            kind[: self.kind.size] = self.kind
            capital = np.zeros(size, dtype=np.int64)
            capital[: self.capital.size] = self.capital
            ids = users[:, 0]
            old = kind[ids]
            kinds_changed = bool(np.any((old >= 0) & (old != users[:, 1])))
            kind[ids] = users[:, 1]
            capital[ids] = users[:, 2]
        last = int(conn.execute("SELECT coalesce(max(id), 0) FROM trades").fetchone()[0])
        new = _read_trades(conn, self.last_trade, last)
        new_key = (new[:, 0] << SHIFT) + new[:, 1]
        order = np.argsort(new_key, kind="stable")
        new_key, new_vol, new_pnl = new_key[order], new[order, 2], new[order, 3]

        rollups = self.rollups
        if not kinds_changed and new_key.size:
            rollups = {
                size: self._rollup_plus(rollup, new_key, new_vol, kind) for size, rollup in rollups.items()
            }
        key, cum_volume, cum_pnl = _merge(self, new_key, new_vol, new_pnl)
        index = replace(
            self,
            version=version,
            last_trade=last,
            kind=kind,
            capital=capital,
            key=key,
            cum_volume=cum_volume,
            cum_pnl=cum_pnl,
            rollups=rollups,
        )
        if kinds_changed:
            index = replace(index, rollups=index._rollups_from_scratch())
        if kinds_changed or new_key.size:
            index = replace(index, traders=index._traders())
        return index

    def _rollup_plus(self, rollup: Rollup, new_key: I64, new_vol: I64, kind: NDArray[np.int8]) -> Rollup:
        """Add a batch of new trades (sorted by key) to a rollup, counting only new (user, bucket) pairs."""
        user, ts = new_key >> SHIFT, new_key & ((1 << SHIFT) - 1)
        bucket = ts // rollup.size
        first = np.ones(new_key.size, dtype=np.bool_)
        first[1:] = (user[1:] != user[:-1]) | (bucket[1:] != bucket[:-1])
        if self.key.size:
            base = user << SHIFT
            lo = np.searchsorted(self.key, base + bucket * rollup.size, side="left")
            hi = np.searchsorted(self.key, base + (bucket + 1) * rollup.size, side="left")
            first &= hi == lo
        return rollup.plus(bucket, kind[user].astype(np.int64), new_vol, first)

    def _rollups_from_scratch(self) -> dict[int, Rollup]:
        volume = self.trade_volumes()
        blank = replace(self, key=np.zeros(0, dtype=np.int64))
        return {size: blank._rollup_plus(Rollup.empty(size), self.key, volume, self.kind) for size in SIZES}

    def trade_volumes(self) -> I64:
        """Each trade's volume, in key order."""
        return np.diff(self.cum_volume)

    def _traders(self) -> tuple[I64, I64, I64]:
        """The sorted ids of users with trades: humans, agents, all."""
        users = np.unique(self.key >> SHIFT)
        kinds = self.kind[users]
        return users[kinds == 0], users[kinds == 1], users


def _read_trades(conn: sqlite3.Connection, after: int, upto: int) -> I64:
    """Trades with after < id <= upto as an (n, 4) array of user, ts, volume, pnl."""
    cursor = conn.execute(
        "SELECT user_ref, ts, volume_micro, pnl_micro FROM trades WHERE id > ? AND id <= ?", (after, upto)
    )
    parts = []
    while rows := cursor.fetchmany(_CHUNK):
        parts.append(np.array(rows, dtype=np.int64))
    if not parts:
        return np.zeros((0, 4), dtype=np.int64)
    return np.concatenate(parts) if len(parts) > 1 else parts[0]


def _merge(index: TradeIndex, new_key: I64, new_vol: I64, new_pnl: I64) -> tuple[I64, I64, I64]:
    """The index's key and prefix sums with the new (sorted) trades merged in."""
    if new_key.size == 0:
        return index.key, index.cum_volume, index.cum_pnl
    at = np.searchsorted(index.key, new_key, side="right")
    key = np.insert(index.key, at, new_key)
    volume = np.insert(np.diff(index.cum_volume), at, new_vol)
    pnl = np.insert(np.diff(index.cum_pnl), at, new_pnl)
    return key, _prefix(volume), _prefix(pnl)


def _prefix(values: I64) -> I64:
    """[0, v0, v0+v1, ...], refusing totals that could overflow 64-bit integers."""
    if float(np.abs(values).sum(dtype=np.float64)) >= INT64_SAFE:
        raise OverflowError(
            "the store's total volume or |pnl| exceeds 4.6e12 USDC, beyond this engine's exact range"
        )
    out = np.zeros(values.size + 1, dtype=np.int64)
    np.cumsum(values, out=out[1:])
    return out
