"""A compact columnar index of the store's trades, built at start-up and extended on each import.

Trades are held in runs sorted by (user, ts) with prefix sums (`_runs`), and per-bucket figures in
rollups (`_rollups`). New trades land in a small sorted `delta` run beside the large `main` run (as
in an LSM tree), so an import costs work proportional to the new trades; the delta is merged into
main once it grows past an eighth of it. The store stays the truth: the index is rebuilt from it at
will, read through the store's `Snapshot`.

With a horizon (seconds), the index holds only the trades since its `cutoff`: a day boundary at least
`horizon` before the earlier of its newest trade and the clock. The cutoff moves forward each time main
is rebuilt (so memory follows the trading rate over the horizon, not the whole history); older trades
stay in the store, and a question that needs them is refused by the engine (`Engine.result`).
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Final

import numpy as np

from cymetica_mcp.engine._rollups import SIZES, Presence, Rollup, rollups_of
from cymetica_mcp.engine._runs import I64, SHIFT, Kinds, Run, Totals
from cymetica_mcp.store import Snapshot, Store

DELTA_MIN: Final = 1 << 18
DAY: Final = 86_400
M_TRIM_THRESHOLD: Final = -1
M_MMAP_THRESHOLD: Final = -3
M_ARENA_MAX: Final = -8
"""glibc's `mallopt` parameter numbers (malloc.h)."""


@functools.cache
def one_arena() -> None:
    """Make every thread of this process allocate from glibc's main heap (once per process; before
    the threads that compute dashboards start).

    glibc gives each thread that allocates its own arena (up to 8 per core), and each keeps the
    memory its thread freed: a server's dashboards run on worker threads and the engine's lookup
    helper, so at 100M trades (temporaries of a few MB per 200k traders) the arenas held about 14 MB
    more than one heap does. The threads allocate little besides numpy's arrays (Python's small
    objects have an allocator of their own), so they hardly ever wait on the one heap's lock."""
    with contextlib.suppress(OSError, AttributeError):  # not glibc: nothing to do
        ctypes.CDLL("libc.so.6").mallopt(M_ARENA_MAX, 1)


def _return_free_memory() -> None:
    """Hand freed heap pages back to the OS after a large build (glibc keeps them otherwise)."""
    with contextlib.suppress(OSError, AttributeError):  # not glibc: nothing to do
        ctypes.CDLL("libc.so.6").malloc_trim(0)


@functools.cache
def _steady_heap() -> None:
    """Fix glibc's heap thresholds (once per process), so that a dashboard's temporaries (a few MB)
    reuse heap pages instead of faulting fresh ones in on every computation.

    glibc adapts both thresholds to the sizes a process happens to have freed: after some ways of
    building the index it returned the top of the heap to the OS after every dashboard, which then
    took 530 page faults (a fifth of its time at 10M trades) to get it back. Fixed values end that:
    arrays of 16 MB and more are mapped on their own (and unmapped when freed), and up to 64 MB free at
    the top of the heap is kept for the next computation; `_return_free_memory` still hands everything
    back after a rebuild."""
    with contextlib.suppress(OSError, AttributeError):  # not glibc: nothing to do
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(M_MMAP_THRESHOLD, 16 << 20)
        libc.mallopt(M_TRIM_THRESHOLD, 64 << 20)


