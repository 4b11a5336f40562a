"""A per-user time directory over a run of trades sorted by (user, ts).

`table[k, u]` is the position of user u's first trade at or after the start of slot `first + k`,
where a slot is `width` seconds (an hour, a day) aligned to the epoch. A position at a slot boundary
is then one lookup, and a position inside a slot only looks at that user's trades of that one slot,
so the cost of a window follows the users and the slots, not the trades. A directory covers the
most recent slots of the run (as many as its cell budget allows); a time before it is answered by a
coarser directory or a plain binary search.

The table is held compact: every `every`-th row (an anchor) as full positions, and each row as 16-bit
offsets from its anchor (a user's trades since the anchor's slot), where no user has 2^16 trades or
more within `every` slots; the widest `every` that holds is chosen, and where none does the rows are
full positions (`every` 1, no offsets). A lookup adds the anchor's cell and the offset: the same
positions in about half the memory.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
from numpy.typing import NDArray

from cymetica_mcp.engine._timeline import Timeline

HOUR: Final = 3_600
DAY: Final = 86_400
MIN_SLOTS: Final = 8
SCAN_LIMIT: Final = 64
"""A query whose user has more trades than this in its slot is answered by a binary search instead."""
_SLICE: Final = 1 << 20
EVERY: Final = (16, 8, 4, 2)
"""Anchor spacings tried, widest first."""
OFFSET_LIMIT: Final = 1 << 16
"""Offsets are stored as uint16: each must be below this."""

I64 = NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class Directory:
    """Positions of each user's first trade at each slot start, for slots first .. first+slots."""

    shift: int
    width: int
    first: int
    slots: int
    complete: bool
    """True when no trade is older than slot `first` (earlier times are then answered too)."""
    table: NDArray[np.signedinteger]
    """Shape (slots // every + 1, users + 1): row j holds every user's position at the start of slot
    first + j * every (the anchors)."""
    offsets: NDArray[np.uint16] | None = None
    """Shape (slots + 1, users + 1): row k holds every user's position at the start of slot first + k
    less the anchor's (row k // every of `table`); None when `every` is 1."""
    every: int = 1

    @classmethod
    def build(
        cls, key: I64, shift: int, width: int, max_cells: int, max_slots: int | None = None
    ) -> Directory | None:
        """The directory of a sorted key array at `width` seconds a slot, holding at most `max_cells`
        positions; None when the array is empty or the budget is too small to be worth it."""
        if key.size == 0:
            return None
        mask = (1 << shift) - 1
        rows = int(key[-1] >> shift) + 2  # the last row stands for users beyond the run: the end
        first_data, last = int((key & mask).min()) // width, int((key & mask).max()) // width
        slots = min(max_cells // rows, last - first_data + 1, max_slots or max_cells)
        if slots < MIN_SLOTS and slots < last - first_data + 1:
            return None
        first = last - slots + 1
        # bin 0: before slot `first`; bin j (1..slots): slot first + j - 1; bin slots + 1: later (empty).
        # Counted a slice at a time, so the temporaries stay small however many trades there are.
        counts = np.zeros(rows * (slots + 2), dtype=np.int64)
        for at in range(0, key.size, _SLICE):
            part = key[at : at + _SLICE]
            slot_bin = np.clip((part & mask) // width - first + 1, 0, slots + 1)
            counts += np.bincount((part >> shift) * (slots + 2) + slot_bin, minlength=counts.size)
        grid = counts.reshape(rows, slots + 2)
        starts = np.zeros(rows, dtype=np.int64)
        np.cumsum(grid.sum(axis=1)[:-1], out=starts[1:])
        # row k: the trades before slot first + k are those of bins 0 .. k; stored slot-major so that
        # one slot (what every lookup reads, for many users) is contiguous
        full = (starts[:, None] + np.cumsum(grid, axis=1)[:, : slots + 1]).T
        del grid, counts
        dtype = np.int32 if key.size < 2**31 else np.int64
        every, offsets = _compact(full)
        table: NDArray[np.signedinteger] = np.ascontiguousarray(full[::every], dtype=dtype)
        return cls(shift, width, first, slots, first <= first_data, table, offsets, every)

    @property
    def nbytes(self) -> int:
        """Bytes of its arrays."""
        return int(self.table.nbytes + (0 if self.offsets is None else self.offsets.nbytes))

    def trades_since(self) -> I64:
        """Per slot first + k (k = 0 .. slots): how many trades of the run are at or after its start."""
        anchors = self.table.sum(axis=1, dtype=np.int64)
        totals = anchors[np.arange(self.slots + 1) // self.every]
        if self.offsets is not None:
            totals = totals + self.offsets.sum(axis=1, dtype=np.int64)
        found: I64 = totals[-1] - totals
        return found

    @property
    def rows(self) -> int:
        """Users + 1: the last row stands for every user beyond the run."""
        return int(self.table.shape[1])

    def left(self, key: I64, users: I64, ts: int, timeline: Timeline | None = None) -> I64 | None:
        """For each user, the position of its first trade with time >= ts; None outside the directory.

        Inside a slot: the position at its start plus the user's trades of the slot before ts,
        counted from the `timeline` where it holds them, else read from the user's trades."""
        slot, into = divmod(ts, self.width)
        column = slot - self.first
        rows = np.minimum(users, self.rows - 1)
        if column < 0:
            return self._column(rows, 0) if self.complete else None
        if column >= self.slots:
            return self._column(rows, self.slots)
        lo = self._column(rows, column)
        if into == 0:
            return lo
        if timeline is not None and timeline.covers(ts - into):
            return lo + timeline.counts(rows, ts - into, ts, self.rows)
        length = self._column(rows, column + 1) - lo
        # the user's trades of that slot earlier than ts: keys below (user, ts)
        return lo + count_below(key, lo, length, (users << self.shift) + ts)

    def counted(self, ts: int, timeline: Timeline | None) -> bool | None:
        """None where `left` answers nothing for ts; else whether it answers from columns alone (and
        the timeline's count inside a slot), reading no user's trades."""
        slot, into = divmod(ts, self.width)
        column = slot - self.first
        if column < 0:
            return True if self.complete else None
        if column >= self.slots or into == 0:
            return True
        return timeline is not None and timeline.covers(ts - into)

    def bracket(self, users: I64, ts: int) -> tuple[I64, I64] | None:
        """Per user: the positions of their first trade at or after the start of ts's slot and of the
        next slot (so their trades of that slot lie between); None outside the directory."""
        column = ts // self.width - self.first
        if column < 0 and not self.complete:
            return None
        rows = np.minimum(users, self.rows - 1)
        low, high = min(max(column, 0), self.slots), min(max(column + 1, 0), self.slots)
        return self._column(rows, low), self._column(rows, high)

    def right(self, key: I64, queries: I64) -> I64:
        """For each query key (user << shift | ts): how many keys of the run are <= it, as
        `np.searchsorted(key, queries, side="right")` gives, reading only that user's trades of that
        one slot (a binary search where there are more than SCAN_LIMIT of them, or where the query is
        before a directory that is not complete), so the cost is bounded per query."""
        users = queries >> self.shift
        rows = np.minimum(users, self.rows - 1)
        column = (queries & ((1 << self.shift) - 1)) // self.width - self.first
        lo = self._cells(np.clip(column, 0, self.slots), rows)
        hi = self._cells(np.clip(column + 1, 0, self.slots), rows)
        length = hi - lo
        # a user with many trades in one slot (a busy bot) is searched, not scanned: many queries on
        # the same long segment would otherwise read it once each
        searched = length > SCAN_LIMIT
        if not self.complete:
            searched |= column < 0
        found: I64 = lo + count_below(key, lo, np.where(searched, 0, length), queries + 1)
        where = np.flatnonzero(searched)
        found[where] = np.searchsorted(key, queries[where], side="right")
        return found

    def _column(self, rows: I64, column: int) -> I64:
        """Every given user's position at the start of slot first + `column`, as 64-bit positions."""
        found: I64 = self.table[column // self.every][rows].astype(np.int64)
        if self.offsets is not None:
            found += self.offsets[column][rows]
        return found

    def _cells(self, columns: I64, rows: I64) -> I64:
        """Per query i: user rows[i]'s position at the start of slot first + columns[i]."""
        width = self.rows
        found: I64 = self.table.reshape(-1).take((columns // self.every) * width + rows).astype(np.int64)
        if self.offsets is not None:
            found += self.offsets.reshape(-1).take(columns * width + rows)
        return found


def _compact(full: I64) -> tuple[int, NDArray[np.uint16] | None]:
    """The widest anchor spacing whose offsets (each row less its anchor row) are all below
    OFFSET_LIMIT, with those offsets; (1, None) when none is."""
    for every in EVERY:
        if every >= full.shape[0]:
            continue
        anchors = full[(np.arange(full.shape[0]) // every) * every]
        offsets = full - anchors
        del anchors
        if int(offsets.max(initial=0)) < OFFSET_LIMIT:
            return every, np.ascontiguousarray(offsets, dtype=np.uint16)
    return 1, None


def count_below(key: I64, lo: I64, length: I64, bound: I64) -> I64:
    """Per entry i: how many of key[lo[i] : lo[i] + length[i]] are below bound[i] (the segments are
    short runs of one user's trades, read once each: the cost follows their total length)."""
    out = np.zeros(lo.size, dtype=np.int64)
    some = np.flatnonzero(length > 0)  # of a boolean: several times faster than of the counts
    if some.size == 0:
        return out
    starts, span = lo[some], length[some]
    total = int(span.sum())
    # the segments' positions, concatenated: a cumulative sum of steps that jumps at each segment start
    step = np.ones(total, dtype=np.int64)
    first = np.cumsum(span) - span
    step[first[1:]] = starts[1:] - (starts[:-1] + span[:-1]) + 1
    step[0] = starts[0]
    below = key[np.cumsum(step)] < np.repeat(bound[some], span)
    seen = np.zeros(total + 1, dtype=np.int64)
    np.cumsum(below, out=seen[1:])
    out[some] = seen[first + span] - seen[first]
    return out
