"""The dashboard engine: the store's index kept fresh, the metrics computed, recent results cached.

Freshness (CONTRACT.md section 8): every call reads the store's `data_version` (one indexed row), so an
import committed by any process shows in the next dashboard. A live dashboard may be served from the
cache while no import has committed since and it is at most `max_age` seconds old; it then carries the
`timestamp` it was computed for. Historical questions (an explicit `now`) are cached by that instant.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from cymetica_mcp.engine._index import TradeIndex
from cymetica_mcp.engine._metrics import PeriodState, dashboard
from cymetica_mcp.models import Dashboard, Filter, Period
from cymetica_mcp.store import Store

CACHE_ENTRIES: Final = 256
STATE_ENTRIES: Final = 16
COMPUTE_LOCKS: Final = 16
"""Dashboards computed at once are serialised per (filter, period, now) through this many striped locks."""


def system_clock() -> int:
    """The current instant in whole UTC seconds."""
    return int(time.time())


@dataclass(frozen=True, slots=True)
class Result:
    """A dashboard with what it was computed from: the instant, the store version and when."""

    dashboard: Dashboard
    now: int
    data_version: int
    computed_at: str
    cached: bool = False


class Engine:
    """Computes dashboards from a store; safe to call from many threads at once."""

    def __init__(
        self, store: Store, *, clock: Callable[[], int] = system_clock, max_age: float = 1.0
    ) -> None:
        self.store = store
        self.clock = clock
        self.max_age = max_age
        self._index: TradeIndex | None = None
        self._refresh_lock = threading.Lock()
        self._versions = store.versions()
        self._cache: OrderedDict[tuple[Filter, Period, int | None], tuple[float, Result]] = OrderedDict()
        self._states: OrderedDict[tuple[Period, int, Filter], PeriodState] = OrderedDict()
        self._cache_lock = threading.Lock()
        self._compute_locks = tuple(threading.Lock() for _ in range(COMPUTE_LOCKS))

    def close(self) -> None:
        """Release the engine's kept store connection."""
        self._versions.close()

    def data_version(self) -> int:
        """The store's current data version (cheap: one row on a kept connection)."""
        return self._versions.read()

    def index(self) -> TradeIndex:
        """The index, brought up to the store's current version first."""
        version = self.data_version()
        current = self._index
        if current is not None and current.version == version:
            return current
        with self._refresh_lock:
            current = self._index
            if current is None:
                current = TradeIndex.load(self.store)
            elif current.version != version:
                current = current.refreshed(self.store)
            self._index = current
            return current

    def dashboard(self, filter: Filter, period: Period, now: int | None = None) -> Dashboard:
        """The dashboard for (filter, period) at `now` (default: the clock, or a fresh cached one)."""
        return self.result(filter, period, now).dashboard

    def result(self, filter: Filter, period: Period, now: int | None = None) -> Result:
        """Like `dashboard`, with the instant, data version and computation time."""
        index = self.index()
        key = (filter, period, now)
        hit = self._cached(filter, period, index.version, now)
        if hit is not None:
            return hit
        # One computation per key at a time: callers that missed the same expired entry together
        # (a burst of requests when it passes max_age) wait for the first and take its result.
        with self._compute_locks[hash(key) % COMPUTE_LOCKS]:
            hit = self._cached(filter, period, index.version, now)
            if hit is not None:
                return hit
            at = self.clock() if now is None else now
            result = Result(
                dashboard=dashboard(index, self._state(index, period, at, filter), filter),
                now=at,
                data_version=index.version,
                computed_at=datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            )
            with self._cache_lock:
                self._cache[key] = (time.monotonic(), result)
                self._cache.move_to_end(key)
                while len(self._cache) > CACHE_ENTRIES:
                    self._cache.popitem(last=False)
        return result

    def cached(self, filter: Filter, period: Period, version: int, now: int | None = None) -> Result | None:
        """The cached result for (filter, period, now) if it is still servable at data version `version`.

        Memory only (no SQLite, no computation): the caller vouches that `version` is the store's
        current data version. A live result (`now` None) is servable while at most `max_age` old.
        """
        return self._cached(filter, period, version, now)

    def _cached(self, filter: Filter, period: Period, version: int, now: int | None) -> Result | None:
        with self._cache_lock:
            hit = self._cache.get((filter, period, now))
        if hit is None:
            return None
        born, result = hit
        fresh = now is not None or time.monotonic() - born <= self.max_age
        if not fresh or result.data_version != version:
            return None
        return Result(result.dashboard, result.now, result.data_version, result.computed_at, cached=True)

    def _state(self, index: TradeIndex, period: Period, now: int, filter: Filter) -> PeriodState:
        """The activity of the traders of `filter` (or of everyone) for (period, now): kept, moved
        forward by an import, or computed. A population alone is computed only for itself; everyone
        is joined from the two populations where one is kept, so no trader is looked up twice."""
        everyone = self._kept(index, period, now, Filter.ALL)
        if everyone is not None:
            return everyone
        if filter is not Filter.ALL:
            return self._kept(index, period, now, filter) or self._keep(
                PeriodState.of(index, period, now, filter)
            )
        parts = [self._kept(index, period, now, f) for f in (Filter.HUMANS, Filter.AGENTS)]
        if parts == [None, None]:
            return self._keep(PeriodState.of(index, period, now))
        humans, agents = (
            part or PeriodState.of(index, period, now, f)
            for part, f in zip(parts, (Filter.HUMANS, Filter.AGENTS), strict=True)
        )
        return self._keep(PeriodState.joined(humans, agents))

    def _kept(self, index: TradeIndex, period: Period, now: int, held: Filter) -> PeriodState | None:
        """The kept state of `held` for (period, now), moved to the index's version; None if there is
        none or it cannot be moved forward."""
        with self._cache_lock:
            kept = self._states.get((period, now, held))
        state = kept.advanced(index) if kept is not None else None
        return None if state is None else self._keep(state)

    def _keep(self, state: PeriodState) -> PeriodState:
        """Keep the state (the most recent STATE_ENTRIES are kept) and return it."""
        key = (state.period, state.now, state.held)
        with self._cache_lock:
            self._states[key] = state
            self._states.move_to_end(key)
            while len(self._states) > STATE_ENTRIES:
                self._states.popitem(last=False)
        return state


def open_engine(store: Store, now: int | None = None, max_age: float = 1.0) -> Engine:
    """An engine whose clock is fixed at `now` (CYMETICA_NOW) when given, else the system clock."""
    if now is None:
        return Engine(store, max_age=max_age)
    fixed = now
    return Engine(store, clock=lambda: fixed, max_age=max_age)
