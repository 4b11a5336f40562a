"""`GET /metrics`: the server's state in the Prometheus text format (`prometheus-client`).

    cymetica_requests_total{door,status}           requests answered, by door and HTTP status
    cymetica_request_duration_seconds{door}        their latency (WebSocket sessions not included)
    cymetica_dashboards_computed_total             dashboards computed by the engine
    cymetica_dashboards_cached_total               dashboards served from its cache
    cymetica_imports_total, cymetica_import_rows_total, cymetica_import_trades_total
                                                   imports through the ingest endpoints, their rows and new trades
    cymetica_index_load_seconds                    how long the first index took (mapped or built)
    cymetica_index_bytes, cymetica_index_trades    the index's arrays and trades held now
    cymetica_index_cutoff_seconds                  the oldest instant whose trades the index holds
    cymetica_websocket_clients                     WebSocket sessions open
    cymetica_data_version                          the data version the index serves
    cymetica_store_data_version                    the store's data version (read from the store at a scrape)
    cymetica_replica_lag_versions                  imports committed to the store that the index does not serve yet
    cymetica_replica_lag_seconds                   since when (seconds) the store has been ahead of the index (0: not)

It needs a credential like every door but the health probes (`Authorization: Bearer`, scope read):
the counts of imports, rows and requests tell how much the platform trades, which is what the
dashboards sell. A Prometheus scrape job sends a key with `authorization: {credentials_file: ...}`.

Under `serve --workers N` every worker writes its figures to files in one folder
(`PROMETHEUS_MULTIPROC_DIR`, set by the supervisor before the workers start), and whichever worker
answers a scrape sums them: counters and WebSocket clients over every worker; the index's figures
per worker (`pid` label); the data version, the highest; the lag behind the store, the worst.
Replicas (several servers over one PostgreSQL database) are scraped one by one: each shows its own lag.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Final

import anyio
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cymetica_mcp.engine import Engine
from cymetica_mcp.errors import AnalyticsError
from cymetica_mcp.ingest import ImportReport
from cymetica_mcp.models import Scope as KeyScope
from cymetica_mcp.web._door import Door, bearer, bearer_sent
from cymetica_mcp.web._envelope import error_response
from cymetica_mcp.web._hub import Hub
from cymetica_mcp.web._ingest import WriterQueue

METRICS_PATH: Final = "/metrics"
MULTIPROCESS: Final = "PROMETHEUS_MULTIPROC_DIR"
DOORS: Final = (
    ("/api/v1/analytics", "rest"),
    ("/api/v1/ingest", "ingest"),
    ("/api/v1/auth", "token"),
    ("/ws", "websocket"),
    ("/mcp", "mcp"),
    ("/.well-known", "mcp"),
    ("/healthz", "health"),
    ("/readyz", "health"),
    ("/metrics", "metrics"),
)
CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"
"""The text format 0.0.4, which every Prometheus reads (the names here are all plain ASCII)."""
SHARE_INTERVAL: Final = 2.0
LATENCY_BUCKETS: Final = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)


def door_of(path: str) -> str:
    """The door a request path belongs to ('other' for none: a 404)."""
    return next((door for prefix, door in DOORS if path.startswith(prefix)), "other")


class Metrics:
    """The figures of one server process, and their exposition."""

    def __init__(self, engine: Engine, hub: Hub) -> None:
        self.engine = engine
        self.hub = hub
        self.shared = bool(os.environ.get(MULTIPROCESS))
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "cymetica_requests", "Requests answered, by door and HTTP status.", ["door", "status"], registry=r
        )
        self.latency = Histogram(
            "cymetica_request_duration_seconds",
            "Request latency by door (WebSocket sessions not included).",
            ["door"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.computed = Counter(
            "cymetica_dashboards_computed", "Dashboards computed by the engine.", registry=r
        )
        self.cached = Counter("cymetica_dashboards_cached", "Dashboards served from the cache.", registry=r)
        self.imports = Counter("cymetica_imports", "Imports through the ingest endpoints.", registry=r)
        self.rows = Counter("cymetica_import_rows", "Rows read by those imports.", registry=r)
        self.trades = Counter("cymetica_import_trades", "New trades stored by those imports.", registry=r)
        self.load = Gauge(
            "cymetica_index_load_seconds",
            "Seconds the first index took (mapped or built).",
            registry=r,
            multiprocess_mode="liveall",
        )
        self.size = Gauge(
            "cymetica_index_bytes", "Bytes of the index's arrays.", registry=r, multiprocess_mode="liveall"
        )
        self.held = Gauge(
            "cymetica_index_trades", "Trades the index holds.", registry=r, multiprocess_mode="liveall"
        )
        self.cutoff = Gauge(
            "cymetica_index_cutoff_seconds",
            "The oldest instant (Unix seconds) whose trades the index holds.",
            registry=r,
            multiprocess_mode="liveall",
        )
        self.clients = Gauge(
            "cymetica_websocket_clients", "WebSocket sessions open.", registry=r, multiprocess_mode="livesum"
        )
        self.version = Gauge(
            "cymetica_data_version",
            "The data version the index serves.",
            registry=r,
            multiprocess_mode="livemax",
        )
        self.store_version = Gauge(
            "cymetica_store_data_version",
            "The store's data version (imports committed by any process), as last read.",
            registry=r,
            multiprocess_mode="livemax",
        )
        self.lag = Gauge(
            "cymetica_replica_lag_versions",
            "Imports committed to the store that this server's index does not serve yet.",
            registry=r,
            multiprocess_mode="livemax",
        )
        self.lag_seconds = Gauge(
            "cymetica_replica_lag_seconds",
            "Seconds since the store's data version moved past the one this server's index serves (0: it serves it).",
            registry=r,
            multiprocess_mode="livemax",
        )
        self._counted = (0, 0)

    def refresh(self, store_version: int | None = None) -> None:
        """Bring the gauges and the engine's counters up to date (cheap: no store read)."""
        engine = self.engine
        computed, cached = engine.computed, engine.served_cached
        self.computed.inc(computed - self._counted[0])
        self.cached.inc(cached - self._counted[1])
        self._counted = (computed, cached)
        index = engine.loaded()
        if index is not None:
            self.size.set(index.nbytes)
            self.held.set(index.trade_count)
            self.cutoff.set(index.cutoff)
            self.version.set(index.version)
        if engine.load_seconds is not None:
            self.load.set(engine.load_seconds)
        self.clients.set(len(self.hub.clients))
        known = self.hub.store_version if store_version is None else store_version
        if known is not None:
            self.store_version.set(known)
            served = index.version if index is not None else 0
            behind = max(0, known - served)
            self.lag.set(behind)
            # since the hub saw the store move past the index; a move it has not seen yet is new
            seen, since = self.hub.store_version, self.hub.learnt_at
            if behind and since is not None and seen is not None and seen > served:
                self.lag_seconds.set(anyio.current_time() - since)
            else:
                self.lag_seconds.set(0.0)

    def exposition(self, store_version: int | None = None) -> bytes:
        """Every figure in the Prometheus text format (every worker's, under --workers); `store_version`:
        the store's data version just read (else the hub's last look at it)."""
        self.refresh(store_version)
        if not self.shared:
            return generate_latest(self.registry)
        merged = CollectorRegistry()
        MultiProcessCollector(merged)  # type: ignore[no-untyped-call]
        return generate_latest(merged)

    def counting(self, writer: WriterQueue) -> WriterQueue:
        """`writer`, counting the imports it runs."""
        run = writer.run

        async def counted(store_import: Callable[[], ImportReport]) -> ImportReport:
            report = await run(store_import)
            self.imports.inc()
            self.rows.inc(report.rows)
            self.trades.inc(report.trades_inserted)
            return report

        writer.run = counted  # type: ignore[method-assign]
        return writer

    async def run(self) -> None:
        """Under --workers: refresh this worker's figures every `SHARE_INTERVAL` seconds, so that a
        scrape answered by another worker sees them (alone, a scrape refreshes them itself)."""
        if not self.shared:
            return
        while True:
            self.refresh()
            await anyio.sleep(SHARE_INTERVAL)


