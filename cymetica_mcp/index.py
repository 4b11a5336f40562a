"""A compact columnar index of the store's trades, built at start-up and extended on each import.

Trades are held sorted by (user, ts) as one packed 64-bit key per trade, with prefix sums of volume
and profit. Any user's totals over any time range are then two lookups and a subtraction (a
directory read, or a binary search where no directory reaches), so a window's cost follows the users,
never a scan of the trades. Per-bucket figures for the three
bucket sizes come from small rollups (volume, trade count and distinct users per bucket and kind),
kept exact as new trades arrive.

New trades land in a small sorted `delta` run beside the large `main` run (as in an LSM tree), so an
import costs work proportional to the new trades; the delta is merged into main once it grows past
an eighth of it. SQLite stays the truth: the index is rebuilt from it at will.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import sqlite3
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Final

import numpy as np
from numpy.typing import NDArray

from cymetica_mcp.directory import DAY, HOUR, Directory
from cymetica_mcp.exact import exact_sum
from cymetica_mcp.store import Store, chunks, totals
from cymetica_mcp.timeline import Timeline

SHIFT: Final = 34
"""key = user << SHIFT | ts: ts < 2^33 (imports refuse later times), bucket ends < 2^34."""
TS_MASK: Final = (1 << SHIFT) - 1
SIZES: Final = (3_600, 21_600, 86_400)
FLOAT_EXACT: Final = 2**53
INT64_SAFE: Final = totals.LIMIT
DELTA_MIN: Final = 1 << 18
SLICE: Final = 1 << 20
"""Trades taken at a time where a whole run would need many large temporaries (rollups)."""
M_TRIM_THRESHOLD: Final = -1
M_MMAP_THRESHOLD: Final = -3
"""glibc's `mallopt` parameter numbers (malloc.h)."""
DIRECTORIES: Final = ((HOUR, 4_000_000), (6 * HOUR, 6_200_000), (DAY, 8_000_000))
"""(slot width, cell budget) of the main run's directories, finest first; each covers the most
recent slots its budget allows (int32 cells). At 50k users: hourly 80 hours (16 MB), so every
boundary of a 24h dashboard and the partial last hour of every window are column reads; 6-hourly
31 days (25 MB), every start of a 7d dashboard and its previous two windows, and the end of a 30d
dashboard's previous window; daily 160 days (32 MB)."""

TIMELINE_WIDTH: Final = 6 * HOUR
"""The main run's timeline holds the trades of the slots of its directory of this width (31 days at
50k users: 3.3M of 10M trades, 20 MB): every time inside an hourly or 6-hourly slot is then counted
from the trades since the slot's start."""

PARALLEL_TRADES: Final = 750_000
"""From about this many trades a cold dashboard's boundary lookups are long enough (and wait on memory
enough) that a helper thread taking jobs from the same queue pays: measured on 2 cores, the state of
a dashboard takes 10-25% less time at 1M trades (20k users) and 30-45% less at 10M, but 5-80% more
at 20k to 500k trades, where the hand-off costs more than the lookups."""

I64 = NDArray[np.int64]
Kinds = NDArray[np.int8]
Flags = NDArray[np.bool_]
Totals = tuple[list[tuple[I64, I64, I64]], list[Flags]]
"""Per summed span (count, volume, pnl) per user; per marked span whether each user traded in it."""


def _run(jobs: Sequence[Callable[[], None]], *, parallel: bool) -> None:
    """Run the jobs, in order; when `parallel`, the helper thread takes them from the same queue.

    The caller drains the queue too, and does not wait for a helper busy elsewhere: if the helper has
    not started on this queue by the time it is empty, its turn is cancelled."""
    if not parallel or len(jobs) < 2:
        for job in jobs:
            job()
        return
    queue = iter(jobs)
    lock = threading.Lock()

    def drain() -> None:
        while True:
            with lock:
                job = next(queue, None)
            if job is None:
                return
            job()

    helping = _lookup_thread().submit(drain)
    drain()
    if not helping.cancel():
        helping.result()  # it is running a job (or has finished): wait for that one


