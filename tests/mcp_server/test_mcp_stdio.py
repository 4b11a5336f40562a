"""`cymetica-mcp mcp` spawned exactly as a host spawns it: the command, and CYMETICA_* in its environment."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import jsonschema
import pytest
from anyio.streams.buffered import BufferedByteReceiveStream
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.shared.exceptions import MCPDeprecationWarning
from mcp.shared.subscriptions import ResourceUpdated
from mcp.types import CallToolResult, EmbeddedResource, ResourceUpdatedNotification

from cymetica_mcp.auth import KeyRing
from cymetica_mcp.cli import main
from cymetica_mcp.mcp_server import dashboard_uri
from cymetica_mcp.mcp_server._envelope import OUTPUT_SCHEMA, Failure, Success
from cymetica_mcp.models import Filter, Period
from cymetica_mcp.store import SQLiteStore
from cymetica_mcp.windows import iso
from tests.conftest import NOW, NOW_ISO

pytestmark = pytest.mark.anyio

CYMETICA_MCP = str(Path(sys.executable).parent / "cymetica-mcp")
TOOL = "et_analytics_dashboard"


@dataclass
class Host:
    """What a desktop host knows about the server: its command and the environment it starts it in."""

    db: Path
    key: str
    log: Path

    def env(self, **changes: str | None) -> dict[str, str]:
        """The server's CYMETICA_* environment, with some variables changed or (None) removed."""
        env = {
            "CYMETICA_DB": str(self.db),
            "CYMETICA_API_KEY": self.key,
            "CYMETICA_NOW": NOW_ISO,
            "CYMETICA_LOG_LEVEL": "DEBUG",
        }
        for name, value in changes.items():
            if value is None:
                del env[name]
            else:
                env[name] = value
        return env

    @asynccontextmanager
    async def session(
        self, mode: str = "auto", message_handler: Any = None, **env: str | None
    ) -> AsyncIterator[Client]:
        """A client session with a freshly spawned `cymetica-mcp mcp`; its stderr goes to `log`."""
        params = StdioServerParameters(command=CYMETICA_MCP, args=["mcp"], env=self.env(**env))
        with self.log.open("a") as errlog:
            transport = stdio_client(params, errlog=errlog)
            async with Client(transport, mode=mode, message_handler=message_handler) as client:
                yield client

    async def cli(self, *args: str) -> str:
        """Run another `cymetica-mcp` command against the same store, as a user would; its stdout."""
        done = await anyio.run_process([CYMETICA_MCP, *args], env={**os.environ, **self.env()})
        return done.stdout.decode()


@pytest.fixture
def host(demo_store: SQLiteStore, tmp_path: Path) -> Host:
    """A host configured with the demo store and a valid key."""
    _, key = KeyRing(demo_store).create("desktop host")
    return Host(db=demo_store.path, key=key, log=tmp_path / "server-stderr.log")


def envelope(result: CallToolResult) -> dict[str, Any]:
    """The structured envelope, checked to be exactly the JSON text too and to match the output schema."""
    assert result.structured_content is not None
    assert json.loads(result.content[0].text) == result.structured_content  # type: ignore[union-attr]
    jsonschema.validate(result.structured_content, OUTPUT_SCHEMA)
    (Failure if result.is_error else Success).model_validate(result.structured_content)
    return dict(result.structured_content)


