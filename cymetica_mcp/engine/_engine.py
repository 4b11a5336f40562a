"""The dashboard engine: the store's index kept fresh, the metrics computed, recent results cached.

Freshness (CONTRACT.md section 8): every call reads the store's `data_version` (one indexed row), so an
import committed by any process shows in the next dashboard. A live dashboard may be served from the
cache while no import has committed since and it is at most `max_age` seconds old; it then carries the
`timestamp` it was computed for. Historical questions (an explicit `now`) are cached by that instant.
"""

from __future__ import annotations

import fcntl
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Final

from cymetica_mcp.engine import _kept
from cymetica_mcp.engine._index import TradeIndex, one_arena
from cymetica_mcp.engine._metrics import PeriodState, dashboard
from cymetica_mcp.errors import AnalyticsError
from cymetica_mcp.models import Dashboard, Filter, Period
from cymetica_mcp.store import Store
from cymetica_mcp.windows import SPECS, iso, windows

log = logging.getLogger(__name__)

CACHE_ENTRIES: Final = 256
STATE_ENTRIES: Final = 16
COMPUTE_LOCKS: Final = 16
"""Dashboards computed at once are serialised per (filter, period, now) through this many striped locks."""
DAY: Final = 86_400
LONGEST_NEED: Final = max(3 * spec.length for spec in SPECS.values())
"""90 days: a 30d dashboard reads W, W' and W'' (each 30 days, W'' starting at most this far back)."""
HORIZON_DAYS: Final = 120
"""The default horizon: the longest dashboard's three windows (90 days) and 30 days of margin, so a
30d dashboard may be asked `as_of` up to 30 days back (a 24h one up to 117 days back)."""


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
        self,
        store: Store,
        *,
        clock: Callable[[], int] = system_clock,
        max_age: float = 1.0,
        horizon: int = 0,
        keep_index: bool = False,
    ) -> None:
        """`horizon`: seconds of trading history the index holds (0: all; else at least 90 days);
        `keep_index`: start from the index kept beside the store and keep it there (`_kept`)."""
        if horizon and horizon < LONGEST_NEED:
            raise ValueError(f"horizon {horizon} s: 0 (all history) or at least {LONGEST_NEED} s (90 days)")
        one_arena()
        self.store = store
        self.clock = clock
        self.max_age = max_age
        self.horizon = horizon
        self.keep_index = keep_index and store.index_path is not None
        self.load_seconds: float | None = None
        """How long the first index took to be ready (mapped or built), once it is."""
        self.load_source = ""
        """Where the first index came from: 'kept' (the file beside the store) or 'store' (the rows)."""
        self.computed = 0
        """Dashboards computed (not served from the cache) so far."""
        self.served_cached = 0
        """Dashboards served from the cache so far."""
        self._writer: threading.Thread | None = None
        self._index: TradeIndex | None = None
        self._refresh_lock = threading.Lock()
        self._versions = store.versions()
        self._cache: OrderedDict[tuple[Filter, Period, int | None], tuple[float, Result]] = OrderedDict()
        self._states: OrderedDict[tuple[Period, int, Filter], PeriodState] = OrderedDict()
        self._cache_lock = threading.Lock()
        self._compute_locks = tuple(threading.Lock() for _ in range(COMPUTE_LOCKS))

    def close(self) -> None:
        """Release the engine's kept store connection (after the index file being written, if any)."""
        writer = self._writer
        if writer is not None:
            writer.join()
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
                current = self._first()
            elif current.version != version:
                before = current
                current = current.refreshed(self.store, now=self.clock())
                if current.main is not before.main:  # main rebuilt: worth keeping
                    self._keep_index(current)
            self._index = current
            return current

    def _first(self) -> TradeIndex:
        """The first index: the kept file mapped and brought up to date, else built from the rows."""
        began = time.perf_counter()
        path = self.store.index_path
        kept = _kept.read(path, self.store, self.horizon) if self.keep_index and path else None
        if kept is not None:
            current = kept.refreshed(self.store, now=self.clock())
            self.load_source = "kept"
            if current.main is not kept.main or current.version > kept.version + 64:
                self._keep_index(current)
        else:
            current = TradeIndex.load(self.store, horizon=self.horizon, now=self.clock())
            self.load_source = "store"
            self._keep_index(current)
        self.load_seconds = time.perf_counter() - began
        log.info(
            "index ready in %.2f s from the %s: %d trades since %s, %.1f MB",
            self.load_seconds,
            "kept file" if kept is not None else "store's rows",
            current.trade_count,
            iso(current.cutoff),
            current.nbytes / 1e6,
        )
        return current

    def _keep_index(self, index: TradeIndex) -> None:
        """Write `index` beside the store on a thread of its own, unless a write is under way (the
        next rebuild of main writes again; a kept file that is behind is brought up to date on open)."""
        if not self.keep_index:
            return
        if self._writer is not None and self._writer.is_alive():
            return
        self._writer = threading.Thread(
            target=keep_index, args=(self.store, index), name="cymetica-keep-index"
        )
        self._writer.start()

    def beyond_horizon(self, index: TradeIndex, period: Period, at: int) -> AnalyticsError | None:
        """The refusal of a dashboard at `at` that needs trades older than the index holds, or None."""
        need = windows(period, at)[2].start
        if need >= index.cutoff:
            return None
        spec = SPECS[period]
        earliest = index.cutoff + 2 * spec.length + (spec.buckets - 1) * spec.bucket
        return AnalyticsError(
            "invalid_as_of",
            f"as_of {iso(at)} is beyond this server's horizon: a {period.value} dashboard at that instant "
            f"needs trades from {iso(need)}, and the server holds the last {self.horizon // DAY} days of "
            f"trades, from {iso(index.cutoff)} on (--horizon-days of serve and mcp); accepted: a {period.value} "
            f"as_of from {iso(earliest)} on, or a server with a longer horizon",
        )

    def dashboard(self, filter: Filter, period: Period, now: int | None = None) -> Dashboard:
        """The dashboard for (filter, period) at `now` (default: the clock, or a fresh cached one)."""
        return self.result(filter, period, now).dashboard

    def result(self, filter: Filter, period: Period, now: int | None = None) -> Result:
        """Like `dashboard`, with the instant, data version and computation time."""
        index = self.index()
        if index.cutoff:
            refusal = self.beyond_horizon(index, period, self.clock() if now is None else now)
            if refusal is not None:
                raise refusal
        key = (filter, period, now)
        hit = self._cached(filter, period, index.version, now)
        if hit is not None:
            self.served_cached += 1
            return hit
        # One computation per key at a time: callers that missed the same expired entry together
        # (a burst of requests when it passes max_age) wait for the first and take its result.
        with self._compute_locks[hash(key) % COMPUTE_LOCKS]:
            hit = self._cached(filter, period, index.version, now)
            if hit is not None:
                self.served_cached += 1
                return hit
            self.computed += 1
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
        hit = self._cached(filter, period, version, now)
        if hit is not None:
            self.served_cached += 1
        return hit

    def loaded(self) -> TradeIndex | None:
        """The index as it is now, without reading the store (None before the first one)."""
        return self._index

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
            for other in self._states.values():  # one trader order shared by the states of a layout
                if other.held is state.held and other.traders is state.traders:
                    if other.users is not state.users:
                        state = replace(state, users=other.users)
                    break
            self._states[key] = state
            self._states.move_to_end(key)
            while len(self._states) > STATE_ENTRIES:
                self._states.popitem(last=False)
        return state


