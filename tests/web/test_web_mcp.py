"""MCP over Streamable HTTP at /mcp of the running server, through the SDK's own client."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import anyio.to_thread
import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from mcp.types import CallToolResult

from cymetica_mcp.auth import KeyRing
from cymetica_mcp.mcp_server import TOOL_NAME
from cymetica_mcp.models import Filter, Period
from cymetica_mcp.store import SQLiteStore
from tests.conftest import NOW

from .conftest import Served, serving
from .helpers import MCP_INITIALIZE, forged_jwt

pytestmark = pytest.mark.anyio

PROBE = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
ACCEPT = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


@asynccontextmanager
async def client(served: Served, token: str, mode: str = "auto") -> AsyncIterator[Client]:
    """An SDK client session with the token as Bearer (the SDK leaves closing its HTTP client to us)."""
    async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=10) as http:
        transport = streamable_http_client(f"{served.url}/mcp", http_client=http)
        async with Client(transport, mode=mode) as session:
            yield session


def envelope(result: CallToolResult) -> dict[str, Any]:
    assert result.structured_content is not None
    return dict(result.structured_content)


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_the_tool_over_http_gives_the_rest_dashboard(served: Served, api_key: str, mode: str) -> None:
    async with httpx.AsyncClient(base_url=served.url) as http:
        rest = await http.get(
            "/api/v1/analytics/dashboard",
            params={"filter": "agents", "period": "7d"},
            headers={"Authorization": f"Bearer {api_key}"},
        )
        token = (await http.post("/api/v1/auth/token", headers={"Authorization": f"Bearer {api_key}"})).json()
    for credential in (api_key, token["access_token"]):
        async with client(served, credential, mode) as mcp:
            tools = await mcp.list_tools()
            result = await mcp.call_tool(TOOL_NAME, {"filter": "agents", "period": "7d"})
            refused = await mcp.call_tool(TOOL_NAME, {"period": "1y"})
        assert [t.name for t in tools.tools] == [TOOL_NAME]
        body = envelope(result)
        assert body["success"] is True and body["data"] == rest.json()
        assert body["data"] == served.engine.dashboard(Filter.AGENTS, Period.D7, NOW).to_wire()
        assert body["description"].startswith("Analytics (agents, 7d): ")
        assert refused.is_error and envelope(refused)["error"]["code"] == "invalid_period"


async def test_bad_tokens_get_401_with_the_resource_metadata(served: Served, api_key: str) -> None:
    bad = {
        "none": {},
        "malformed": {"Authorization": "Bearer nope"},
        "expired": {"Authorization": f"Bearer {forged_jwt(served.store, expired=True)}"},
        "foreign": {"Authorization": f"Bearer {forged_jwt(served.store, secret=b'k' * 32)}"},
        "query token": {},
    }
    async with httpx.AsyncClient(base_url=served.url) as http:
        for name, headers in bad.items():
            path = f"/mcp?token={api_key}" if name == "query token" else "/mcp"
            resp = await http.post(path, json=PROBE, headers={**ACCEPT, **headers})
            assert resp.status_code == 401, name
            challenge = resp.headers["www-authenticate"]
            assert challenge.startswith("Bearer") and "resource_metadata=" in challenge, name
            assert "Traceback" not in resp.text
        metadata = await http.get("/.well-known/oauth-protected-resource/mcp")
        await anyio.to_thread.run_sync(KeyRing(served.store).revoke, 1)
        revoked = await http.post(
            "/mcp", json=PROBE, headers={**ACCEPT, "Authorization": f"Bearer {api_key}"}
        )
    assert metadata.status_code == 200
    assert metadata.json()["resource"] == f"{served.url}/mcp"
    assert revoked.status_code == 401


async def test_a_key_revoked_during_a_session_is_refused_on_the_next_call(
    served: Served, api_key: str
) -> None:
    async with client(served, api_key) as mcp:
        first = await mcp.call_tool(TOOL_NAME, {})
        await anyio.to_thread.run_sync(KeyRing(served.store).revoke, 1)
        with pytest.raises(MCPError):  # the bearer middleware answers 401 before the tool runs
            await mcp.call_tool(TOOL_NAME, {})
    assert envelope(first)["success"] is True


async def test_tool_calls_over_http_draw_on_the_keys_rate_limit(demo_store: Any, api_key: str) -> None:
    from .conftest import serving

    with serving(demo_store, rate_burst=2, rate_per_minute=1) as served:
        async with client(served, api_key) as mcp:
            answers = [await mcp.call_tool(TOOL_NAME, {"period": p}) for p in ("24h", "7d", "30d")]
    assert [a.is_error for a in answers] == [False, False, True]
    refused = envelope(answers[2])["error"]
    assert refused["code"] == "rate_limited"
    assert "retry in" in refused["message"]


async def test_one_key_cannot_fill_the_session_table(demo_store: SQLiteStore, api_key: str) -> None:
    other = KeyRing(demo_store).create("other")[1]
    initialize = MCP_INITIALIZE
    accept = {"Accept": "application/json, text/event-stream"}
    with serving(demo_store, mcp_sessions_per_key=3) as served:
        async with httpx.AsyncClient(base_url=served.url, timeout=10) as http:

            async def open_session(key: str) -> int:
                answer = await http.post(
                    "/mcp", json=initialize, headers={**accept, "Authorization": f"Bearer {key}"}
                )
                return answer.status_code

            assert [await open_session(api_key) for _ in range(5)] == [200, 200, 200, 503, 503]
            assert await open_session(other) == 200  # another key is not locked out


async def test_a_request_whose_id_is_not_a_string_or_integer_is_refused_not_dropped(
    served: Served, api_key: str
) -> None:
    headers = {
        "Authorization": f"Bearer {api_key}",
        "Accept": "application/json, text/event-stream",
        "Content-Type": "application/json",
    }
    initialize = MCP_INITIALIZE
    async with httpx.AsyncClient(base_url=served.url, timeout=10) as http:
        opened = await http.post("/mcp", json=initialize, headers=headers)
        session = {
            **headers,
            "mcp-session-id": opened.headers["mcp-session-id"],
            "mcp-protocol-version": "2025-06-18",
        }
        await http.post(
            "/mcp", json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=session
        )
        for bad in ({"a": 1}, [1], 1.5, True, None):
            body = {"jsonrpc": "2.0", "id": bad, "method": "tools/list"}
            answer = await http.post("/mcp", json=body, headers=session)
            assert answer.status_code == 400, (bad, answer.status_code, answer.text)
            assert answer.json() == {
                "jsonrpc": "2.0",
                "id": None,
                "error": {
                    "code": -32600,
                    "message": "Invalid Request: a request's id must be a string or an integer",
                },
            }
        fine = await http.post(
            "/mcp", json={"jsonrpc": "2.0", "id": "x-7", "method": "tools/list"}, headers=session
        )
        # The body is read only once the credential is accepted: without one, 401 whatever it holds.
        anonymous = {k: v for k, v in session.items() if k != "Authorization"}
        unread = await http.post("/mcp", json={"jsonrpc": "2.0", "id": {}, "method": "x"}, headers=anonymous)
    assert fine.status_code == 200 and TOOL_NAME in fine.text
    assert unread.status_code == 401, unread.text


@pytest.mark.parametrize(
    ("body", "content_type", "status", "says"),
    [
        (b'{"jsonrpc":"2.0","id":1,"method":"tools/list"}', "text/plain", 415, "must be application/json"),
        (b'{"jsonrpc":"2.0","id":1,"method":"tools/list"}', None, 415, "got none"),
        (b'[{"jsonrpc":"2.0","id":1,"method":"tools/list"}]', "application/json", 400, "batches are not"),
        (b"[]", "application/json", 400, "batches are not accepted"),
        (b"5", "application/json", 400, "a JSON number, not an object"),
        (b"null", "application/json", 400, "a JSON null, not an object"),
        (b'{"id":1,"method":"tools/list"}', "application/json", 400, '"jsonrpc" must be "2.0"'),
        (b'{"jsonrpc":"1.0","id":1,"method":"a"}', "application/json", 400, '"jsonrpc" must be "2.0"'),
        (b'{"jsonrpc":"2.0","id":1,"method":5}', "application/json", 400, '"method" must be a string'),
        (b'{"jsonrpc":"2.0","id":1}', "application/json", 400, "neither a request or notification"),
    ],
)
async def test_what_is_not_one_json_rpc_message_gets_invalid_request_saying_why(
    served: Served, api_key: str, body: bytes, content_type: str | None, status: int, says: str
) -> None:
    headers = {"Authorization": f"Bearer {api_key}", "Accept": "application/json, text/event-stream"}
    async with httpx.AsyncClient(base_url=served.url, timeout=10) as http:
        opened = await http.post("/mcp", json=MCP_INITIALIZE, headers=headers)
        session = {**headers, "mcp-session-id": opened.headers["mcp-session-id"]}
        typed = session if content_type is None else {**session, "Content-Type": content_type}
        answer = await http.post("/mcp", content=body, headers=typed)
        after = await http.post(
            "/mcp", json={"jsonrpc": "2.0", "id": 2, "method": "tools/list"}, headers=session
        )
    assert answer.status_code == status, answer.text
    error = answer.json()
    assert error["id"] is None and error["error"]["code"] == -32600
    assert says in error["error"]["message"]
    assert after.status_code == 200 and TOOL_NAME in after.text, "the session goes on"


async def test_a_body_over_the_limit_gets_a_json_rpc_413_naming_it_whether_declared_or_streamed(
    served: Served, api_key: str
) -> None:
    headers = {"Authorization": f"Bearer {api_key}", **ACCEPT}
    over = b'{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"pad":"' + b"x" * (4 << 20) + b'"}}'

    async def streamed() -> AsyncIterator[bytes]:  # no Content-Length: chunked, counted as it comes
        for start in range(0, len(over), 1 << 16):
            yield over[start : start + (1 << 16)]

    async with httpx.AsyncClient(base_url=served.url, timeout=10) as http:
        opened = await http.post("/mcp", json=MCP_INITIALIZE, headers=headers)
        session = {**headers, "mcp-session-id": opened.headers["mcp-session-id"]}
        declared = await http.post("/mcp", content=over, headers=session)
        chunked = await http.post("/mcp", content=streamed(), headers=session)
        after = await http.post("/mcp", json=PROBE, headers=session)
    assert "content-length" not in chunked.request.headers
    for answer, size in ((declared, f"{len(over)} bytes"), (chunked, "more than 4194304 bytes")):
        assert answer.status_code == 413, answer.text
        assert answer.headers["content-type"] == "application/json"
        assert answer.json() == {
            "jsonrpc": "2.0",
            "id": None,
            "error": {
                "code": -32600,
                "message": f"Request body too large: {size}; the limit is 4194304 bytes (4 MiB) "
                "for one JSON-RPC message",
            },
        }
    assert after.status_code == 200 and TOOL_NAME in after.text, "the session goes on"


async def test_the_sdk_client_shows_why_a_call_too_large_was_refused(served: Served, api_key: str) -> None:
    """The SDK's client surfaces a JSON-RPC error body of a non-2xx answer; a bare text 413 would only
    give its caller "Server returned an error response"."""
    async with client(served, api_key) as mcp:
        with pytest.raises(MCPError) as refused:
            await mcp.call_tool(TOOL_NAME, {"filter": "x" * (4 << 20)})
        result = await mcp.call_tool(TOOL_NAME, {"filter": "agents", "period": "7d"})
    assert refused.value.error.code == -32600
    assert "the limit is 4194304 bytes (4 MiB)" in refused.value.error.message
    assert not result.is_error, "the session goes on"


def test_serving_sqlite_imports_neither_the_mcp_sdk_nor_psycopg() -> None:
    """The serve path (CLI, app, server, a SQLite store) loads no module of the MCP SDK nor of psycopg:
    ~22 and ~12 MiB of anonymous memory that a server may never need (they load when first used)."""
    probe = (
        "import sys, cymetica_mcp.cli, cymetica_mcp.cli._web, cymetica_mcp.web._app, cymetica_mcp.web._server;"
        "from cymetica_mcp.store import open_store, copy_store;"
        "print(sorted(m for m in sys.modules if m.partition('.')[0] in ('mcp', 'mcp_types', 'psycopg', 'psycopg_pool')))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "[]", done.stdout


async def test_the_first_mcp_requests_load_the_sdk_once(served: Served, api_key: str) -> None:
    lazy = served.app.mcp
    assert lazy is not None
    async with httpx.AsyncClient(base_url=served.url) as http:
        rest = await http.get("/api/v1/analytics/dashboard", headers={"Authorization": f"Bearer {api_key}"})
    assert rest.status_code == 200 and not lazy.loaded  # REST alone does not build the MCP server
    answers: list[dict[str, Any]] = []

    async def call() -> None:
        async with client(served, api_key) as mcp:
            answers.append(envelope(await mcp.call_tool(TOOL_NAME, {})))

    async with anyio.create_task_group() as tasks:  # three sessions racing for the first build
        for _ in range(3):
            tasks.start_soon(call)
    assert lazy.loaded
    assert [a["success"] for a in answers] == [True, True, True]
    assert all(a["data"] == rest.json() for a in answers)
