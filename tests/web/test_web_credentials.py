"""Every hostile credential against every door: refused as `unauthorized`, before any data, the same
answer whether or not the key exists, and never echoed.

Doors: REST (`GET /api/v1/analytics/dashboard`), the token exchange, ingest, the WebSocket (close 4401
before any message), MCP over HTTP (401 from the transport) and the MCP server's stdio credential
(`CYMETICA_API_KEY`, driven in memory through the same `Credentials` as over stdio).
"""

from __future__ import annotations

import base64
import json
import logging
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
import jwt
import pytest
from mcp import Client
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidMessage, InvalidStatus

from cymetica_mcp.auth import JWT_ALGORITHM, JWT_AUDIENCE, JWT_ISSUER, Authenticator, KeyRing, jwt_secret
from cymetica_mcp.engine import open_engine
from cymetica_mcp.mcp_server import TOOL_NAME, create_server
from cymetica_mcp.models import Scope
from cymetica_mcp.store import SQLiteStore
from tests.conftest import NOW

from .conftest import Served, serving
from .helpers import close_of

pytestmark = pytest.mark.anyio


def _jwt(secret: bytes, *, header: dict[str, Any] | None = None, **changes: Any) -> str:
    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": "1",
        "iat": now,
        "exp": now + 600,
        "aud": JWT_AUDIENCE,
        "iss": JWT_ISSUER,
    }
    claims.update(changes)
    claims = {name: value for name, value in claims.items() if value is not None}
    return jwt.encode(claims, secret, algorithm=JWT_ALGORITHM, headers=header)


def _unsigned(claims: dict[str, Any], alg: str) -> str:
    """A token with header `alg` and no valid signature (`alg: none`, or an algorithm we never accept)."""

    def part(value: object) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return f"{part({'alg': alg, 'typ': 'JWT'})}.{part(claims)}.{'' if alg == 'none' else 'c2ln'}"


def hostile(
    store: SQLiteStore, key: str, revoked_key: str, revoked_jwt: str
) -> Iterator[tuple[str, str | None]]:
    """(what, credential) for every hostile credential; None is no credential at all."""
    secret = jwt_secret(store, None)
    now = int(time.time())
    good_claims = {"sub": "1", "iat": now, "exp": now + 600, "aud": JWT_AUDIENCE, "iss": JWT_ISSUER}
    changed = key[:-1] + ("A" if key[-1] != "A" else "B")
    yield "none", None
    yield "empty", ""
    yield "garbage", "nonsense"
    yield "a key with one character changed", changed
    yield "a revoked key", revoked_key
    yield "a JWT of a revoked key", revoked_jwt
    yield "alg none", _unsigned(good_claims, "none")
    yield "HS256 with another secret", _jwt(b"x" * 32)
    yield "an HS512 header", jwt.encode(good_claims, secret * 2, algorithm="HS512")
    yield "an RS256 header", _unsigned(good_claims, "RS256")
    yield "expired", _jwt(secret, iat=now - 7_200, exp=now - 3_600)
    yield "nbf in the future", _jwt(secret, nbf=now + 3_600)
    yield "wrong aud", _jwt(secret, aud="someone-else")
    yield "wrong iss", _jwt(secret, iss="someone-else")
    yield "missing exp", _jwt(secret, exp=None)
    yield "sub not an integer", _jwt(secret, sub="root")
    yield "sub naming no key", _jwt(secret, sub="999")
    yield "64 KB", "cym_" + "a" * 65_536
    yield "NUL inside", key[:10] + "\x00" + key[10:]
    yield "newline inside", key[:10] + "\n" + key[10:]
    yield "non-ASCII inside", key[:10] + "é" + key[10:]


@pytest.fixture
def table(demo_store: SQLiteStore) -> Iterator[tuple[Served, str, list[tuple[str, str | None]]]]:
    ring = KeyRing(demo_store)
    _, key = ring.create("good", (Scope.READ, Scope.INGEST))
    info, revoked = ring.create("revoked")
    authenticator = Authenticator(demo_store)
    revoked_jwt, _ = authenticator.issue(authenticator.authenticate(revoked))
    authenticator.close()
    ring.revoke(info.id)
    with serving(demo_store, failures_per_address=100_000) as served:  # the throttle has its own test
        yield served, key, list(hostile(demo_store, key, revoked, revoked_jwt))


