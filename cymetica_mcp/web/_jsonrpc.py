"""A JSON-RPC request whose `id` is neither a string nor an integer is refused, not dropped.

The MCP SDK's Streamable HTTP transport takes `{"jsonrpc": "2.0", "id": {...}, "method": ...}` for a
notification and answers 202 with nothing: the client waits for an answer that never comes. JSON-RPC
2.0 says an Invalid Request (-32600) with `id` null is due, and MCP's request ids are strings or
integers. This guard reads a POST's body (the SDK reads it whole as well), answers such a message
itself with 400 and that error, and hands every other request on, body replayed, untouched.
"""

from __future__ import annotations

import json
from typing import Any, Final

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cymetica_mcp.web._envelope import dumps

MAX_BODY: Final = 4 << 20
"""Bodies larger than this are handed on unread (the SDK refuses them with 413)."""


class RequestIdGuard:
    """ASGI middleware for the MCP endpoint: refuses requests whose `id` has the wrong type."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Check a POST's messages, then pass the request on with its body replayed."""
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        messages: list[Message] = []
        size = 0
        while True:
            message = await receive()
            messages.append(message)
            size += len(message.get("body", b""))
            if message["type"] != "http.request" or not message.get("more_body") or size > MAX_BODY:
                break
        if size <= MAX_BODY and _bad_id(b"".join(m.get("body", b"") for m in messages)):
            body = dumps(
                {
                    "jsonrpc": "2.0",
                    "id": None,
                    "error": {
                        "code": -32600,
                        "message": "Invalid Request: a request's id must be a string or an integer",
                    },
                }
            )
            headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
            await send({"type": "http.response.start", "status": 400, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        replay = iter(messages)

        async def replayed() -> Message:
            return next(replay, None) or await receive()

        await self.app(scope, replayed, send)


def _bad_id(body: bytes) -> bool:
    """Whether the body holds a request (a message with a method) whose id is not a string or an integer."""
    try:
        parsed: Any = json.loads(body)
    except (ValueError, RecursionError):
        return False  # the SDK answers a parse error itself
    for message in parsed if isinstance(parsed, list) else [parsed]:
        if isinstance(message, dict) and "method" in message and "id" in message:
            ident = message["id"]
            if isinstance(ident, bool) or not isinstance(ident, str | int):
                return True
    return False
