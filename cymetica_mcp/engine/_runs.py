"""Runs of trades: sorted by (user, ts) as one packed 64-bit key per trade, with prefix sums of volume
and profit. Any user's totals over any time range are then two lookups and a subtraction (a
directory read, or a binary search where no directory reaches), so a window's cost follows the users,
never a scan of the trades.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Final

import numpy as np
from numpy.typing import NDArray

from cymetica_mcp.engine._directory import DAY, HOUR, Directory
from cymetica_mcp.engine._timeline import Timeline
from cymetica_mcp.exact import exact_sum
from cymetica_mcp.store import TOTAL_LIMIT

SHIFT: Final = 34
"""key = user << SHIFT | ts: ts < 2^33 (imports refuse later times), bucket ends < 2^34."""
TS_MASK: Final = (1 << SHIFT) - 1
FLOAT_EXACT: Final = 2**53
INT64_SAFE: Final = TOTAL_LIMIT
_SLICE: Final = 1 << 20
DIRECTORIES: Final = ((HOUR, 16_000_000), (6 * HOUR, 25_000_000), (DAY, 20_000_000))
"""(slot width, cell budget) of the main run's directories, finest first; each covers the most
recent slots its budget allows (cells of about 2.25 bytes: 16-bit offsets from anchors, `Directory`),
and at most MAX_SLOTS of them. Up to 200k users (100M trades) that is: hourly 80 hours, so every
boundary of a 24h dashboard and the partial last hour of every window are column reads; 6-hourly 31
days, every start of a 7d dashboard and its previous two windows, and the end of a 30d dashboard's
previous window; daily every day of 95 (at 200k users about 140 MB in all, of which a served index
keeps resident only the columns its dashboards read). More users: fewer slots for the same budget."""
MAX_SLOTS: Final = {HOUR: 80, 6 * HOUR: 124}
"""Slots a directory of that width holds at most: beyond them a coarser one answers as well."""

TIMELINE_WIDTH: Final = 6 * HOUR
TIMELINE_TRADES: Final = 8_500_000
"""The main run's timeline holds the trades of the most recent slots of its directory of width
TIMELINE_WIDTH, as many slots as keep it within this many trades (51 MB): at 10M trades the whole
31 days of that directory (3.3M trades), at 100M its last 8 days. Every time inside an hourly or
6-hourly slot it holds is then counted from the trades since the slot's start."""

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
        built = (
            Directory.build(self.key, SHIFT, width, cells, MAX_SLOTS.get(width))
            for width, cells in DIRECTORIES
        )
        directories = tuple(d for d in built if d is not None)
        recent = next((d for d in directories if d.width == TIMELINE_WIDTH), None)
        timeline = None
        if recent is not None:
            skip = int(np.argmax(recent.trades_since() <= TIMELINE_TRADES))  # the end always fits
            timeline = Timeline.build(self.key, SHIFT, recent.width, recent.first + skip)
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

    def since(self, cutoff: int) -> Run:
        """The trades at or after `cutoff` (this run itself when none is older), without directories:
        build them after trimming."""
        if self.size == 0 or cutoff <= 0:
            return self
        keep = (self.key & TS_MASK) >= cutoff
        if bool(keep.all()):
            return self
        return Run(self.key[keep], _prefix(self.volumes()[keep], self.pnls()[keep]))

    def newest(self) -> int:
        """The time of the run's latest trade (-1 when it has none)."""
        if self.size == 0:
            return -1
        return max(int((self.key[at : at + _SLICE] & TS_MASK).max()) for at in range(0, self.size, _SLICE))

    @property
    def nbytes(self) -> int:
        """Bytes of the run's arrays: keys, running sums, directories and timeline."""
        tables = sum(d.nbytes for d in self.directories)
        timeline = 0 if self.timeline is None else self.timeline.nbytes
        return int(self.key.nbytes + self.cum.nbytes + tables + timeline)

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