@dataclass(frozen=True, slots=True)
class TradeIndex:
    """An immutable snapshot of the store at `version`; `refreshed()` returns a newer one."""

    version: int
    previous_version: int
    latest: Run
    last_trade: int
    kind: Kinds
    capital: I64
    main: Run
    delta: Run
    traders: tuple[I64, I64, I64]
    rollups: dict[int, Rollup]
    horizon: int = 0
    """Seconds of history kept before the newest trade (or the clock, if earlier); 0: all of it."""
    cutoff: int = 0
    """The oldest instant whose trades the index holds (0: every trade)."""

    @property
    def trade_count(self) -> int:
        """How many trades the index holds."""
        return self.main.size + self.delta.size

    @property
    def nbytes(self) -> int:
        """Bytes of the index's arrays (runs, directories, timeline, users, traders, rollups)."""
        users = self.kind.nbytes + self.capital.nbytes + sum(t.nbytes for t in self.traders)
        rollups = sum(r.nbytes for r in self.rollups.values())
        return int(self.main.nbytes + self.delta.nbytes + users + rollups)

    @classmethod
    def load(cls, store: Store, *, horizon: int = 0, now: int | None = None) -> TradeIndex:
        """Build the index from the whole store (with a horizon: its trades since the cutoff)."""
        if horizon < 0:
            raise ValueError(f"horizon {horizon} s: must be 0 (all history) or more")
        _steady_heap()
        empty = np.zeros(0, dtype=np.int64)
        start = cls(
            version=-1,
            previous_version=-1,
            latest=Run.empty(),
            last_trade=0,
            kind=np.zeros(0, dtype=np.int8),
            capital=empty,
            main=Run.empty(),
            delta=Run.empty(),
            traders=(empty, empty, empty),
            rollups={size: Rollup.empty(size) for size in SIZES},
            horizon=horizon,
        )
        return start.refreshed(store, now=now)

    def totals(
        self, users: I64, summed: Sequence[tuple[int, int]], marked: Sequence[tuple[int, int]] = ()
    ) -> Totals:
        """Per span (start, end) and user, over their trades with start <= ts <= end: count, volume
        and pnl for each `summed` span; for each `marked` one, whether they traded in it."""
        sums, traded = self.main.totals(users, summed, marked)
        if self.delta.size:
            more, more_traded = self.delta.totals(users, summed, marked)
            sums = [(a[0] + b[0], a[1] + b[1], a[2] + b[2]) for a, b in zip(sums, more, strict=True)]
            traded = [a | b for a, b in zip(traded, more_traded, strict=True)]
        return sums, traded

    def refreshed(self, store: Store, now: int | None = None) -> TradeIndex:
        """This index extended with whatever the store committed since it was built (`now`: the
        clock, which bounds how far a horizon's cutoff may move)."""
        with store.snapshot() as snapshot:  # one read for the version, the users and the trades
            version = snapshot.data_version()
            if version == self.version:
                return self
            extended = self._extended(snapshot, version, now)
        if extended.main is not self.main:
            # a rebuild: once its temporaries and the read's buffers are gone, hand the freed heap
            # back (at 10M trades, about 80 MB that glibc would otherwise keep)
            _return_free_memory()
        return extended

    def _extended(self, snapshot: Snapshot, version: int, now: int | None) -> TradeIndex:
        kind, capital, kinds_changed = self._users(snapshot)
        last = snapshot.last_trade_id()
        new = _read_trades(snapshot, self.last_trade, last).since(self.cutoff)
        main, delta, rollups, cutoff = self.main, self.delta, self.rollups, self.cutoff
        if kinds_changed:
            main, delta = main.merged(delta).merged(new), Run.empty()
            cutoff = self._cutoff(main, now)
            main = main.since(cutoff).with_directory()
            rollups = rollups_of((main,), kind)
        elif new.size:
            counted = [Presence(other, new.key) for other in (main, delta) if other.size]
            rollups = {size: r.plus(new, kind, counted) for size, r in rollups.items()}
            delta = delta.merged(new)
            if main.size == 0 or delta.size > max(DELTA_MIN, main.size // 8):
                main, delta = main.merged(delta), Run.empty()
                cutoff = self._cutoff(main, now)
                main = main.since(cutoff).with_directory()
                rollups = {size: r.since(cutoff) for size, r in rollups.items()}
        traders = self.traders
        if kinds_changed or _any_new(traders[2], new.key >> SHIFT):
            everyone = np.union1d(traders[2], new.key >> SHIFT)
            kinds = kind[everyone]
            traders = (everyone[kinds == 0], everyone[kinds == 1], everyone)
        return replace(
            self,
            version=version,
            previous_version=self.version,
            latest=new,
            last_trade=last,
            kind=kind,
            capital=capital,
            main=main,
            delta=delta,
            traders=traders,
            rollups=rollups,
            cutoff=cutoff,
        )

    def _cutoff(self, run: Run, now: int | None) -> int:
        """Where the horizon starts for a main run rebuilt from `run`: a day boundary `horizon`
        before the earlier of its newest trade and `now`, never earlier than the cutoff so far."""
        if self.horizon == 0:
            return 0
        newest = run.newest()
        latest = newest if now is None else min(now, newest)
        return max(self.cutoff, (latest - self.horizon) // DAY * DAY)

    def _users(self, snapshot: Snapshot) -> tuple[Kinds, I64, bool]:
        """Kinds and capitals with the users changed since this index's version; did a kind change?"""
        users = snapshot.users_changed_since(self.version)
        if users.size == 0:
            return self.kind, self.capital, False
        size = max(self.kind.size, int(users[:, 0].max()) + 1)
        kind = np.full(size, -1, dtype=np.int8)
        kind[: self.kind.size] = self.kind
        capital = np.zeros(size, dtype=np.int64)
        capital[: self.capital.size] = self.capital
        ids = users[:, 0]
        old = kind[ids]
        changed = bool(np.any((old >= 0) & (old != users[:, 1])))
        kind[ids] = users[:, 1]
        capital[ids] = users[:, 2]
        return kind, capital, changed


def _any_new(known: I64, users: I64) -> bool:
    """Is any of `users` missing from the sorted array `known`?"""
    if users.size == 0:
        return False
    at = np.minimum(np.searchsorted(known, users), max(known.size - 1, 0))
    return known.size == 0 or bool(np.any(known[at] != users))


def _read_trades(snapshot: Snapshot, after: int, upto: int) -> Run:
    """The trades with after < id <= upto, as a run (from the packed chunks wherever they cover)."""
    keys, volumes, pnls = [], [], []
    for user, ts, volume, pnl in snapshot.trade_columns(after, upto):
        keys.append((user << SHIFT) + ts)
        volumes.append(volume)
        pnls.append(pnl)
    if not keys:
        return Run.empty()
    return Run.gathered(keys, volumes, pnls)
