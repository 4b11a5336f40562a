"""A per-user day directory over a run of trades sorted by (user, ts).

`table[u, k]` is the position of user u's first trade on or after the start of day `first_day + k`.
A position at a day boundary is then one lookup, and a position inside a day only looks at that
user's trades of that one day, so the cost of a window follows the users and the days, not the
trades. The directory covers the most recent days of the run (as many as `MAX_CELLS` allows); a
time outside it is answered by a plain binary search.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
from numpy.typing import NDArray

DAY: Final = 86_400
MAX_CELLS: Final = 8_000_000
"""Users x days held at most (32 MB as int32): 50k users get 160 days."""
MIN_DAYS: Final = 8
_SLICE: Final = 1 << 20

I64 = NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class DayDirectory:
    """Positions of each user's first trade at each day start, for days first_day .. first_day+days."""

    shift: int
    first_day: int
    days: int
    complete: bool
    """True when no trade is older than first_day (earlier times are then answered too)."""
    table: NDArray[np.signedinteger]
    """Shape (days + 1, users + 1): row k holds every user's position at the start of day first_day + k."""

    @classmethod
    def build(cls, key: I64, shift: int) -> DayDirectory | None:
        """The directory of a sorted key array; None when it is empty or too wide to be worth it."""
        if key.size == 0:
            return None
        mask = (1 << shift) - 1
        rows = (
            int(key[-1] >> shift) + 2
        )  # the last row stands for users beyond the run: every position is the end
        first_data_day, last_day = int((key & mask).min()) // DAY, int((key & mask).max()) // DAY
        days = min(MAX_CELLS // rows, last_day - first_data_day + 1)
        if days < MIN_DAYS and days < last_day - first_data_day + 1:
            return None
        first_day = last_day - days + 1
        # bin 0: before first_day; bin j (1..days): day first_day + j - 1; bin days + 1: later (empty).
        # Counted a slice at a time, so the temporaries stay small however many trades there are.
        counts = np.zeros(rows * (days + 2), dtype=np.int64)
        for at in range(0, key.size, _SLICE):
            part = key[at : at + _SLICE]
            day_bin = np.clip((part & mask) // DAY - first_day + 1, 0, days + 1)
            counts += np.bincount((part >> shift) * (days + 2) + day_bin, minlength=counts.size)
        grid = counts.reshape(rows, days + 2)
        starts = np.zeros(rows, dtype=np.int64)
        np.cumsum(grid.sum(axis=1)[:-1], out=starts[1:])
        # row k: the trades before day first_day + k are those of bins 0 .. k; stored day-major so that
        # one day (what every lookup reads, for many users) is contiguous
        dtype = np.int32 if key.size < 2**31 else np.int64
        table: NDArray[np.signedinteger] = np.ascontiguousarray(
            (starts[:, None] + np.cumsum(grid, axis=1)[:, : days + 1]).T, dtype=dtype
        )
        return cls(shift, first_day, days, first_day <= first_data_day, table)

    def left(self, key: I64, users: I64, ts: int) -> I64 | None:
        """For each user, the position of its first trade with time >= ts; None outside the directory."""
        day, into = divmod(ts, DAY)
        column = day - self.first_day
        rows = np.minimum(users, self.table.shape[1] - 1)
        if column < 0:
            return self._column(rows, 0) if self.complete else None
        if column >= self.days:
            return self._column(rows, self.days)
        lo = self._column(rows, column)
        if into == 0:
            return lo
        length = self._column(rows, column + 1) - lo
        total = int(length.sum())
        if total == 0:
            return lo
        # positions of the users' trades of that day, concatenated: a cumulative sum of steps that
        # jumps at each user's first trade of the day
        some = length > 0
        starts, span = lo[some], length[some]
        step = np.ones(total, dtype=np.int64)
        first = np.cumsum(span) - span
        step[first[1:]] = starts[1:] - (starts[:-1] + span[:-1]) + 1
        step[0] = starts[0]
        before = (key[np.cumsum(step)] & ((1 << self.shift) - 1)) < ts
        seen = np.zeros(total + 1, dtype=np.int64)
        np.cumsum(before, out=seen[1:])
        inside = np.zeros(users.size, dtype=np.int64)
        inside[some] = seen[first + span] - seen[first]
        return lo + inside

    def _column(self, rows: I64, column: int) -> I64:
        """Column `column` of the table for these rows, as 64-bit positions."""
        found: I64 = self.table[column][rows].astype(np.int64)
        return found
