"""`/mcp` and its metadata route, with the MCP SDK loaded by the first request that needs it.

Importing the SDK (`mcp.server`, the pydantic models of `mcp.types`, its auth and transport modules)
costs a server about 24 MB of anonymous memory and a few hundred milliseconds of start-up, which a
server that never serves MCP over HTTP (a REST or WebSocket deployment, a `--workers` process whose
clients use REST) would carry for nothing. `LazyMcp` stands on both routes from the start; the first
request on either imports the SDK in a worker thread (the event loop keeps answering the other doors
meanwhile), builds the MCP server and its Streamable HTTP app, and runs the app's session manager in
the lifespan's task group, where it stays until the server stops. Requests arriving while it loads
wait for it; every later request goes straight to the built app.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread
from anyio.abc import TaskGroup, TaskStatus
from starlette.applications import Starlette
from starlette.types import ASGIApp, Receive, Scope, Send

from cymetica_mcp.auth import Authenticator
from cymetica_mcp.engine import Engine
from cymetica_mcp.web._options import WebOptions
from cymetica_mcp.web._ratelimit import RateLimiter

if TYPE_CHECKING:
    from mcp.server.mcpserver import MCPServer

MCP_PATH = "/mcp"
MCP_METADATA_PATH = "/.well-known/oauth-protected-resource/mcp"


class LazyMcp:
    """ASGI app of `/mcp` and its metadata route: the MCP server, built when first asked for."""

    def __init__(
        self, engine: Engine, authenticator: Authenticator, options: WebOptions, limiter: RateLimiter
    ):
        self._engine = engine
        self._authenticator = authenticator
        self._options = options
        self._limiter = limiter
        self._app: ASGIApp | None = None
        self._lock = anyio.Lock()
        self._tasks: TaskGroup | None = None

    @property
    def loaded(self) -> bool:
        """Whether a request has loaded the SDK and built the server."""
        return self._app is not None

    def attach(self, tasks: TaskGroup) -> None:
        """The lifespan's task group, which runs the session manager once the server is built."""
        self._tasks = tasks

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request to the MCP app, building it first if this is the first request."""
        app = self._app if self._app is not None else await self._start()
        await app(scope, receive, send)

    async def _start(self) -> ASGIApp:
        async with self._lock:
            if self._app is None:
                if self._tasks is None:
                    raise RuntimeError("the MCP endpoint answers only while the app's lifespan runs")
                self._app = await self._tasks.start(self._serve)
        return self._app

    async def _serve(self, *, task_status: TaskStatus[ASGIApp]) -> None:
        await anyio.to_thread.run_sync(_load_sdk)
        server, app = build_mcp(self._engine, self._authenticator, self._options, self._limiter)
        async with server.session_manager.run():
            task_status.started(app)
            await anyio.sleep_forever()


def _load_sdk() -> None:
    """Import the SDK and our MCP server (the slow part of the first request), off the event loop."""
    import mcp.server.transport_security  # noqa: F401

    import cymetica_mcp.mcp_server
    import cymetica_mcp.web._jsonrpc  # noqa: F401


def build_mcp(
    engine: Engine, authenticator: Authenticator, options: WebOptions, limiter: RateLimiter
) -> tuple[MCPServer[dict[str, Any]], Starlette]:
    """The MCP server with Bearer auth, and its Streamable HTTP app (routes /mcp and its metadata)."""
    from mcp.server.transport_security import TransportSecuritySettings

    from cymetica_mcp.mcp_server import create_server, http_auth_settings, limit_sessions_per_key
    from cymetica_mcp.web._jsonrpc import guard_messages

    server = create_server(
        engine,
        authenticator,
        auth=http_auth_settings(options.public_url.rstrip("/") + MCP_PATH),
        admit=lambda principal: limiter.check(principal.key_id),  # the same per-key limit as REST
    )
    app = server.streamable_http_app(
        streamable_http_path=MCP_PATH,
        # OriginGuard checks Host and Origin for every route of this app, /mcp included.
        transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
        max_sessions=options.mcp_sessions,
        stateless_http=options.mcp_stateless,
    )
    limit_sessions_per_key(server, options.mcp_sessions_per_key)
    guard_messages(app, MCP_PATH)  # JSON-RPC's own errors for bad messages, once the caller is known
    return server, app
