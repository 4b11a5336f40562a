"""Per-key token buckets on a monotonic clock: REST calls and WebSocket messages draw from them."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass

from cymetica_mcp.errors import AnalyticsError


@dataclass(slots=True)
class TokenBucket:
    """`capacity` tokens, refilled at `rate` per second; a request takes one."""

    rate: float
    capacity: float
    tokens: float
    updated: float

    def take(self, now: float) -> float:
        """Take a token: 0.0 when granted, else the seconds until one is available."""
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate


class RateLimiter:
    """One token bucket per key (an API key id), thread-safe, with an injectable monotonic clock."""

    def __init__(self, per_minute: float, burst: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        if per_minute <= 0 or burst < 1:
            raise ValueError("the rate must be positive and the burst at least 1")
        self.rate = per_minute / 60.0
        self.burst = burst
        self.clock = clock
        self._buckets: dict[Hashable, TokenBucket] = {}
        self._lock = threading.Lock()

    def retry_after(self, key: Hashable) -> int:
        """Take a token for `key`: 0 when granted, else whole seconds to wait (at least 1)."""
        now = self.clock()
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                bucket = self._buckets[key] = TokenBucket(self.rate, self.burst, self.burst, now)
            wait = bucket.take(now)
        return 0 if wait == 0.0 else max(1, math.ceil(wait))

    def check(self, key: Hashable) -> None:
        """Take a token for `key` or raise `rate_limited` saying when to retry."""
        wait = self.retry_after(key)
        if wait:
            raise RateLimited(wait, self.rate * 60.0, self.burst)


class RateLimited(AnalyticsError):
    """`rate_limited` with the seconds to wait (sent as `Retry-After`)."""

    def __init__(self, retry_after: int, per_minute: float, burst: int) -> None:
        super().__init__(
            "rate_limited",
            f"too many requests for this API key: the limit is {per_minute:g} per minute "
            f"(bursts of {burst}); retry in {retry_after} s",
        )
        self.retry_after = retry_after