class Measured:
    """ASGI middleware: counts every request by door and status, and times the HTTP ones."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        door = door_of(scope["path"])
        status = ["500" if scope["type"] == "http" else "403"]

        async def sending(message: Message) -> None:
            kind = message["type"]
            if kind == "http.response.start":
                status[0] = str(message["status"])
            elif kind == "websocket.accept":
                status[0] = "101"
            elif kind == "websocket.http.response.start":
                status[0] = str(message["status"])
            await send(message)

        started = time.perf_counter()
        try:
            await self.app(scope, receive, sending)
        finally:
            self.metrics.requests.labels(door, status[0]).inc()
            if scope["type"] == "http":
                self.metrics.latency.labels(door).observe(time.perf_counter() - started)


def metrics_route(door: Door, metrics: Metrics) -> Route:
    """`GET /metrics`, for a key (or its JWT) with the read scope."""

    async def exposition(request: Request) -> Response:
        header = request.headers.get("authorization")
        try:
            principal = await door.admit(bearer(header), door.address(request.scope))
            principal.require(KeyScope.READ)
        except AnalyticsError as exc:
            return error_response(exc, credential_sent=bearer_sent(header))
        try:  # the lag is measured against the store as it is now, not as last looked at
            version: int | None = await anyio.to_thread.run_sync(door.engine.data_version)
        except AnalyticsError:  # the store is down: the figures as last known (its own probe is /readyz)
            version = None
        return Response(
            metrics.exposition(version), headers={"Cache-Control": "no-store"}, media_type=CONTENT_TYPE
        )

    return Route(METRICS_PATH, exposition, methods=["GET"])
