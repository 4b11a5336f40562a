"""Period -> window and bucket arithmetic (pure functions over whole UTC seconds).

See CONTRACT.md section 2: buckets are aligned to multiples of their size since the Unix epoch,
the current window is [start, now] (both ends included) and its last bucket is partial.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from cymetica_mcp.models import Period

LAST_INSTANT: Final = 2**33
"""Instants are whole UTC seconds in [0, 2^33): 1970 to 2242 (the index packs user and time in 64 bits)."""
HOUR: Final = 3_600
DAY: Final = 86_400


@dataclass(frozen=True, slots=True)
class Spec:
    """The shape of a period: its length P, bucket size b and bucket count n."""

    length: int
    bucket: int
    buckets: int


SPECS: Final[dict[Period, Spec]] = {
    Period.H24: Spec(length=DAY, bucket=HOUR, buckets=24),
    Period.D7: Spec(length=7 * DAY, bucket=6 * HOUR, buckets=28),
    Period.D30: Spec(length=30 * DAY, bucket=DAY, buckets=30),
}


@dataclass(frozen=True, slots=True)
class Window:
    """A closed interval [start, end] of UTC seconds, split into `count` buckets of `size` seconds."""

    start: int
    end: int
    size: int
    count: int

    def bucket_starts(self) -> list[int]:
        """The start of every bucket, oldest first."""
        return [self.start + i * self.size for i in range(self.count)]

    def shifted(self, seconds: int) -> Window:
        """The same window moved back by `seconds`."""
        return Window(self.start - seconds, self.end - seconds, self.size, self.count)


def current_window(period: Period, now: int) -> Window:
    """W = [floor(now / b) * b - (n - 1) * b, now]."""
    spec = SPECS[period]
    start = (now // spec.bucket) * spec.bucket - (spec.buckets - 1) * spec.bucket
    return Window(start, now, spec.bucket, spec.buckets)


def windows(period: Period, now: int) -> tuple[Window, Window, Window]:
    """W, W' (shifted back by P) and W'' (shifted back by 2P)."""
    w = current_window(period, now)
    p = SPECS[period].length
    return w, w.shifted(p), w.shifted(2 * p)


def iso(ts: int) -> str:
    """Whole UTC seconds as ISO 8601 with a trailing Z: 2026-03-20T12:00:00Z."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_instant(text: str) -> int:
    """An ISO 8601 instant with an explicit offset -> whole UTC seconds (fractions dropped).

    Raises ValueError with a message naming what is accepted.
    """
    try:
        parsed = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"not an ISO 8601 time: {text!r} (expected e.g. 2026-03-20T12:34:56Z)") from None
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise ValueError(f"time without a UTC offset: {text!r} (add Z or +00:00)")
    seconds = int(parsed.replace(microsecond=0).timestamp())
    if not 0 <= seconds < LAST_INSTANT:
        raise ValueError(f"time out of range: {text!r} (accepted: 1970-01-01T00:00:00Z to 2242-03-16)")
    return seconds
