"""Small helpers for driving the server from tests: JSON messages with deadlines, close codes, tokens."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import anyio
import jwt
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from cymetica_mcp.auth import JWT_ALGORITHM, JWT_AUDIENCE, JWT_ISSUER
from cymetica_mcp.store import SQLiteStore

TIMEOUT = 5.0


async def receive(ws: ClientConnection, seconds: float = TIMEOUT) -> dict[str, Any]:
    """The next message, parsed, within `seconds`."""
    with anyio.fail_after(seconds):
        raw = await ws.recv()
    message: dict[str, Any] = json.loads(raw)
    return message


async def next_of(ws: ClientConnection, kind: str, seconds: float = TIMEOUT) -> dict[str, Any]:
    """The next message of type `kind`, skipping heartbeats and any other type, within `seconds`."""
    with anyio.fail_after(seconds):
        while True:
            message = await receive(ws, seconds)
            if message["type"] == kind:
                return message


async def close_of(ws: ClientConnection, seconds: float = TIMEOUT) -> tuple[int, str, list[str]]:
    """Wait for the server to close: (code, reason, every message received before the close)."""
    before: list[str] = []
    with anyio.fail_after(seconds):
        try:
            while True:
                raw = await ws.recv()
                before.append(raw if isinstance(raw, str) else raw.decode())
        except ConnectionClosed as closed:
            frame = closed.rcvd
    assert frame is not None, "the server dropped the connection without a close frame"
    return frame.code, frame.reason, before


async def eventually(condition: Callable[[], bool], seconds: float = TIMEOUT) -> None:
    """Wait until `condition()` holds (state of the server's thread, which no event of ours can signal)."""
    with anyio.fail_after(seconds):
        while not condition():  # noqa: ASYNC110 - the state lives in another thread and event loop
            await anyio.sleep(0.01)


def forged_jwt(
    store: SQLiteStore, *, secret: bytes | None = None, expired: bool = False, sub: str = "1"
) -> str:
    """A JWT for key `sub` signed with the store's secret (or `secret`), optionally already expired."""
    with store.read() as conn:
        stored = bytes(conn.execute("SELECT value FROM settings WHERE key = 'jwt_secret'").fetchone()[0])
    now = int(time.time())
    issued = now - 7_200 if expired else now
    claims = {"sub": sub, "iat": issued, "exp": issued + 3_600, "aud": JWT_AUDIENCE, "iss": JWT_ISSUER}
    return jwt.encode(claims, secret or stored, algorithm=JWT_ALGORITHM)


MCP_INITIALIZE: dict[str, Any] = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "tests", "version": "1"},
    },
}
"""An MCP `initialize` request, for tests that speak Streamable HTTP by hand."""