@functools.cache
def _lookup_thread() -> ThreadPoolExecutor:
    """The one helper thread that takes half of a large run's boundary lookups (numpy releases the
    GIL while it gathers)."""
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="cymetica-lookup")


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


def group_sum(groups: I64, values: I64, n: int) -> I64:
    """Exact per-group integer sums (float accumulation only where every partial sum is exact)."""
    if values.size == 0:
        return np.zeros(n, dtype=np.int64)
    if float(np.abs(values).sum(dtype=np.float64)) < FLOAT_EXACT:
        return np.rint(np.bincount(groups, weights=values, minlength=n)).astype(np.int64)
    out = np.zeros(n, dtype=np.int64)
    np.add.at(out, groups, values)
    return out


def _refuse_overflow(values: I64) -> None:
    """Refuse a column whose running total could overflow 64 bits: |values| summing to INT64_SAFE
    or more (imports refuse trades that would take a store there: `store.totals`)."""
    if values.size:
        largest = max(abs(int(values.min())), abs(int(values.max())))
        if largest * values.size < INT64_SAFE:
            return
        near = float(np.abs(values).sum(dtype=np.float64)) >= INT64_SAFE * (1 - 1e-9)
        if near and exact_sum(np.abs(values)) >= INT64_SAFE:  # exact where the float may err
            raise OverflowError(
                "the store's total volume or |pnl| exceeds 4.6e12 USDC, beyond this engine's exact range"
            )


def _prefix(volume: I64, pnl: I64) -> I64:
    """Rows [0, 0], [v0, p0], [v0+v1, p0+p1], ...: the running sums of both columns side by side,
    so a lookup at one position reads one 16-byte row. Refuses totals that could overflow 64 bits."""
    out = np.zeros((volume.size + 1, 2), dtype=np.int64)
    for column, values in enumerate((volume, pnl)):
        _refuse_overflow(values)
        np.cumsum(values, out=out[1:, column])
    return out


