"""The vocabulary of `/openapi.json`: component schemas, the error responses by status, and the pieces
every operation is written with (a response reference, a JSON body, the answers every route may give).

    components.schemas     pydantic's JSON Schemas (2020-12, OpenAPI 3.1's dialect) of `models.Dashboard`
                           and the bodies of `_wire` (error envelope, token, ingest report, health)
    components.responses   one error response per status, its `code` narrowed to the codes of that status
                           (`errors.HTTP_STATUS`), with the headers each carries (WWW-Authenticate, Retry-After)
"""

from __future__ import annotations

from typing import Any, Final

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from cymetica_mcp.errors import HTTP_STATUS, ErrorCode
from cymetica_mcp.models import Dashboard
from cymetica_mcp.web._envelope import JSON
from cymetica_mcp.web._wire import (
    Alive,
    ErrorEnvelope,
    ImportRefusedBody,
    IngestReport,
    NotReady,
    Ready,
    TokenResponse,
)

_MODELS: Final[tuple[type[BaseModel], ...]] = (
    Dashboard,
    ErrorEnvelope,
    ImportRefusedBody,
    NotReady,
    TokenResponse,
    IngestReport,
    Alive,
    Ready,
)
SCHEMAS: Final = "#/components/schemas/"
_RESPONSES: Final = "#/components/responses/"
_EXTRA_STATUS: Final[dict[int, tuple[ErrorCode, ...]]] = {
    405: ("invalid_argument",),  # a method the route does not take
    421: ("forbidden",),  # a non-loopback Host while bound to loopback
}
_ERROR_TITLES: Final = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    413: "PayloadTooLarge",
    415: "UnsupportedMediaType",
    421: "MisdirectedRequest",
    429: "TooManyRequests",
    500: "InternalError",
    503: "Unavailable",
}
NO_STORE: Final = {"description": "Always `no-store`.", "schema": {"type": "string"}}
RETRY_AFTER: Final = {
    "description": "Whole seconds after which the same request may succeed.",
    "schema": {"type": "integer", "minimum": 1},
}


def error_codes(status: int) -> tuple[ErrorCode, ...]:
    """The error codes that may come with `status`, in the order of `errors.ErrorCode`."""
    codes = tuple(code for code, mapped in HTTP_STATUS.items() if mapped == status)
    return codes + tuple(c for c in _EXTRA_STATUS.get(status, ()) if c not in codes)  # type: ignore[return-value]


def error_schema(codes: tuple[str, ...]) -> dict[str, Any]:
    """The error envelope with its `code` narrowed to `codes`."""
    return {
        "allOf": [{"$ref": SCHEMAS + "ErrorEnvelope"}],
        "properties": {"error": {"properties": {"code": {"enum": list(codes)}}}},
    }


def error_response_spec(
    status: int, description: str, codes: tuple[str, ...] | None = None
) -> dict[str, Any]:
    headers: dict[str, Any] = {"Cache-Control": NO_STORE}
    if status == 401:
        headers["WWW-Authenticate"] = {
            "description": 'RFC 6750: `Bearer realm="cymetica-analytics"`, with `error="invalid_token"` '
            "when a token was sent.",
            "required": True,
            "schema": {"type": "string", "pattern": "^Bearer "},
        }
    if status == 429:
        headers["Retry-After"] = {**RETRY_AFTER, "required": True}
    if status == 503:
        headers["Retry-After"] = RETRY_AFTER
    if status == 405:
        headers["Allow"] = {
            "description": "The methods the route takes.",
            "required": True,
            "schema": {"type": "string"},
        }
    return {
        "description": description,
        "headers": headers,
        "content": {JSON: {"schema": error_schema(codes or error_codes(status))}},
    }


def components() -> dict[str, Any]:
    _, defs = models_json_schema(
        [(model, "serialization") for model in _MODELS], ref_template=SCHEMAS + "{model}"
    )
    descriptions = {
        400: "A value outside what is accepted (the message says what is).",
        401: "Missing, malformed, unknown, revoked, expired or wrongly signed credential; the same body "
        "whether or not the key exists.",
        403: "A credential without the scope the route needs, a JWT sent to the token exchange, or a "
        "foreign `Origin`.",
        404: "No such endpoint.",
        405: "A method the route does not take.",
        413: "An ingest body that decodes to more than `serve --ingest-max-bytes`.",
        415: "An ingest body that is neither CSV nor JSON Lines, or an encoding other than gzip.",
        421: "A non-loopback `Host` while the server is bound to loopback (DNS-rebinding protection).",
        429: "Past the per-key rate limit, or too many refused credentials from the client's address.",
        500: "A failure of the server (details only in its log).",
        503: "`unavailable`: the store cannot be used for now (a PostgreSQL server down or unreachable, "
        "a SQLite file on a full disk, read-only, damaged or not SQLite; nothing was written), another "
        "process held the store's writer for over 10 s, or the ingest queue is full. Retry later.",
    }
    responses = {
        _ERROR_TITLES[status]: error_response_spec(status, text) for status, text in descriptions.items()
    }
    schemes = {
        "apiKey": {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "API key (cym_...)",
            "description": "An API key from `cymetica-mcp keys create --name NAME [--scope read,ingest]`. "
            "Scopes: `read` (dashboards), `ingest` (users and trades); a key without the scope an "
            "operation names in `x-required-scope` gets 403 `forbidden`.",
        },
        "jwt": {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": "A JWT (HS256, 1 hour at most) from `POST /api/v1/auth/token`, carrying its "
            "key's scopes; refused as soon as the key is revoked.",
        },
    }
    return {"schemas": defs["$defs"], "responses": responses, "securitySchemes": schemes}


def ref(name: str) -> dict[str, str]:
    return {"$ref": _RESPONSES + name}


def json_body(model: str, description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": description,
        "content": {JSON: {"schema": {"$ref": SCHEMAS + model}}},
    }
    if headers:
        response["headers"] = headers
    return response


def guarded(responses: dict[str, Any]) -> dict[str, Any]:
    """`responses` plus what every route may answer: a foreign Origin (403), a foreign Host (421), 500."""
    return {
        "403": ref("Forbidden"),
        "421": ref("MisdirectedRequest"),
        "500": ref("InternalError"),
        **responses,
    }
