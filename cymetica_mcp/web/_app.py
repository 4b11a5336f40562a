"""The Starlette app of `cymetica-mcp serve`: REST, the WebSocket stream, MCP over HTTP and health probes.

    GET  /, /assets/{name}                  the dashboard page (no credential, no data; it asks for a key)
    /healthz, /readyz                       no credential, no data
    GET  /openapi.json                      no credential: the REST API as OpenAPI 3.1 (`_openapi.py`)
    GET  /api/v1/analytics/dashboard        Bearer API key or JWT (scope read)
    POST /api/v1/ingest/trades, /users      Bearer API key or JWT (scope ingest): CSV or JSON Lines
    POST /api/v1/auth/token                 Bearer API key -> JWT
    WS   /ws/analytics?token=...            JWT or API key
    /mcp                                    MCP Streamable HTTP, Bearer API key or JWT

Every route sits behind `OriginGuard` and answers errors with the one JSON envelope. The lifespan runs
the WebSocket hub's loops and, once the first MCP request has loaded the SDK (`_mcp_app.py`), the MCP
session manager (a mounted app's own lifespan is not run).
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from urllib.parse import urlsplit

import anyio
import anyio.to_thread
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from cymetica_mcp.auth import Authenticator
from cymetica_mcp.engine import Engine
from cymetica_mcp.errors import AnalyticsError
from cymetica_mcp.web._door import Door
from cymetica_mcp.web._envelope import error_response
from cymetica_mcp.web._failures import FailureGuard
from cymetica_mcp.web._health import health_routes
from cymetica_mcp.web._hub import Hub
from cymetica_mcp.web._ingest import WriterQueue, ingest_routes
from cymetica_mcp.web._logs import install_redaction, quiet_client_faults
from cymetica_mcp.web._mcp_app import MCP_METADATA_PATH, MCP_PATH, LazyMcp
from cymetica_mcp.web._metrics import Measured, Metrics, metrics_route
from cymetica_mcp.web._openapi import openapi_route
from cymetica_mcp.web._options import WebOptions
from cymetica_mcp.web._origin import OriginGuard
from cymetica_mcp.web._page import page_routes
from cymetica_mcp.web._ratelimit import RateLimiter
from cymetica_mcp.web._rest import rest_routes
from cymetica_mcp.web._session import websocket_route

log = logging.getLogger(__name__)


class AnalyticsApp(Starlette):
    """The web app, with the hub that `GracefulServer` closes on shutdown."""

    hub: Hub
    door: Door
    writer: WriterQueue
    metrics: Metrics
    mcp: LazyMcp | None


def _not_found(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 405:
        allowed = (exc.headers or {}).get("Allow", "")
        error = AnalyticsError(
            "invalid_argument",
            f"method {request.method} is not allowed on {request.url.path}; allowed: {allowed}",
        )
        response = error_response(error, status=405)
        response.headers["Allow"] = allowed
        return response
    if exc.status_code == 404:
        error = AnalyticsError(
            "not_found",
            f"no such endpoint {request.url.path!r}; see / (the dashboard page), /api/v1/analytics/dashboard, "
            "/api/v1/auth/token, /api/v1/ingest/trades, /api/v1/ingest/users, /ws/analytics, /mcp, /healthz, "
            "/readyz and /openapi.json",
        )
        return error_response(error)
    return error_response(AnalyticsError("invalid_argument", str(exc.detail)), status=exc.status_code)


def _internal(request: Request, exc: Exception) -> Response:
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(AnalyticsError("internal", "internal error; the server's log has the details"))


def create_app(
    engine: Engine,
    authenticator: Authenticator,
    options: WebOptions | None = None,
    *,
    limiter_clock: Callable[[], float] = time.monotonic,
) -> AnalyticsApp:
    """The web app over `engine` and `authenticator` (which the caller closes after the app stops)."""
    options = options or WebOptions()
    limiter = RateLimiter(options.rate_per_minute, options.rate_burst, clock=limiter_clock)
    door = Door(engine, authenticator, limiter, options)
    hub = Hub(door)
    metrics = Metrics(engine, hub)
    writer = metrics.counting(WriterQueue(options.ingest_queue))
    routes: list[BaseRoute] = [
        *rest_routes(door),  # first: the router tries each path in turn, and dashboards are the traffic
        *ingest_routes(door, writer),
        *health_routes(engine.store),
        openapi_route(options.public_url, ingest_max_bytes=options.ingest_max_bytes),
        websocket_route(hub),
        *page_routes(),
        metrics_route(door, metrics),
    ]
    mcp: LazyMcp | None = None
    if options.mcp:
        mcp = LazyMcp(engine, authenticator, options, limiter)  # the SDK loads on the first request
        routes += [Route(MCP_PATH, FailureGuard(mcp, door)), Route(MCP_METADATA_PATH, mcp)]

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        install_redaction()
        quiet_client_faults()
        index = await anyio.to_thread.run_sync(engine.index)
        log.info("store %s ready: data version %d", engine.store.location, index.version)
        async with anyio.create_task_group() as tasks:
            if mcp is not None:
                mcp.attach(tasks)  # runs the MCP session manager once a request has built the server
            tasks.start_soon(hub.run)
            tasks.start_soon(metrics.run)
            try:
                yield
            finally:
                await hub.close_all()
                tasks.cancel_scope.cancel()
                door.close()

    public = urlsplit(options.public_url)
    trusted = (*options.allowed_origins, f"{public.scheme}://{public.netloc}")
    middleware = [
        Middleware(Measured, metrics=metrics),
        Middleware(OriginGuard, allowed_origins=trusted, loopback_only=options.loopback_only),
    ]
    if options.allowed_origins:
        middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=list(options.allowed_origins),
                allow_methods=["GET", "POST"],
                allow_headers=["Authorization", "If-None-Match", "Content-Type"],
                expose_headers=["ETag", "Retry-After", "WWW-Authenticate"],
            )
        )
    app = AnalyticsApp(
        routes=routes,
        middleware=middleware,
        lifespan=lifespan,
        exception_handlers={HTTPException: _not_found, Exception: _internal},
    )
    app.hub = hub
    app.door = door
    app.writer = writer
    app.metrics = metrics
    app.mcp = mcp
    return app
