"""The trade_ids an import into an empty `trades` has met so far, as 64-bit hashes: what lets that
import build the unique trade_id index once at the end instead of row by row (`PostgresTrades`).

`SeenIds.add` says whether none of a block's trade_ids was met before (in the block or in the blocks
added before it). It is exact in one direction only, which is the one that matters: a trade_id met
before always answers False; a False may also come from two different trade_ids of one hash (about
one chance in 40 million for an import of a million trade_ids, one in 400,000 for ten million), or
from there being too many to keep. The caller then
stops deferring the index (it builds it over the rows so far, which are unique, and meets the rest
row by row, as any import does), so a collision costs time, never a wrong row.

Memory is bounded: a table of 8-byte hashes in buckets of 8 (one cache line), grown by doubling while
it holds more than 4 a bucket on average, up to `MAX_BUCKETS` (128 MiB, then up to 6 a bucket:
some 12.5 million trade_ids), plus the hashes of full buckets' overflow (at most `MAX_OVERFLOW`,
some 20 MB). Past either bound, `add` answers False. While the table doubles, the old one is still
held: 192 MiB for a moment at the last doubling (past 8.4 million trade_ids).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import numpy as np
import numpy.typing as npt

U64 = npt.NDArray[np.uint64]

BUCKET: Final = 8
"""Hashes a bucket holds (8 x 8 bytes: one cache line)."""
FIRST_BUCKETS: Final = 1 << 17
"""8 MiB to start with (zeros: the pages are the system's until written)."""
MAX_BUCKETS: Final = 1 << 21
"""128 MiB of hashes at most (2^21 buckets of 8 x 8 bytes)."""
GROW_AT: Final = 4
"""The table doubles when it would hold more than this many hashes a bucket on average..."""
FULL_AT: Final = 6
"""... and, at its largest, `add` answers False past this many."""
MAX_OVERFLOW: Final = 1 << 18
RESIZE_SLICE: Final = 1 << 16
HASH_BITS: Final = 64
"""How many bits of each trade_id's hash are kept (tests narrow them to meet collisions)."""


def hashed(trade_ids: Sequence[str], bits: int = HASH_BITS) -> U64:
    """A 64-bit hash of each trade_id (Python's own string hash: SipHash, seeded per process), of
    which the low `bits` are kept."""
    hashes = np.fromiter(map(hash, trade_ids), dtype=np.int64, count=len(trade_ids)).view(np.uint64)
    if bits < 64:
        hashes &= np.uint64((1 << bits) - 1)
    return hashes


class SeenIds:
    """The hashes of every trade_id added so far (see the module's text)."""

    def __init__(self, bits: int | None = None) -> None:
        self.bits = HASH_BITS if bits is None else bits
        self.count = 0
        self._shift = 0
        self._keys = np.empty((0, BUCKET), dtype=np.uint64)
        self._overflow: set[int] = set()
        self._resize(FIRST_BUCKETS)

    def add(self, trade_ids: Sequence[str]) -> bool:
        """Add a block's trade_ids; True if none was met before (False: a repeat, a hash met
        before, or too many to keep; what was added is then of no further use)."""
        if not trade_ids:
            return True
        # 0 marks an empty place: a hash of 0 is taken as 1 (one more way to collide)
        hashes = np.sort(np.maximum(hashed(trade_ids, self.bits), np.uint64(1)))
        if len(hashes) > 1 and (hashes[1:] == hashes[:-1]).any():
            return False
        total = self.count + len(hashes)
        while total > GROW_AT * len(self._keys) and len(self._keys) < MAX_BUCKETS:
            self._resize(2 * len(self._keys))
        if total > FULL_AT * len(self._keys):
            return False
        buckets = self._bucket(hashes)
        held = np.take(self._keys, buckets, axis=0)  # one cache line a hash: its bucket, filled from the left
        if (held == hashes[:, None]).any():
            return False
        full = held[:, -1] != 0
        filled = np.where(full, BUCKET, np.argmin(held != 0, axis=1))
        if self._overflow and full.any() and not self._overflow.isdisjoint(hashes[full].tolist()):
            return False
        self._put(hashes, buckets, filled)
        return len(self._overflow) <= MAX_OVERFLOW

    def _bucket(self, hashes: U64) -> npt.NDArray[np.int64]:
        """Each hash's bucket: its top bits (so sorted hashes have sorted buckets)."""
        return (hashes >> np.uint64(self._shift)).astype(np.int64)

    def _put(self, hashes: U64, buckets: npt.NDArray[np.int64], filled: npt.NDArray[np.int64]) -> None:
        """Store sorted, new, distinct `hashes` in their `buckets` (holding `filled` hashes each),
        full buckets' extra ones aside."""
        count = len(hashes)
        order = np.arange(count)
        starts = np.maximum.accumulate(
            np.where(np.concatenate(([True], buckets[1:] != buckets[:-1])), order, 0)
        )
        place = filled + order - starts  # after the bucket's hashes and this block's before it
        fits = place < BUCKET
        np.put(self._keys, (buckets * BUCKET + place)[fits], hashes[fits])
        if not fits.all():
            self._overflow.update(hashes[~fits].tolist())
        self.count += count

    def _resize(self, buckets: int) -> None:
        """The table with `buckets` buckets (more than before), every hash kept moved into it: a
        bucket's hashes go to the buckets its own splits into, so the old table is moved a slice of
        buckets at a time (no copy of every hash at once)."""
        old, aside = self._keys, self._overflow
        self._shift = max(0, self.bits - (buckets.bit_length() - 1))
        self._keys = np.zeros((buckets, BUCKET), dtype=np.uint64)
        self._overflow = set()
        self.count = 0
        for start in range(0, len(old), RESIZE_SLICE):
            part = old[start : start + RESIZE_SLICE]
            held = np.sort(part[part != 0])
            self._put(held, self._bucket(held), np.zeros(len(held), dtype=np.int64))
        if aside:  # full buckets' extra hashes: placed like a block's
            held = np.sort(np.fromiter(aside, dtype=np.uint64, count=len(aside)))
            buckets_of = self._bucket(held)
            taken = np.take(self._keys, buckets_of, axis=0)
            full = taken[:, -1] != 0
            self._put(held, buckets_of, np.where(full, BUCKET, np.argmin(taken != 0, axis=1)))
