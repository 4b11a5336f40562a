"""Per-bucket figures for the three bucket sizes: volume, trade count and distinct users per bucket
and kind, kept exact as new trades arrive (a user counts once per bucket across every run)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
from numpy.typing import NDArray

from cymetica_mcp.engine._runs import I64, SHIFT, TS_MASK, Kinds, Run, group_sum

SIZES: Final = (3_600, 21_600, 86_400)
SLICE: Final = 1 << 20
"""Trades taken at a time where a whole run would need many large temporaries (rollups)."""


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

    def since(self, cutoff: int) -> Rollup:
        """Without the buckets that start before `cutoff` (a multiple of every bucket size)."""
        drop = min(max(cutoff // self.size - self.base, 0), self.volume.shape[1])
        if drop == 0:
            return self
        return Rollup(
            self.size,
            self.base + drop,
            self.volume[:, drop:].copy(),
            self.trades[:, drop:].copy(),
            self.users[:, drop:].copy(),
        )

    @property
    def nbytes(self) -> int:
        """Bytes of its arrays."""
        return int(self.volume.nbytes + self.trades.nbytes + self.users.nbytes)

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


def rollups_of(runs: tuple[Run, ...], kind: Kinds) -> dict[int, Rollup]:
    """Rollups of every bucket size built from scratch over the runs."""
    result = {}
    for size in SIZES:
        rollup = Rollup.empty(size)
        for i, run in enumerate(runs):
            rollup = rollup.plus(run, kind, [Presence(other, run.key) for other in runs[:i] if other.size])
        result[size] = rollup
    return result