@dataclass(frozen=True, slots=True)
class Run:
    """Trades sorted by key, with prefix sums of their volumes and profits."""

    key: I64
    cum: NDArray[np.int64]
    """Shape (trades + 1, 2): row i holds the volume and pnl sums of the trades before position i."""
    directories: tuple[Directory, ...] = ()
    timeline: Timeline | None = None

    @classmethod
    def of(cls, key: I64, volume: I64, pnl: I64) -> Run:
        """A run of trades (sorted here)."""
        return cls.gathered([key], [volume], [pnl])

    @classmethod
    def gathered(cls, keys: list[I64], volumes: list[I64], pnls: list[I64]) -> Run:
        """A run of trades given in blocks (sorted here). The lists are emptied as they are used, so
        that beside the result there is never more than the blocks, one unsorted and one sorted
        column: reading 10M trades peaks at about half of what sorting three whole columns would."""
        key = np.concatenate(keys)
        keys.clear()
        order = np.argsort(key)  # ties (one user, one second) may come in any order: sums are the same
        key = key[order]
        cum = np.zeros((key.size + 1, 2), dtype=np.int64)
        for column, blocks in enumerate((volumes, pnls)):
            values = np.concatenate(blocks)
            blocks.clear()
            values = values[order]
            _refuse_overflow(values)
            np.cumsum(values, out=cum[1:, column])
            del values
        return cls(key, cum)

    def with_directory(self) -> Run:
        """This run with its directories and timeline, for the large main run that most queries search."""
        built = (Directory.build(self.key, SHIFT, width, cells) for width, cells in DIRECTORIES)
        directories = tuple(d for d in built if d is not None)
        recent = next((d for d in directories if d.width == TIMELINE_WIDTH), None)
        timeline = None if recent is None else Timeline.build(self.key, SHIFT, recent.width, recent.first)
        return replace(self, directories=directories, timeline=timeline)

    def left(self, users: I64, ts: int) -> I64:
        """Per user: the position of their first trade with time >= ts."""
        for directory in self.directories:
            found = directory.left(self.key, users, ts, self.timeline)
            if found is not None:
                return found
        # outside the stored range, so the same answer, never another user's key
        ts = min(max(ts, 0), 1 << (SHIFT - 1))
        return np.searchsorted(self.key, (users << SHIFT) + ts, side="left")

    @classmethod
    def empty(cls) -> Run:
        """A run with no trades."""
        return cls.of(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64))

    @property
    def size(self) -> int:
        """How many trades the run holds."""
        return int(self.key.size)

    def volumes(self) -> I64:
        """Each trade's volume, in key order."""
        return np.diff(self.cum[:, 0])

    def pnls(self) -> I64:
        """Each trade's profit, in key order."""
        return np.diff(self.cum[:, 1])

    def totals(
        self, users: I64, summed: Sequence[tuple[int, int]], marked: Sequence[tuple[int, int]] = ()
    ) -> Totals:
        """Per span (start, end) and user, over the trades with start <= ts <= end: count, volume and
        pnl for each `summed` span; for each `marked` one, only whether there is any (no prefix sums
        read, and no trade beyond the first of one slot per user)."""
        at: dict[int, I64] = {}
        sums: dict[int, NDArray[np.int64]] = {}
        flags: dict[int, Flags] = {}

        def edge(t: int) -> None:  # each distinct boundary is looked up once
            at[t] = self.left(users, t)
            if t in wanted:
                sums[t] = np.take(self.cum, at[t], axis=0)

        def mark(i: int, start: int, end: int) -> None:
            flags[i] = self._traded(users, self.left(users, start), end)

        wanted = {t for start, end in summed for t in (start, end + 1)}
        looked = wanted | {start for start, end in marked if end + 1 in wanted}
        # the ends of windows first: they mostly fall inside a slot and cost the most
        ends = {end + 1 for start, end in summed}
        jobs = [functools.partial(edge, t) for t in sorted(looked, key=lambda t: (t not in ends, t))]
        jobs[len(ends) : len(ends)] = [
            functools.partial(mark, i, start, end)
            for i, (start, end) in enumerate(marked)
            if end + 1 not in wanted
        ]
        _run(jobs, parallel=self.size >= PARALLEL_TRADES)
        found = []
        for start, end in summed:
            inside = sums[end + 1] - sums[start]
            found.append((at[end + 1] - at[start], inside[:, 0], inside[:, 1]))
        traded = [
            at[end + 1] > at[start] if end + 1 in wanted else flags[i]
            for i, (start, end) in enumerate(marked)
        ]
        return found, traded

    def _traded(self, users: I64, first: I64, end: int) -> Flags:
        """Per user: is their trade at position `first` (their first at or after some start) at or
        before `end`? Where the position at end + 1 costs no read of the users' trades, it is
        compared with `first`; otherwise any trade before the start of end's slot is, and within
        that slot, the earliest candidate is the only one to read."""
        if self._counted(end + 1):
            found: Flags = self.left(users, end + 1) > first
            return found
        for directory in self.directories:
            bracket = directory.bracket(users, end + 1)
            if bracket is None:
                continue
            lo, hi = bracket
            earliest = np.maximum(lo, first)
            traded: Flags = lo > first
            check = np.flatnonzero(~traded & (earliest < hi))
            traded[check] = (self.key[earliest[check]] & TS_MASK) <= end
            return traded
        return self.left(users, end + 1) > first

    def _counted(self, ts: int) -> bool:
        """Is every user's position at ts found from directory columns (and the timeline) alone?"""
        for directory in self.directories:
            counted = directory.counted(ts, self.timeline)
            if counted is not None:
                return counted
        return False

    def neighbours(self, key: I64) -> tuple[I64, I64]:
        """For each key: the time of the same user's latest trade at or before it and of the next one
        after it in this run (-1 and 2^SHIFT where there is none). The coarsest directory bounds each
        search to that user's trades of one slot; without one, a binary search per key."""
        if self.directories:
            at = self.directories[-1].right(self.key, key)
        else:
            at = np.searchsorted(self.key, key, side="right")
        user = key >> SHIFT
        before = self.key[np.maximum(at - 1, 0)]
        after = self.key[np.minimum(at, self.size - 1)]
        mine_before = (at > 0) & ((before >> SHIFT) == user)
        mine_after = (at < self.size) & ((after >> SHIFT) == user)
        return np.where(mine_before, before & TS_MASK, -1), np.where(mine_after, after & TS_MASK, 1 << SHIFT)

    def merged(self, other: Run) -> Run:
        """One run holding both runs' trades."""
        if other.size == 0:
            return self
        if self.size == 0:
            return other
        at = np.searchsorted(self.key, other.key, side="right")
        return Run(
            np.insert(self.key, at, other.key),
            _prefix(np.insert(self.volumes(), at, other.volumes()), np.insert(self.pnls(), at, other.pnls())),
        )


