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
        wait = self.wait(now)
        if wait == 0.0:
            self.tokens -= 1.0
        return wait

    def give(self) -> None:
        """Return a token taken before (never beyond the capacity)."""
        self.tokens = min(self.capacity, self.tokens + 1.0)

    def wait(self, now: float) -> float:
        """The seconds until a token is available (0.0: now), taking none."""
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        return 0.0 if self.tokens >= 1.0 else (1.0 - self.tokens) / self.rate

    @property
    def full(self) -> bool:
        """Whether the bucket holds all it can (as of its last update)."""
        return self.tokens >= self.capacity


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
            retry_after=retry_after,
        )


class FailureThrottle:
    """Failed credentials cost whoever sends them: each client address may fail `per_address` times a
    minute (as a burst too), and all addresses together `total` times. An address past its budget, or
    one that failed before while the total budget is spent, is refused with `rate_limited` before its
    credential is checked, so an attack costs the store no query. Thread-safe.

    A check of an address that failed before holds one failure's worth of both budgets while its
    credential is checked (`check` returns True): concurrent attempts cannot all pass on the last token
    before any of them has failed. `failed` keeps what was held, `release` gives it back.
    """

    def __init__(
        self, per_address: int, total: int, *, clock: Callable[[], float] = time.monotonic, kept: int = 10_000
    ) -> None:
        if per_address < 1 or total < 1:
            raise ValueError("the failure budgets must be at least 1")
        self.per_address = per_address
        self.clock = clock
        self.kept = kept
        now = clock()
        self._total = TokenBucket(total / 60.0, total, total, now)
        self._addresses: dict[str, TokenBucket] = {}
        self._lock = threading.Lock()

    def check(self, address: str) -> bool:
        """Raise `rate_limited` if `address` may not try a credential now; True when a failure's worth
        of its budgets is now held for this attempt (settle it with `failed` or `release`)."""
        now = self.clock()
        with self._lock:
            bucket = self._addresses.get(address)
            if bucket is None:
                return False
            wait = bucket.wait(now) or self._total.wait(now)
            if not wait:
                bucket.take(now)
                self._total.take(now)
                return True
        seconds = max(1, math.ceil(wait))
        raise AnalyticsError(
            "rate_limited",
            f"too many refused credentials from this address (at most {self.per_address} a minute); "
            f"retry in {seconds} s",
            retry_after=seconds,
        )

    def failed(self, address: str, held: bool = False) -> None:
        """Count a refused credential from `address` (already taken when `held`)."""
        if held:
            return
        now = self.clock()
        with self._lock:
            bucket = self._addresses.get(address)
            if bucket is None:
                if len(self._addresses) >= self.kept:
                    self._forget(now)
                bucket = self._addresses[address] = TokenBucket(
                    self.per_address / 60.0, self.per_address, self.per_address, now
                )
            bucket.take(now)
            self._total.take(now)

    def release(self, address: str) -> None:
        """Give back what `check` held for an attempt that did not fail."""
        with self._lock:
            bucket = self._addresses.get(address)
            if bucket is not None:
                bucket.give()
            self._total.give()

    def _forget(self, now: float) -> None:
        """Drop the addresses whose budget has refilled (they owe nothing); all of them if none has."""
        refilled = [
            address for address, bucket in self._addresses.items() if bucket.wait(now) == 0.0 and bucket.full
        ]
        for address in refilled or list(self._addresses):
            del self._addresses[address]
