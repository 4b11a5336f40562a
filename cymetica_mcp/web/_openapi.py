"""`GET /openapi.json`: the REST API as an OpenAPI 3.1 document, generated from the models the routes write.

    components             schemas and error responses (`_openapi_components.py`)
    paths                  every HTTP route of the app but /mcp (see `x-mcp`), each with its statuses
    x-websocket, x-mcp     the doors OpenAPI cannot describe as operations (`_openapi_channels.py`)

The document is public: it describes the API, never a figure or a key. `tests/web/test_web_openapi.py`
checks it against the app's routes, validates it as OpenAPI 3.1 and fuzzes the server with it.
"""

from __future__ import annotations

from typing import Any, Final

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from cymetica_mcp import __version__, assets
from cymetica_mcp.errors import HTTP_STATUS
from cymetica_mcp.web._envelope import JSON, dumps
from cymetica_mcp.web._metrics import CONTENT_TYPE as METRICS_TYPE
from cymetica_mcp.web._metrics import METRICS_PATH
from cymetica_mcp.web._openapi_channels import mcp_channel, websocket_channel
from cymetica_mcp.web._openapi_components import (
    NO_STORE,
    SCHEMAS,
    components,
    error_response_spec,
    error_schema,
    guarded,
    json_body,
    ref,
)
from cymetica_mcp.web._page import ASSETS_PATH, PAGE_PATH

OPENAPI_PATH: Final = "/openapi.json"
MEDIA_TYPES: Final = ("text/csv", "application/x-ndjson", "application/jsonl", "application/ndjson")
"""The ingest body's media types (`_ingest.MEDIA_TYPES`, which a test compares with these)."""

_USERS_CSV: Final = (
    "user_id,kind,capital_usdc,created_at\n"
    "platform-u-1,human,1500.25,2026-03-01T09:00:00Z\n"
    "platform-a-1,agent,250,2026-03-02T10:30:00+01:00\n"
)
_TRADES_CSV: Final = (
    "trade_id,user_id,ts,volume_usdc,pnl_usdc\n"
    "t-1001,platform-u-1,2026-03-20T11:00:00Z,120.5,-3.25\n"
    "t-1002,platform-a-1,2026-03-20T11:00:05Z,40,1.000001\n"
)
_USERS_JSONL: Final = (
    '{"user_id":"platform-u-1","kind":"human","capital_usdc":"1500.25","created_at":"2026-03-01T09:00:00Z"}\n'
)
_TRADES_JSONL: Final = (
    '{"trade_id":"t-1001","user_id":"platform-u-1","ts":"2026-03-20T11:00:00Z",'
    '"volume_usdc":"120.5","pnl_usdc":-3.25}\n'
)


def _dashboard() -> dict[str, Any]:
    cache = {
        "ETag": {
            "description": "Strong tag of the body's bytes.",
            "required": True,
            "schema": {"type": "string"},
        },
        "X-Data-Version": {
            "description": "The store's data version the figures come from.",
            "required": True,
            "schema": {"type": "integer", "minimum": 0},
        },
        "Cache-Control": {"description": "`private, no-cache`.", "schema": {"type": "string"}},
    }
    return {
        "get": {
            "operationId": "getDashboard",
            "summary": "The analytics dashboard",
            "description": "The dashboard object for `filter` and `period`, exactly what `cymetica-mcp "
            "dashboard --json`, the MCP tool's `data` and the WebSocket's `analytics_update.data` carry. "
            "Checks run in this order: credential (401), scope (403), rate limit (429), query (400).",
            "tags": ["analytics"],
            "x-required-scope": "read",
            "parameters": [
                {
                    "name": "filter",
                    "in": "query",
                    "description": "Whose trades count (empty or repeated values are refused).",
                    "schema": {"$ref": SCHEMAS + "Filter", "default": "all"},
                },
                {
                    "name": "period",
                    "in": "query",
                    "description": "The window: 24 hourly, 28 six-hour or 30 daily buckets.",
                    "schema": {"$ref": SCHEMAS + "Period", "default": "24h"},
                },
                {
                    "name": "If-None-Match",
                    "in": "header",
                    "description": "An `ETag` received before: 304 without a body while it still matches.",
                    "schema": {"type": "string"},
                },
            ],
            "responses": guarded(
                {
                    "200": json_body(
                        "Dashboard", "The dashboard.", {**cache, "Vary": {"schema": {"type": "string"}}}
                    ),
                    "304": {"description": "Unchanged since the `If-None-Match` tag.", "headers": cache},
                    "400": error_response_spec(
                        400, "`filter` or `period` outside the lists.", ("invalid_filter", "invalid_period")
                    ),
                    "401": ref("Unauthorized"),
                    "429": ref("TooManyRequests"),
                    "503": ref("Unavailable"),
                }
            ),
        }
    }