class Presence:
    """Did the user of each of some new trades already trade in a given range of an earlier run?

    Asked once per bucket size as the rollups take the new trades, and answered from each trade's
    neighbours in the run (the same user's latest trade at or before it and the next one after it),
    found once per trade and kept for the next bucket size.
    """

    def __init__(self, run: Run, key: I64) -> None:
        self.run = run
        self.key = key
        self.searched = np.zeros(key.size, dtype=np.bool_)
        self.before = np.full(key.size, -1, dtype=np.int64)
        self.after = np.full(key.size, 1 << SHIFT, dtype=np.int64)

    def any_in(self, which: I64, start: I64, end: I64) -> NDArray[np.bool_]:
        """For the trades at positions `which` (each in [start, end)): does their user have a trade
        in the run with start <= ts < end?"""
        need = which[~self.searched[which]]
        if need.size:
            self.before[need], self.after[need] = self.run.neighbours(self.key[need])
            self.searched[need] = True
        found: NDArray[np.bool_] = (self.before[which] >= start) | (self.after[which] < end)
        return found


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

    def plus(self, run: Run, kind: Kinds, counted: Sequence[Presence] = ()) -> Rollup:
        """This rollup with the run's trades added; a user counts once per bucket across all runs
        (`counted`: the run's trades in each run this rollup already holds). A large run is taken a
        slice at a time, so that its temporaries stay small."""
        if run.size == 0:
            return self
        slices = range(0, run.size, SLICE)
        spans = [(int(t.min()), int(t.max())) for t in (run.key[at : at + SLICE] & TS_MASK for at in slices)]
        low = min(first for first, _ in spans) // self.size
        high = max(last for _, last in spans) // self.size + 1
        width = self.volume.shape[1]
        base = min(self.base, low) if width else low
        n = (max(self.base + width, high) if width else high) - base
        vol, trades, users = (np.zeros((2, n), dtype=np.int64) for _ in range(3))
        if width:
            kept = slice(self.base - base, self.base - base + width)
            vol[:, kept], trades[:, kept], users[:, kept] = self.volume, self.trades, self.users
        for at in slices:
            key = run.key[at : at + SLICE]
            user, bucket = key >> SHIFT, (key & TS_MASK) // self.size
            first = np.ones(key.size, dtype=np.bool_)
            first[1:] = (user[1:] != user[:-1]) | (bucket[1:] != bucket[:-1])
            if at:  # the slice's first trade against the previous slice's last
                before = int(run.key[at - 1])
                first[0] = (before >> SHIFT, (before & TS_MASK) // self.size) != (
                    int(user[0]),
                    int(bucket[0]),
                )
            start = bucket * self.size
            for other in counted:  # the user already traded in this bucket in an earlier run
                mine = np.flatnonzero(first)
                if mine.size:
                    first[mine] = ~other.any_in(mine + at, start[mine], start[mine] + self.size)
            # one slot per (kind, bucket): row k of the (2, n) tables, flattened
            slot = kind[user].astype(np.int64) * n + (bucket - base)
            volume = np.diff(run.cum[at : at + key.size + 1, 0])
            vol += group_sum(slot, volume, 2 * n).reshape(2, n)
            trades += np.bincount(slot, minlength=2 * n).reshape(2, n)
            users += np.bincount(slot[first], minlength=2 * n).reshape(2, n)
        return Rollup(self.size, base, vol, trades, users)