async def test_a_handshake_host_sees_the_schema_and_every_error_envelope(host: Host) -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"filter": "bots"}, "invalid_filter"),
        ({"period": "1y"}, "invalid_period"),
        ({"filter": 7}, "invalid_filter"),
        ({"period": True}, "invalid_period"),
        ({"filter": "all", "window": "7d"}, "invalid_argument"),
        ({"as_of": "2026-03-20"}, "invalid_as_of"),
        ({"as_of": iso(NOW + 1)}, "invalid_as_of"),
    ]
    async with host.session(mode="legacy") as client:
        (tool,) = (await client.list_tools()).tools
        capabilities = client.server_capabilities
        results = [(await client.call_tool(TOOL, arguments), code) for arguments, code in cases]
        still_serving = await client.call_tool(TOOL, {"filter": "agents"})
    assert tool.name == TOOL
    props = tool.input_schema["properties"]
    assert (props["filter"]["enum"], props["filter"]["default"]) == (["all", "humans", "agents"], "all")
    assert (props["period"]["enum"], props["period"]["default"]) == (["24h", "7d", "30d"], "24h")
    assert tool.annotations is not None
    assert (tool.annotations.read_only_hint, tool.annotations.idempotent_hint) == (True, True)
    assert tool.annotations.open_world_hint is False
    assert tool.output_schema is not None and tool.output_schema["type"] == "object"
    assert capabilities.resources is not None and capabilities.resources.subscribe
    for result, code in results:
        body = envelope(result)
        assert result.is_error and body["success"] is False and set(body) == {"success", "error"}
        assert set(body["error"]) == {"code", "message"} and body["error"]["code"] == code
        assert "accepted" in body["error"]["message"] or "must be one of" in body["error"]["message"]
    assert not still_serving.is_error


async def test_every_filter_period_and_as_of_is_the_cli_dashboard_at_the_same_now(
    host: Host, capsys: pytest.CaptureFixture[str]
) -> None:
    then = "2026-03-10T08:00:00Z"
    asks = [({"filter": f.value, "period": p.value}, NOW_ISO) for f in Filter for p in Period]
    asks.append(({"filter": "humans", "period": "30d", "as_of": then}, then))
    async with host.session() as client:
        answers = [envelope(await client.call_tool(TOOL, arguments)) for arguments, _ in asks]
        prompt = await client.get_prompt("analytics_briefing", {"filter": "agents", "period": "24h"})
    for (arguments, now), body in zip(asks, answers, strict=True):
        flags = ["--filter", arguments["filter"], "--period", arguments["period"], "--now", now]
        assert main(["--db", str(host.db), "dashboard", "--json", *flags]) == 0
        assert body["success"] is True and body["meta"]["as_of"] == now
        assert body["data"] == json.loads(capsys.readouterr().out), arguments
        assert body["description"].startswith(f"Analytics ({arguments['filter']}, {arguments['period']}): ")
    embedded, request = prompt.messages
    assert isinstance(embedded.content, EmbeddedResource)
    assert embedded.content.resource.uri == "analytics://dashboard/agents/24h"
    assert request.content.type == "text" and "trading agents" in request.content.text


@pytest.mark.parametrize("key", [None, "cym_never-created-anywhere"])
async def test_without_a_valid_key_every_call_is_unauthorized(host: Host, key: str | None) -> None:
    async with host.session(CYMETICA_API_KEY=key) as client:
        results = [await client.call_tool(TOOL, {}), await client.call_tool(TOOL, {"filter": "humans"})]
    for result in results:
        error = envelope(result)["error"]
        assert result.is_error and error["code"] == "unauthorized"
        assert "CYMETICA_API_KEY" in error["message"] and "keys create --name" in error["message"]
    assert "refused" in host.log.read_text()


async def test_a_key_revoked_from_the_cli_is_refused_by_the_running_server(host: Host) -> None:
    async with host.session() as client:
        assert not (await client.call_tool(TOOL, {})).is_error
        await host.cli("keys", "revoke", "1")
        result = await client.call_tool(TOOL, {})
    assert result.is_error and envelope(result)["error"]["code"] == "unauthorized"


