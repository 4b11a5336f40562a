"""The web door's JSON: compact bodies and the one error shape, with the headers each error needs.

AnalyticsError(code, message)  ->  HTTP status + {"success": false, "error": {code, message}} (`_wire.ErrorEnvelope`)
├── unauthorized   401  WWW-Authenticate: Bearer realm=..., error="invalid_token" when one was sent
├── rate_limited   429  Retry-After: <whole seconds, >= 1>
└── every error         Cache-Control: no-store
"""

from __future__ import annotations

import json
from typing import Any, Final

from starlette.responses import Response

from cymetica_mcp.errors import AnalyticsError
from cymetica_mcp.web._wire import envelope

REALM: Final = "cymetica-analytics"
JSON: Final = "application/json"


def dumps(value: Any) -> bytes:
    """Compact UTF-8 JSON."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def json_response(value: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A JSON response of `value`."""
    return Response(dumps(value), status_code=status, headers=headers, media_type=JSON)


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "").replace('"', "'") + '"'


def challenge(error: AnalyticsError | None, credential_sent: bool) -> str:
    """The `WWW-Authenticate` value of a 401 (RFC 6750 section 3)."""
    value = f"Bearer realm={_quoted(REALM)}"
    if error is not None and credential_sent:
        value += f", error={_quoted('invalid_token')}, error_description={_quoted(error.message)}"
    return value


def error_response(
    error: AnalyticsError, *, credential_sent: bool = False, status: int | None = None
) -> Response:
    """The error envelope with its status and headers."""
    headers = {"Cache-Control": "no-store"}
    if error.code == "unauthorized":
        headers["WWW-Authenticate"] = challenge(error, credential_sent)
    if error.retry_after is not None:
        headers["Retry-After"] = str(error.retry_after)
    return json_response(envelope(error), status or error.http_status, headers)