def open_engine(
    store: Store,
    now: int | None = None,
    max_age: float = 1.0,
    horizon_days: int = HORIZON_DAYS,
    keep_index: bool = True,
) -> Engine:
    """A server's engine: its clock fixed at `now` (CYMETICA_NOW) when given, else the system clock;
    the index holds `horizon_days` of trades (0: all) and is kept beside the store."""
    clock = system_clock
    if now is not None:
        fixed = now
        clock = lambda: fixed  # noqa: E731
    return Engine(store, clock=clock, max_age=max_age, horizon=horizon_days * DAY, keep_index=keep_index)


def keep_index(store: Store, index: TradeIndex) -> _kept.KeptInfo | None:
    """Write `index` beside the store, unless another process is writing it or the file there is as
    new; never raises (the file is a cache: a failed write leaves the rows to rebuild from)."""
    path = store.index_path
    if path is None:
        return None
    try:
        with open(path.with_name(path.name + ".lock"), "a") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return None  # another process is writing it
            there = _kept.info(path)
            with store.snapshot() as snapshot:
                fingerprint = snapshot.trade_fingerprint(index.last_trade)
                if (
                    there is not None
                    and there.version >= index.version
                    and there.horizon == index.horizon
                    and snapshot.trade_fingerprint(there.last_trade) == there.fingerprint
                ):
                    return there  # another process kept one as new, of this same history
            began = time.perf_counter()
            _kept.write(index, path, fingerprint)
            log.info(
                "index kept at %s in %.2f s (data version %d)",
                path,
                time.perf_counter() - began,
                index.version,
            )
            return _kept.info(path)
    except Exception:
        log.warning("could not keep the index beside the store at %s", path, exc_info=True)
        return None