def _rollups(runs: tuple[Run, ...], kind: Kinds) -> dict[int, Rollup]:
    """Rollups of every bucket size built from scratch over the runs."""
    result = {}
    for size in SIZES:
        rollup = Rollup.empty(size)
        for i, run in enumerate(runs):
            rollup = rollup.plus(run, kind, [Presence(other, run.key) for other in runs[:i] if other.size])
        result[size] = rollup
    return result


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

    @property
    def trade_count(self) -> int:
        """How many trades the index holds."""
        return self.main.size + self.delta.size

    @classmethod
    def load(cls, store: Store) -> TradeIndex:
        """Build the index from the whole store."""
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
        )
        return start.refreshed(store)

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

    def refreshed(self, store: Store) -> TradeIndex:
        """This index extended with whatever the store committed since it was built."""
        conn = store.connect()
        try:
            conn.execute("PRAGMA cache_size = -2048")  # each page is read once: caching them buys nothing
            conn.execute("BEGIN")  # one read snapshot for the version, the users and the trades
            version = store.data_version(conn)
            if version == self.version:
                return self
            extended = self._extended(conn, version)
        finally:
            conn.close()
        if extended.main is not self.main:
            # a rebuild: once its temporaries and the read's buffers are gone, hand the freed heap
            # back (at 10M trades, about 80 MB that glibc would otherwise keep)
            _return_free_memory()
        return extended

    def _extended(self, conn: sqlite3.Connection, version: int) -> TradeIndex:
        kind, capital, kinds_changed = self._users(conn)
        last = int(conn.execute("SELECT coalesce(max(id), 0) FROM trades").fetchone()[0])
        new = _read_trades(conn, self.last_trade, last)
        main, delta, rollups = self.main, self.delta, self.rollups
        if kinds_changed:
            main, delta = main.merged(delta).merged(new).with_directory(), Run.empty()
            rollups = _rollups((main,), kind)
        elif new.size:
            counted = [Presence(other, new.key) for other in (main, delta) if other.size]
            rollups = {size: r.plus(new, kind, counted) for size, r in rollups.items()}
            delta = delta.merged(new)
            if main.size == 0 or delta.size > max(DELTA_MIN, main.size // 8):
                main, delta = main.merged(delta).with_directory(), Run.empty()
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
        )

    def _users(self, conn: sqlite3.Connection) -> tuple[Kinds, I64, bool]:
        """Kinds and capitals with the users changed since this index's version; did a kind change?"""
        rows = conn.execute("SELECT id, kind, capital_micro FROM users WHERE changed_in > ?", (self.version,))
        users = np.array(rows.fetchall(), dtype=np.int64).reshape(-1, 3)
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


def _read_trades(conn: sqlite3.Connection, after: int, upto: int) -> Run:
    """The trades with after < id <= upto, as a run (from the packed chunks wherever they cover)."""
    keys, volumes, pnls = [], [], []
    for user, ts, volume, pnl in chunks.read_columns(conn, after, upto):
        keys.append((user << SHIFT) + ts)
        volumes.append(volume)
        pnls.append(pnl)
    if not keys:
        return Run.empty()
    return Run.gathered(keys, volumes, pnls)