def _sendable_in_a_header(credential: str | None) -> bool:
    return credential is None or (credential.isascii() and not any(c in credential for c in "\x00\r\n"))


async def test_every_hostile_credential_is_refused_on_every_http_door(
    table: tuple[Served, str, list[tuple[str, str | None]]], caplog: pytest.LogCaptureFixture
) -> None:
    served, key, credentials = table
    caplog.set_level(logging.DEBUG)
    doors = [
        ("GET", "/api/v1/analytics/dashboard", None),
        ("POST", "/api/v1/auth/token", None),
        ("POST", "/api/v1/ingest/users", b"user_id,kind,capital_usdc,created_at\n"),
        ("POST", "/mcp", b'{"jsonrpc":"2.0","id":1,"method":"tools/list"}'),
    ]
    tried = 0
    async with httpx.AsyncClient(base_url=served.url, timeout=30) as http:
        for what, credential in credentials:
            if not _sendable_in_a_header(credential):
                continue  # an HTTP client cannot send it: the WebSocket query and stdio doors try it
            for method, path, body in doors:
                headers = {"Content-Type": "text/csv", "Accept": "application/json, text/event-stream"}
                if credential is not None:
                    headers["Authorization"] = f"Bearer {credential}".strip()
                answer = await http.request(method, path, content=body, headers=headers)
                tried += 1
                if len(headers.get("Authorization", "")) > 16_000 and answer.status_code == 400:
                    # past the HTTP server's limit on a request's head: refused before the app runs
                    assert credential is not None and credential not in answer.text, (what, path)
                    continue
                assert answer.status_code == 401, (what, path, answer.status_code, answer.text[:200])
                assert answer.headers["www-authenticate"].startswith("Bearer")
                if path != "/mcp":  # the MCP transport answers in its own JSON-RPC form
                    assert answer.json()["error"]["code"] == "unauthorized", (what, path)
                if credential and len(credential) > 8:
                    assert credential not in answer.text and credential not in str(answer.headers), (
                        what,
                        path,
                    )
        ok = await http.get("/api/v1/analytics/dashboard", headers={"Authorization": f"Bearer {key}"})
        assert ok.status_code == 200
        unknown = await http.get(
            "/api/v1/analytics/dashboard", headers={"Authorization": f"Bearer {key[:-1]}X"}
        )
        revoked = await http.get(
            "/api/v1/analytics/dashboard", headers={"Authorization": f"Bearer {credentials[4][1]}"}
        )
    assert unknown.json() == revoked.json()  # the same answer whether or not the key exists
    assert tried >= 4 * 17
    logged = caplog.text
    assert caplog.records, "nothing was logged: the check below would prove nothing"
    for what, credential in [("the good key", key), *credentials]:
        if credential and len(credential) > 8:
            assert credential not in logged, f"{what} reached the log"


async def test_every_hostile_credential_is_closed_with_4401_before_any_data(
    table: tuple[Served, str, list[tuple[str, str | None]]],
) -> None:
    served, _, credentials = table
    for what, credential in credentials:
        if credential == "" or credential is None:
            url = served.ws_url if credential is None else f"{served.ws_url}?token="
        else:
            url = f"{served.ws_url}?token={quote(credential, safe='')}"
        if len(url) > 16_000:  # past what the HTTP server reads of a request line: refused before any upgrade
            with pytest.raises((InvalidStatus, InvalidMessage)):
                async with connect(url, max_size=None):
                    pass
            continue
        async with connect(url, max_size=None) as ws:
            code, reason, before = await close_of(ws)
        assert (code, before) == (4401, []), what
        if credential and len(credential) > 8:
            assert credential not in reason, what


async def test_every_hostile_credential_is_unauthorized_as_the_stdio_key(
    table: tuple[Served, str, list[tuple[str, str | None]]], demo_store: SQLiteStore
) -> None:
    _, _, credentials = table
    engine = open_engine(demo_store, now=NOW)
    authenticator = Authenticator(demo_store)
    try:
        for what, credential in credentials:
            server = create_server(engine, authenticator, api_key=credential)
            async with Client(server) as client:
                result = await client.call_tool(TOOL_NAME, {})
            assert result.is_error and result.structured_content is not None, what
            error = result.structured_content["error"]
            assert error["code"] == "unauthorized", (what, error)
            if credential and len(credential) > 8:
                assert credential not in error["message"], what
    finally:
        engine.close()
        authenticator.close()
