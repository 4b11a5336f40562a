"""The dashboard page: `GET /` and the few files it loads from `/assets/`.

The page itself holds no figures and needs no credential: it asks the user for an API key, which it
keeps in the tab's sessionStorage, exchanges it at `POST /api/v1/auth/token` and follows
`/ws/analytics` with the JWT. Every answer carries a strict Content-Security-Policy (scripts, styles and
images from this origin only, connections to this origin and its WebSocket, no framing), `nosniff`
and `no-referrer`; files are revalidated by ETag. The files come from `cymetica_mcp.assets`, built by
`make assets` and shipped in the package.
"""

from __future__ import annotations

import re
from typing import Final

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from cymetica_mcp import assets
from cymetica_mcp.errors import AnalyticsError
from cymetica_mcp.web._envelope import error_response
from cymetica_mcp.web._rest import etag_of, matches

PAGE_PATH: Final = "/"
ASSETS_PATH: Final = "/assets/{name}"
_HOST: Final = re.compile(r"^[A-Za-z0-9.-]+(:\d{1,5})?$|^\[[0-9A-Fa-f:.]+\](:\d{1,5})?$")


def content_security_policy(host: str | None) -> str:
    """The page's policy. `connect-src 'self'` covers the same origin's ws:/wss: in CSP Level 3; the
    WebSocket URLs of the request's own Host (when it is a plain host[:port]) are named as well, for
    browsers that still read 'self' as http(s) only."""
    sockets = f" ws://{host} wss://{host}" if host and _HOST.match(host) else ""
    return (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        f"connect-src 'self'{sockets}; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    )


def security_headers(request: Request) -> dict[str, str]:
    """Headers on every answer of the page's routes."""
    return {
        "Content-Security-Policy": content_security_policy(request.headers.get("host")),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "X-Frame-Options": "DENY",
        "Cross-Origin-Opener-Policy": "same-origin",
        "Cache-Control": "no-cache",
    }


def _file(request: Request, body: bytes, media_type: str) -> Response:
    headers = security_headers(request)
    etag = etag_of(body)
    headers["ETag"] = etag
    if matches(request.headers.get("if-none-match"), etag):
        return Response(status_code=304, headers=headers)
    return Response(body, headers=headers, media_type=media_type)


def page_routes() -> list[Route]:
    """`GET /` and `GET /assets/{name}` for the names in `assets.PAGE_FILES`."""

    async def page(request: Request) -> Response:
        return _file(request, assets.read_bytes(assets.PAGE), "text/html; charset=utf-8")

    async def asset(request: Request) -> Response:
        name = request.path_params["name"]
        media_type = assets.PAGE_FILES.get(name)
        if media_type is None:
            error = AnalyticsError(
                "not_found", f"no such file {name!r} under /assets/; served: {', '.join(assets.PAGE_FILES)}"
            )
            return error_response(error)
        return _file(request, assets.read_bytes(name), media_type)

    return [
        Route(PAGE_PATH, page, methods=["GET", "HEAD"]),
        Route(ASSETS_PATH, asset, methods=["GET", "HEAD"]),
    ]