def _token() -> dict[str, Any]:
    return {
        "post": {
            "operationId": "issueToken",
            "summary": "A JWT for an API key",
            "description": "Exchanges the API key sent as Bearer for a JWT with the key's scopes, which "
            "never outlives the key. A JWT cannot be exchanged (403).",
            "tags": ["auth"],
            "security": [{"apiKey": []}],
            "responses": guarded(
                {
                    "200": json_body(
                        "TokenResponse",
                        "The JWT.",
                        {"Cache-Control": NO_STORE, "Pragma": {"schema": {"type": "string"}}},
                    ),
                    "401": ref("Unauthorized"),
                    "429": ref("TooManyRequests"),
                    "503": ref("Unavailable"),
                }
            ),
        }
    }


def _ingest(what: str, max_bytes: int) -> dict[str, Any]:
    csv, jsonl = (_TRADES_CSV, _TRADES_JSONL) if what == "trades" else (_USERS_CSV, _USERS_JSONL)
    columns = (
        "trade_id, user_id, ts, volume_usdc, pnl_usdc"
        if what == "trades"
        else "user_id, kind (human or agent), capital_usdc, created_at"
    )
    text = {"type": "string", "description": f"Columns: {columns}."}
    content = {
        media: {"schema": text, "example": csv if media == "text/csv" else jsonl} for media in MEDIA_TYPES
    }
    rule = (
        "idempotent by `trade_id` (the first row of an id wins, a stored trade never changes): a retry "
        "of the same batch changes nothing; every `user_id` must be imported before"
        if what == "trades"
        else "upserted by `user_id` (the last row wins; `created_at` is kept)"
    )
    return {
        "post": {
            "operationId": f"ingest{what.capitalize()}",
            "summary": f"Import {what}",
            "description": f"Imports the body's {what} in one all-or-nothing transaction, {rule}. The body is "
            "CSV with a header row or JSON Lines, optionally gzip, with the rules of `cymetica-mcp "
            f"import`; at most {max_bytes:,} bytes once decoded.",
            "tags": ["ingest"],
            "x-required-scope": "ingest",
            "parameters": [
                {
                    "name": "Content-Encoding",
                    "in": "header",
                    "description": "`gzip`, or none.",
                    "schema": {"type": "string", "enum": ["gzip", "identity"]},
                }
            ],
            "requestBody": {"required": True, "content": content},
            "responses": guarded(
                {
                    "200": json_body("IngestReport", "Imported.", {"Cache-Control": NO_STORE}),
                    "400": {
                        "description": "A bad row (`import_refused`, with the first bad rows by line) or "
                        "a gzip stream that is not valid or cut short (`invalid_argument`); the store "
                        "is unchanged.",
                        "headers": {"Cache-Control": NO_STORE},
                        "content": {
                            JSON: {
                                "schema": {
                                    "anyOf": [
                                        {"$ref": SCHEMAS + "ImportRefusedBody"},
                                        error_schema(("invalid_argument",)),
                                    ]
                                }
                            }
                        },
                    },
                    "401": ref("Unauthorized"),
                    "413": ref("PayloadTooLarge"),
                    "415": ref("UnsupportedMediaType"),
                    "429": ref("TooManyRequests"),
                    "503": ref("Unavailable"),
                }
            ),
        }
    }


def _probe(operation: str, summary: str, responses: dict[str, Any]) -> dict[str, Any]:
    return {
        "get": {
            "operationId": operation,
            "summary": summary,
            "tags": ["health"],
            "security": [],
            "responses": guarded(responses),
        }
    }


def _metrics() -> dict[str, Any]:
    return {
        "get": {
            "operationId": "metrics",
            "summary": "Operational figures in Prometheus text format",
            "description": "Requests and latency by door and status, dashboards computed and cached, "
            "imports and their rows, the index, WebSocket clients and the data version (summed over the "
            "workers of `serve --workers N`). Needs the `read` scope: request and import counts reveal "
            "trading activity.",
            "tags": ["operations"],
            "x-required-scope": "read",
            "responses": guarded(
                {
                    "200": {
                        "description": f"Prometheus text exposition format 0.0.4 (`{METRICS_TYPE}`).",
                        "headers": {"Cache-Control": NO_STORE},
                        "content": {METRICS_TYPE.split(";")[0]: {"schema": {"type": "string"}}},
                    },
                    "401": ref("Unauthorized"),
                    "403": ref("Forbidden"),
                    "429": ref("TooManyRequests"),
                    "503": ref("Unavailable"),
                }
            ),
        }
    }


