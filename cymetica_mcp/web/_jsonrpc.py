"""What the MCP SDK's Streamable HTTP transport answers badly, answered here: JSON-RPC's own errors.

The guard sits behind the SDK's credential check and in front of its transport, so a caller without a
valid credential gets 401 without the body ever being read (a body is parsed only for a known caller).
For a POST it answers, itself:

- a `Content-Type` other than `application/json`: 415 and `-32600`, naming what is accepted (the SDK's
  transport-security check would answer a bare text `400 Invalid Content-Type header`);
- a body that is JSON but not one JSON-RPC 2.0 message: a batch, a value that is not an object,
  `jsonrpc` other than "2.0", a `method` that is not a string, an object that is neither a request nor
  a response: 400 and `-32600` Invalid Request, saying which (the SDK answers `-32602` with a dump of
  pydantic's validation errors);
- a request whose `id` is neither a string nor an integer: 400 and `-32600` with `id` null (the SDK
  takes it for a notification and answers 202 with nothing, so the client waits for an answer that
  never comes);
- a body over `MAX_BODY` (the SDK's own limit, 4 MiB): 413 and `-32600` naming the limit, refused from
  its `Content-Length` before a byte of it is read, or as soon as a body without one passes the limit
  (the SDK reads such a body up to the limit and answers a bare text `Request body too large`, which
  its own client can only report as "Server returned an error response").

Everything else goes on, its body replayed as one message, untouched: a body that is not JSON (the SDK
answers -32700), a message whose params are wrong (-32602).
"""

from __future__ import annotations

import json
from typing import Any, Final

from mcp.server.auth.middleware.bearer_auth import RequireAuthMiddleware
from mcp.server.transport_security import DEFAULT_MAX_REQUEST_BODY_SIZE
from starlette.applications import Starlette
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cymetica_mcp.web._envelope import dumps
from cymetica_mcp.web._messages import json_type

MAX_BODY: Final = DEFAULT_MAX_REQUEST_BODY_SIZE
"""Bodies larger than this (4 MiB, the SDK's limit) are refused with 413."""
INVALID_REQUEST: Final = -32600
JSON: Final = "application/json"
ONE_MESSAGE: Final = (
    "send one JSON-RPC 2.0 message per POST: a request "
    '{"jsonrpc":"2.0","id":<string or integer>,"method":...}, a notification (no id) or a response'
)


class JsonRpcGuard:
    """ASGI middleware for the MCP endpoint: refuses what is not one well-formed JSON-RPC message."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Check a POST's content type and message, then pass the request on with its body replayed."""
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        content_type = _content_type(scope)
        if content_type != JSON:
            got = repr(content_type[:60]) if content_type else "none"
            await _refuse(send, 415, f"Unsupported Media Type: Content-Type must be {JSON}; got {got}")
            return
        declared = _content_length(scope)
        if declared is not None and declared > MAX_BODY:
            await _refuse(send, 413, _too_large(f"{declared} bytes"))
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client left before its body was whole: no one to answer
            chunk: bytes = message.get("body", b"")
            size += len(chunk)
            if size > MAX_BODY:
                await _refuse(send, 413, _too_large(f"more than {MAX_BODY} bytes"))
                return
            chunks.append(chunk)
            if not message.get("more_body"):
                break
        body = [b"".join(chunks)]  # one copy, handed on and let go: the SDK makes its own
        del chunks
        problem = _problem(body[0])
        if problem is not None:
            await _refuse(send, 400, f"Invalid Request: {problem}")
            return

        async def replayed() -> Message:
            if body:
                return {"type": "http.request", "body": body.pop(), "more_body": False}
            return await receive()

        await self.app(scope, replayed, send)


def guard_messages(app: Starlette, path: str) -> None:
    """Put `JsonRpcGuard` between the credential check of the SDK's app and its transport at `path`."""
    for route in app.routes:
        if isinstance(route, Route) and route.path == path and isinstance(route.app, RequireAuthMiddleware):
            route.app.app = JsonRpcGuard(route.app.app)
            return
    raise RuntimeError(f"the MCP app has no authenticated route {path!r} to guard (has the SDK changed?)")


def _content_type(scope: Scope) -> str:
    """The media type of the request's Content-Type header, lower case, without parameters."""
    for name, value in scope["headers"]:
        if name == b"content-type":
            text: str = value.decode("latin-1")
            return text.split(";")[0].strip().lower()
    return ""


def _content_length(scope: Scope) -> int | None:
    """The request's declared body length, or None when it declares none (or not a number)."""
    for name, value in scope["headers"]:
        if name == b"content-length":
            text = value.decode("latin-1").strip()
            return int(text) if text.isdigit() else None
    return None


def _too_large(size: str) -> str:
    return f"Request body too large: {size}; the limit is {MAX_BODY} bytes (4 MiB) for one JSON-RPC message"


async def _refuse(send: Send, status: int, message: str) -> None:
    """Answer with a JSON-RPC error `-32600` whose `id` is null."""
    body = dumps({"jsonrpc": "2.0", "id": None, "error": {"code": INVALID_REQUEST, "message": message}})
    headers = [(b"content-type", JSON.encode()), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _problem(body: bytes) -> str | None:
    """What makes a JSON body other than one JSON-RPC 2.0 message, or None (not JSON: the SDK's to answer)."""
    try:
        parsed: Any = json.loads(body)
    except (ValueError, RecursionError):
        return None  # the SDK answers a parse error itself
    if isinstance(parsed, list):
        return f"batches are not accepted; {ONE_MESSAGE}"
    if not isinstance(parsed, dict):
        return f"the body is a JSON {json_type(parsed)}, not an object; {ONE_MESSAGE}"
    if parsed.get("jsonrpc") != "2.0":
        return f'"jsonrpc" must be "2.0"; {ONE_MESSAGE}'
    if "method" in parsed:
        if not isinstance(parsed["method"], str):
            return f'"method" must be a string; {ONE_MESSAGE}'
        ident = parsed.get("id")
        if "id" in parsed and (isinstance(ident, bool) or not isinstance(ident, str | int)):
            return "a request's id must be a string or an integer"
        return None
    if "id" in parsed and ("result" in parsed or "error" in parsed):
        return None  # a response to a request of the server's
    return f"the object is neither a request or notification (no method) nor a response; {ONE_MESSAGE}"