def kept_info(store: Store) -> _kept.KeptInfo | None:
    """What the index file beside the store holds, from its header; None if there is none."""
    path = store.index_path
    return None if path is None else _kept.info(path)


def rebuild_index(store: Store, horizon_days: int = HORIZON_DAYS, now: int | None = None) -> _kept.KeptInfo:
    """Build the index from the store's rows and keep it beside the store, whatever is there now."""
    path = store.index_path
    if path is None:
        raise AnalyticsError("invalid_argument", f"the store at {store.location} keeps no index file")
    index = TradeIndex.load(store, horizon=horizon_days * DAY, now=system_clock() if now is None else now)
    with store.snapshot() as snapshot:
        fingerprint = snapshot.trade_fingerprint(index.last_trade)
    _kept.write(index, path, fingerprint)
    found = _kept.info(path)
    if found is None:
        raise AnalyticsError("internal", f"the index written at {path} cannot be read back")
    return found


def prepare_index(
    store: Store, horizon_days: int = HORIZON_DAYS, now: int | None = None
) -> _kept.KeptInfo | None:
    """Make sure a usable index is kept beside the store (rebuilt from the rows if there is none, it
    is of another history or horizon, or ahead of the store), so that processes about to start map
    it instead of each building its own; on this thread, starting none. None: the store keeps none."""
    path = store.index_path
    if path is None:
        return None
    if _kept.read(path, store, horizon_days * DAY) is not None:
        return _kept.info(path)
    return rebuild_index(store, horizon_days, now)


def refresh_index(store: Store, now: int | None = None) -> _kept.KeptInfo | None:
    """Bring the index kept beside the store up to the store's version (after an import), with the
    horizon it was kept with; None when none is kept (the next server builds and keeps one)."""
    kept = kept_info(store)
    if kept is None or store.index_path is None:
        return None
    at = system_clock() if now is None else now
    index = _kept.read(store.index_path, store, kept.horizon)
    if index is None:  # of another history, or ahead: rebuilt from the rows
        return rebuild_index(store, kept.horizon // DAY, at)
    fresh = index.refreshed(store, now=at)
    if fresh.version == kept.version:
        return kept
    with store.snapshot() as snapshot:
        fingerprint = snapshot.trade_fingerprint(fresh.last_trade)
    _kept.write(fresh, store.index_path, fingerprint)
    return _kept.info(store.index_path)