def _static(operation: str, summary: str, content: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """A file of the dashboard page: no credential, an ETag, 304 on `If-None-Match`."""
    etag = {"description": "The file's entity tag.", "schema": {"type": "string"}}
    return {
        "get": {
            "operationId": operation,
            "summary": summary,
            "tags": ["page"],
            "security": [],
            "responses": guarded(
                {
                    "200": {"description": summary, "headers": {"ETag": etag}, "content": content},
                    "304": {"description": "Unchanged since the `If-None-Match` tag."},
                    **extra,
                }
            ),
        }
    }


def _page() -> dict[str, Any]:
    return _static(
        "page",
        "The live dashboard page",
        {"text/html": {"schema": {"type": "string"}}},
        {},
    )


def _asset() -> dict[str, Any]:
    item = _static(
        "pageAsset",
        "A file the page loads",
        {media.split(";")[0]: {"schema": {"type": "string"}} for media in assets.PAGE_FILES.values()},
        {"404": ref("NotFound")},
    )
    item["get"]["parameters"] = [
        {
            "name": "name",
            "in": "path",
            "required": True,
            "schema": {"type": "string", "enum": sorted(assets.PAGE_FILES)},
        }
    ]
    return item


def openapi_document(public_url: str, *, ingest_max_bytes: int) -> dict[str, Any]:
    """The OpenAPI 3.1 document of the REST API served at `public_url`."""
    paths = {
        "/api/v1/analytics/dashboard": _dashboard(),
        "/api/v1/auth/token": _token(),
        "/api/v1/ingest/trades": _ingest("trades", ingest_max_bytes),
        "/api/v1/ingest/users": _ingest("users", ingest_max_bytes),
        "/healthz": _probe(
            "healthz",
            "Liveness",
            {"200": json_body("Alive", "The process serves requests.", {"Cache-Control": NO_STORE})},
        ),
        "/readyz": _probe(
            "readyz",
            "Readiness",
            {
                "200": json_body(
                    "Ready", "The store answers with the current schema.", {"Cache-Control": NO_STORE}
                ),
                "503": json_body(
                    "NotReady",
                    "The store cannot be used (`reason` says why, e.g. the database cannot be reached), or has another schema version.",
                    {"Cache-Control": NO_STORE},
                ),
            },
        ),
        OPENAPI_PATH: _probe(
            "openapi",
            "This document",
            {"200": {"description": "OpenAPI 3.1.", "content": {JSON: {"schema": {"type": "object"}}}}},
        ),
    }
    paths[METRICS_PATH] = _metrics()
    paths[PAGE_PATH] = _page()
    paths[ASSETS_PATH] = _asset()
    paths[OPENAPI_PATH]["get"]["tags"] = ["meta"]
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "cymetica-mcp Analytics API",
            "version": __version__,
            "summary": "Exact, live analytics of a trading platform whose users are humans and AI agents.",
            "description": "Every error, on every route, is `{success: false, error: {code, message}}` with "
            "`Cache-Control: no-store`; `x-error-codes` maps each code to its status. A method a route "
            "does not take gets 405 `invalid_argument` with `Allow`, an unknown path 404 `not_found`. "
            "GET routes answer HEAD too. This document, /healthz, /readyz and the page need no credential.",
            "license": {"name": "MIT", "identifier": "MIT"},
        },
        "servers": [{"url": public_url.rstrip("/")}],
        "security": [{"apiKey": []}, {"jwt": []}],
        "tags": [
            {"name": "analytics"},
            {"name": "auth"},
            {"name": "ingest"},
            {"name": "health"},
            {"name": "operations"},
            {"name": "page"},
            {"name": "meta"},
        ],
        "paths": paths,
        "components": components(),
        "x-error-codes": {
            code: status for code, status in sorted(HTTP_STATUS.items(), key=lambda item: (item[1], item[0]))
        },
        "x-websocket": websocket_channel(),
        "x-mcp": mcp_channel(),
    }


def openapi_route(public_url: str, *, ingest_max_bytes: int) -> Route:
    """`GET /openapi.json`: the document, encoded once."""
    body = dumps(openapi_document(public_url, ingest_max_bytes=ingest_max_bytes))

    async def openapi(request: Request) -> Response:
        """The published API as OpenAPI 3.1 (no credential: it holds no figure and no secret)."""
        return Response(body, media_type=JSON, headers={"Cache-Control": "no-cache"})

    return Route(OPENAPI_PATH, openapi, methods=["GET"])
