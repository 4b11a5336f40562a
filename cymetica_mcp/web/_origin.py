"""Which sites may talk to the server: a Host and Origin check in front of every route.

- Bound to loopback (`loopback_only`), the `Host` header must name a loopback address: a DNS-rebinding
  page (evil.example resolving to 127.0.0.1) is refused with 421 before anything else runs.
- A request with an `Origin` header (browsers send one; scripts and agents usually do not) must come
  from the server's own host and port, the public URL's origin, a loopback origin when bound to
  loopback, or a configured origin.
  Anything else gets 403. A refused WebSocket gets an HTTP 403 instead of the upgrade (RFC 6455 10.2),
  whichever header was wrong.

CORS middleware does not cover WebSocket scopes, which is why this is a check of its own.
"""

from __future__ import annotations

from typing import Final
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Receive, Scope, Send

from cymetica_mcp.errors import AnalyticsError
from cymetica_mcp.web._envelope import dumps
from cymetica_mcp.web._options import is_loopback
from cymetica_mcp.web._wire import envelope

DEFAULT_PORTS: Final = {"http": 80, "https": 443, "ws": 80, "wss": 443}


def _hostname(host: str) -> str:
    """The host part of a Host header value (`[::1]:8000` -> `::1`, `localhost:8000` -> `localhost`)."""
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _netloc(scheme: str, host: str) -> str:
    """`host[:port]` lower-cased with the scheme's default port made explicit."""
    host = host.lower()
    port_given = host.rsplit(":", 1)[-1].isdigit() and not host.endswith("]")
    return host if port_given else f"{host}:{DEFAULT_PORTS.get(scheme, 80)}"


def origin_allowed(origin: str, host: str, allowed: tuple[str, ...], loopback: bool) -> bool:
    """Whether a request from `origin` to `host` may proceed."""
    if origin.rstrip("/") in allowed:
        return True
    parts = urlsplit(origin)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return False  # "null", file:// and other opaque origins
    if loopback and is_loopback(parts.hostname or ""):
        return True
    # Same host and port. The scheme is not compared: behind a TLS-terminating proxy the server sees
    # http while the page is https; a Host without a port means the origin scheme's default port.
    return _netloc(parts.scheme, parts.netloc) == _netloc(parts.scheme, host)


class OriginGuard:
    """ASGI middleware refusing foreign `Host` (421) and `Origin` (403) headers on HTTP and WebSocket."""

    def __init__(self, app: ASGIApp, *, allowed_origins: tuple[str, ...], loopback_only: bool) -> None:
        self.app = app
        self.allowed = tuple(o.rstrip("/") for o in allowed_origins)
        self.loopback_only = loopback_only

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass allowed requests through; answer the others with the JSON error envelope."""
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        host, origin = "", None
        for name, value in scope["headers"]:  # the last of repeated headers counts
            name = name.lower()
            if name == b"host":
                host = value.decode("latin-1")
            elif name == b"origin":
                origin = value.decode("latin-1")
        if self.loopback_only and not is_loopback(_hostname(host)):
            error = AnalyticsError(
                "forbidden",
                f"Host {host!r} is not served here: this server is bound to loopback and answers only "
                "loopback addresses such as 127.0.0.1, localhost or [::1] (serve with --host to expose it)",
            )
            await _deny(scope, receive, send, 421, error)
            return
        if origin is not None and not origin_allowed(origin, host, self.allowed, self.loopback_only):
            error = AnalyticsError(
                "forbidden",
                f"Origin {origin!r} is not allowed: accepted are this server's own origin and those "
                "given with `serve --allow-origin`",
            )
            await _deny(scope, receive, send, 403, error)
            return
        await self.app(scope, receive, send)


async def _deny(scope: Scope, receive: Receive, send: Send, status: int, error: AnalyticsError) -> None:
    body = dumps(envelope(error))
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"cache-control", b"no-store"),
    ]
    if scope["type"] == "http":
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        return
    # A close before accept is refused by the server with HTTP 403 (uvicorn logs it as such); the
    # denial-response extension would carry the JSON body, but browsers never show it to the page.
    await receive()  # websocket.connect
    await send({"type": "websocket.close", "code": 1008, "reason": ""})