async def test_stdout_is_only_protocol_and_the_key_never_reaches_the_logs(host: Host) -> None:
    requests: list[dict[str, Any]] = [
        {"method": "tools/list"},
        {
            "method": "tools/call",
            "params": {"name": TOOL, "arguments": {"filter": "agents", "period": "30d"}},
        },
        {"method": "tools/call", "params": {"name": TOOL, "arguments": {"filter": "nope"}}},
        {"method": "resources/read", "params": {"uri": "analytics://dashboard/humans/7d"}},
        {"method": "prompts/get", "params": {"name": "analytics_briefing", "arguments": {"period": "7d"}}},
    ]
    handshake = {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "raw-host", "version": "1"},
    }
    lines: list[bytes] = []
    with host.log.open("w") as errlog:
        process = await anyio.open_process(
            [CYMETICA_MCP, "mcp"], env={**os.environ, **host.env()}, stderr=errlog
        )
        async with process:
            assert process.stdin is not None and process.stdout is not None
            stdin, stdout = process.stdin, BufferedByteReceiveStream(process.stdout)

            async def send(message: dict[str, Any]) -> None:
                await stdin.send(json.dumps({"jsonrpc": "2.0", **message}).encode() + b"\n")

            with anyio.fail_after(20):
                await send({"id": 0, "method": "initialize", "params": handshake})
                lines.append(await stdout.receive_until(b"\n", 10_000_000))
                await send({"method": "notifications/initialized"})
                for number, request in enumerate(requests, start=1):
                    await send({"id": number, **request})
                while len(lines) < 1 + len(requests):
                    lines.append(await stdout.receive_until(b"\n", 10_000_000))
                await stdin.aclose()
                assert await process.wait() == 0
                try:
                    rest = await stdout.receive()
                except anyio.EndOfStream:
                    rest = b""
    messages = [json.loads(line) for line in lines]
    assert all(m["jsonrpc"] == "2.0" and "id" in m for m in messages) and not rest
    by_id = {m["id"]: m for m in messages}
    assert by_id[2]["result"]["structuredContent"]["success"] is True
    assert by_id[3]["result"]["isError"] is True
    assert by_id[3]["result"]["structuredContent"]["error"]["code"] == "invalid_filter"
    assert json.loads(by_id[4]["result"]["contents"][0]["text"])["success"] is True
    assert by_id[5]["result"]["messages"]
    log = host.log.read_text()
    assert "accepted" in log and "et_analytics_dashboard agents/30d" in log
    assert host.key not in log and host.key[12:] not in log
    assert "Traceback" not in log


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_subscribers_hear_about_an_import_made_by_the_cli(
    host: Host, tmp_path: Path, mode: str
) -> None:
    uri = dashboard_uri(Filter.AGENTS, Period.D7)
    users, trades = tmp_path / "users.csv", tmp_path / "trades.csv"
    users.write_text("user_id,kind,capital_usdc,created_at\nlate_bot,agent,500,2026-03-01T00:00:00Z\n")
    trades.write_text(f"trade_id,user_id,ts,volume_usdc,pnl_usdc\nlate_1,late_bot,{iso(NOW - 5)},42,1.5\n")
    heard = anyio.Event()

    async def on_message(message: object) -> None:
        if isinstance(message, ResourceUpdatedNotification) and message.params.uri == uri:
            heard.set()

    async with host.session(mode=mode, message_handler=on_message) as client:
        before = json.loads((await client.read_resource(uri)).contents[0].text)  # type: ignore[union-attr]
        if mode == "legacy":
            with pytest.warns(MCPDeprecationWarning):
                await client.subscribe_resource(uri)
            await host.cli("import", "--users", str(users), "--trades", str(trades))
            with anyio.fail_after(10):
                await heard.wait()
        else:
            async with client.listen(resource_subscriptions=[uri]) as events:
                await host.cli("import", "--users", str(users), "--trades", str(trades))
                with anyio.fail_after(10):
                    assert await events.__anext__() == ResourceUpdated(uri=uri)
        after = json.loads((await client.read_resource(uri)).contents[0].text)  # type: ignore[union-attr]
    assert after["meta"]["data_version"] == before["meta"]["data_version"] + 1
    volume = (
        after["data"]["metrics"]["trading_volume"]["value"]
        - before["data"]["metrics"]["trading_volume"]["value"]
    )
    assert round(volume, 2) == 42
