"""The recent trades of a run in time order: who traded between two instants, without a search per user.

A directory gives each user's position at the start of a slot; a time inside the slot is that
position plus the user's trades between the slot's start and that time. Counting those from the
trades of that stretch of time (a few thousand, read in order) costs far less than reading each
user's trades of the slot where they lie in the run (one cache miss per user at millions of trades).
The timeline holds the trades of the most recent slots (those of the 6-hourly directory): each one's
user and its seconds into its slot, sorted by time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
from numpy.typing import NDArray

I64 = NDArray[np.int64]
_SLICE: Final = 1 << 20


@dataclass(frozen=True, slots=True)
class Timeline:
    """The trades of slots first, first + 1, ... of `width` seconds, sorted by time."""

    width: int
    first: int
    starts: I64
    """Shape (slots + 1,): where each slot's trades begin in `user` and `offset` (the last: the end)."""
    user: NDArray[np.int32]
    offset: NDArray[np.uint16]
    """Each trade's seconds into its slot."""

    @classmethod
    def build(cls, key: I64, shift: int, width: int, first: int) -> Timeline:
        """The timeline of the trades of a sorted key array (user << shift | ts) from slot `first` on."""
        if not 0 < width <= 1 << 16:
            raise ValueError(f"slot width {width} s: a timeline holds offsets below 2^16 s")
        mask, since = (1 << shift) - 1, first * width
        times, users = [], []
        for at in range(0, key.size, _SLICE):  # a slice at a time: the temporaries stay small
            part = key[at : at + _SLICE]
            recent = part[(part & mask) >= since]
            times.append(recent & mask)
            users.append((recent >> shift).astype(np.int32))
        ts = np.concatenate(times)
        order = np.argsort(ts, kind="stable")
        ts = ts[order]
        slot = ts // width
        slots = int(slot[-1]) - first + 1 if ts.size else 0
        starts = np.searchsorted(slot, np.arange(first, first + slots + 1)).astype(np.int64)
        offset = (ts - slot * width).astype(np.uint16)
        return cls(width, first, starts, np.concatenate(users)[order], offset)

    @property
    def nbytes(self) -> int:
        """Bytes of its arrays."""
        return int(self.starts.nbytes + self.user.nbytes + self.offset.nbytes)

    def covers(self, ts: int) -> bool:
        """Does the timeline hold every trade at or after `ts`?"""
        return ts >= self.first * self.width

    def counts(self, rows: I64, start: int, end: int, users: int) -> I64:
        """Per row (a user id below `users`): how many of its trades have start <= ts < end
        (`start` within the timeline)."""
        part = self.user[self._position(start) : self._position(end)]
        found: I64 = np.bincount(part, minlength=users)[rows]
        return found

    def _position(self, ts: int) -> int:
        """How many of the timeline's trades are before `ts`."""
        slot = ts // self.width - self.first
        if slot >= self.starts.size - 1:
            return int(self.starts[-1])
        lo, hi = int(self.starts[slot]), int(self.starts[slot + 1])
        into = ts - (slot + self.first) * self.width
        return lo + int(np.searchsorted(self.offset[lo:hi], into, side="left"))
