"""The MCP server through real in-memory client sessions of the SDK (both protocol eras)."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx2
import jsonschema
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.server.mcpserver import MCPServer
from mcp.shared.exceptions import MCPDeprecationWarning, MCPError
from mcp.shared.subscriptions import ResourceUpdated
from mcp.types import (
    INVALID_PARAMS,
    CallToolResult,
    EmbeddedResource,
    PromptReference,
    ResourceTemplateReference,
    ResourceUpdatedNotification,
)

from cymetica_mcp.auth import Authenticator, KeyRing, jwt_secret
from cymetica_mcp.engine import Engine, Result
from cymetica_mcp.ingest import import_files
from cymetica_mcp.mcp_server import (
    FORBIDDEN_RPC_CODE,
    TOOL_NAME,
    UNAUTHORIZED_RPC_CODE,
    URI_TEMPLATE,
    Dashboards,
    create_server,
    dashboard_uri,
)
from cymetica_mcp.mcp_server._caller import SCOPE, AnalyticsTokenVerifier, Credentials, http_auth_settings
from cymetica_mcp.mcp_server._envelope import OUTPUT_SCHEMA, Failure, Meta, Success, success
from cymetica_mcp.models import (
    ActivityPoint,
    Filter,
    MetricCard,
    Period,
    ProfitabilityBucket,
    Scope,
    VolumePoint,
)
from cymetica_mcp.store import SQLiteStore
from cymetica_mcp.windows import iso, parse_instant, windows
from tests.conftest import NOW

pytestmark = pytest.mark.anyio

COMBINATIONS = [(f, p) for f in Filter for p in Period]


@pytest.fixture
def authenticator(demo_store: SQLiteStore) -> Iterator[Authenticator]:
    """The one authenticator every door uses."""
    authenticator = Authenticator(demo_store, jwt_secret(demo_store, None))
    yield authenticator
    authenticator.close()


@pytest.fixture
def api_key(demo_store: SQLiteStore) -> str:
    """A freshly created API key's secret."""
    return KeyRing(demo_store).create("tests")[1]


@pytest.fixture
def server(engine: Engine, authenticator: Authenticator, api_key: str) -> MCPServer[Any]:
    """The server as `cymetica-mcp mcp` builds it, with a fast store watcher."""
    return create_server(engine, authenticator, api_key=api_key, poll_seconds=0.05)


@pytest.fixture(params=["auto", "legacy"])
def mode(request: pytest.FixtureRequest) -> str:
    """Both protocol eras: 2026-07-28 per-request envelopes and the initialize handshake."""
    return str(request.param)


def envelope(result: CallToolResult) -> dict[str, Any]:
    """The structured envelope, checked to be exactly the JSON text block too, to match the
    published output schema (strict clients such as the TypeScript SDK check errors' content too)
    and to be exactly the models' shape down to every series point (which the schema describes
    in words only)."""
    assert result.structured_content is not None
    assert [block.type for block in result.content] == ["text"]
    assert json.loads(result.content[0].text) == result.structured_content  # type: ignore[union-attr]
    jsonschema.validate(result.structured_content, OUTPUT_SCHEMA)
    model = Failure if result.is_error else Success
    assert (
        model.model_validate(result.structured_content).model_dump(mode="json") == result.structured_content
    )
    return dict(result.structured_content)


def write_new_trade(folder: Path) -> tuple[Path, Path]:
    """A new agent and one trade of theirs just before NOW."""
    folder.mkdir(parents=True, exist_ok=True)
    users, trades = folder / "users.csv", folder / "trades.csv"
    users.write_text("user_id,kind,capital_usdc,created_at\nnew_agent,agent,1000,2026-01-01T00:00:00Z\n")
    trades.write_text(
        f"trade_id,user_id,ts,volume_usdc,pnl_usdc\nnew_t1,new_agent,{iso(NOW - 60)},250.5,12\n"
    )
    return users, trades


async def test_tools_list_publishes_enums_defaults_annotations_and_output_schema(
    server: MCPServer[Any], mode: str
) -> None:
    async with Client(server, mode=mode) as client:
        (tool,) = (await client.list_tools()).tools
    assert tool.name == TOOL_NAME and tool.title
    assert tool.description and "USDC" in tool.description and "change" in tool.description
    props = tool.input_schema["properties"]
    assert props["filter"]["enum"] == ["all", "humans", "agents"] and props["filter"]["default"] == "all"
    assert props["period"]["enum"] == ["24h", "7d", "30d"] and props["period"]["default"] == "24h"
    assert "as_of" in props and not tool.input_schema.get("required")
    assert tool.input_schema["additionalProperties"] is False
    assert tool.annotations is not None
    assert tool.annotations.read_only_hint is True
    assert tool.annotations.idempotent_hint is True
    assert tool.annotations.open_world_hint is False
    assert tool.output_schema == OUTPUT_SCHEMA and tool.output_schema["type"] == "object"
    success, failure = tool.output_schema["anyOf"]
    assert set(success["required"]) == {"success", "data", "description", "meta"}
    assert set(failure["required"]) == {"success", "error"}
    assert "$ref" not in json.dumps(tool.output_schema) and "$defs" not in tool.output_schema


def test_the_output_schema_checks_every_objects_keys_and_names_every_field(engine: Engine) -> None:
    good = success(engine.result(Filter.AGENTS, Period.D7, NOW)).model_dump(mode="json")
    jsonschema.validate(good, OUTPUT_SCHEMA)
    jsonschema.validate({"success": False, "error": {"code": "internal", "message": "m"}}, OUTPUT_SCHEMA)
    card = ("data", "metrics", "avg_roi")
    bad: list[tuple[tuple[str, ...], str, object]] = [
        ((), "meta", None),  # a missing key
        ((), "extra", 1),  # an unknown key
        ((), "success", False),  # a success that says it failed
        (card, "suffix", None),  # a card without its unit
        (card, "unit", "%"),  # a card with a key it does not have
        (("meta",), "cached", None),
        (("data", "metrics"), "filter", "bots"),  # outside the enum
        (("data",), "volume_over_time", good["data"]["volume_over_time"][:3]),  # too few points
        (("data",), "profitability_distribution", {}),  # not a list
    ]
    for path, key, value in bad:
        broken = copy.deepcopy(good)
        target = broken
        for part in path:
            target = target[part]
        if value is None:
            del target[key]
        else:
            target[key] = value
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(broken, OUTPUT_SCHEMA)
    # What the schema leaves to words, the words name: every field of every card, point and meta.
    success_schema = OUTPUT_SCHEMA["anyOf"][0]["properties"]
    data = success_schema["data"]["properties"]
    described = [
        (data["metrics"]["description"], MetricCard),
        (success_schema["meta"]["description"], Meta),
        (data["volume_over_time"]["description"], VolumePoint),
        (data["user_activity"]["description"], ActivityPoint),
        (data["profitability_distribution"]["description"], ProfitabilityBucket),
    ]
    for words, model in described:
        fields: dict[str, object] = model.model_fields  # type: ignore[attr-defined]  # a class in a list of pairs
        assert all(f"{name}: " in words for name in fields), (model, words)
    assert "$ref" not in json.dumps(OUTPUT_SCHEMA) and len(json.dumps(OUTPUT_SCHEMA)) < 8_000


@pytest.mark.parametrize(("filter", "period"), COMBINATIONS)
async def test_each_filter_and_period_returns_the_engines_dashboard(
    server: MCPServer[Any], engine: Engine, filter: Filter, period: Period
) -> None:
    async with Client(server) as client:
        result = await client.call_tool(TOOL_NAME, {"filter": filter.value, "period": period.value})
    assert not result.is_error
    body = envelope(result)
    expected = engine.dashboard(filter, period, NOW)
    assert body["success"] is True
    assert body["data"] == expected.to_wire()
    assert body["description"] == expected.describe()
    assert body["description"].startswith(f"Analytics ({filter.value}, {period.value}): ")


async def test_defaults_are_all_and_24h(server: MCPServer[Any], engine: Engine, mode: str) -> None:
    async with Client(server, mode=mode) as client:
        result = await client.call_tool(TOOL_NAME, {})
    assert envelope(result)["data"] == engine.dashboard(Filter.ALL, Period.H24, NOW).to_wire()


async def test_meta_names_the_windows_instant_and_store_version(
    server: MCPServer[Any], demo_store: SQLiteStore
) -> None:
    async with Client(server) as client:
        body = envelope(await client.call_tool(TOOL_NAME, {"filter": "agents", "period": "7d"}))
    current, previous, _ = windows(Period.D7, NOW)
    meta = body["meta"]
    assert meta["as_of"] == iso(NOW) == body["data"]["metrics"]["timestamp"]
    assert meta["window"] == {"start": iso(current.start), "end": iso(NOW)}
    assert meta["previous_window"] == {"start": iso(previous.start), "end": iso(NOW - 7 * 86_400)}
    assert (meta["bucket_seconds"], meta["buckets"]) == (6 * 3_600, 28)
    assert meta["data_version"] == demo_store.data_version()
    assert meta["computed_at"].endswith("Z")
    assert "meta" not in body["data"]


async def test_as_of_answers_for_that_past_instant(server: MCPServer[Any], engine: Engine) -> None:
    async with Client(server) as client:
        utc = envelope(await client.call_tool(TOOL_NAME, {"period": "7d", "as_of": "2026-03-01T10:00:00Z"}))
        offset = envelope(
            await client.call_tool(TOOL_NAME, {"period": "7d", "as_of": "2026-03-01T12:00:00+02:00"})
        )
    then = parse_instant("2026-03-01T10:00:00Z")
    assert utc["data"] == engine.dashboard(Filter.ALL, Period.D7, then).to_wire()
    assert utc["meta"]["as_of"] == "2026-03-01T10:00:00Z"
    assert offset["data"] == utc["data"]


async def test_a_cached_dashboard_is_encoded_once_and_an_import_is_served_at_once(
    engine: Engine, authenticator: Authenticator, api_key: str, demo_store: SQLiteStore, tmp_path: Path
) -> None:
    dashboards = Dashboards(engine, Credentials(authenticator, api_key))
    first = await dashboards.call_tool({"filter": "agents"})
    again, third = (
        await dashboards.call_tool({"filter": "agents"}),
        await dashboards.call_tool({"filter": "agents"}),
    )
    assert envelope(first)["meta"]["cached"] is False and envelope(again)["meta"]["cached"] is True
    assert third is again  # the engine's same dashboard: the finished result is reused as is
    assert (await dashboards.call_tool({"filter": "humans"})) is not again
    await anyio.to_thread.run_sync(import_files, demo_store, *write_new_trade(tmp_path / "new"))
    after = envelope(await dashboards.call_tool({"filter": "agents"}))
    assert after["meta"]["data_version"] == envelope(again)["meta"]["data_version"] + 1
    assert after["meta"]["cached"] is False
    assert after["data"] == engine.dashboard(Filter.AGENTS, Period.H24, NOW).to_wire()
    assert after["data"] != envelope(again)["data"]


@pytest.mark.parametrize(
    ("arguments", "code", "says"),
    [
        ({"filter": "bots"}, "invalid_filter", "all, humans, agents; got 'bots'"),
        ({"filter": 5}, "invalid_filter", "got 5"),
        ({"filter": None}, "invalid_filter", "got None"),
        ({"filter": "AGENTS"}, "invalid_filter", "got 'AGENTS'"),
        ({"period": "1y"}, "invalid_period", "24h, 7d, 30d; got '1y'"),
        ({"period": ["7d"]}, "invalid_period", "got ['7d']"),
        ({"as_of": "yesterday"}, "invalid_as_of", "ISO 8601"),
        ({"as_of": "2026-03-20T12:00:00"}, "invalid_as_of", "without a UTC offset"),
        ({"as_of": "2026-03-20T12:34:57Z"}, "invalid_as_of", "in the future"),
        ({"as_of": 1_774_000_000}, "invalid_as_of", "must be a string"),
        ({"filter": "all", "limit": 5}, "invalid_argument", "unknown argument 'limit'"),
        ({"as_of": "2026-03-20T12:00:00Z" * 1000}, "invalid_as_of", "20000 characters long"),
        ({f"x{i}": 1 for i in range(1000)}, "invalid_argument", "'x0', 'x1', 'x10', 'x100', 'x101', ..."),
    ],
)
async def test_bad_arguments_get_the_contract_envelope(
    server: MCPServer[Any], mode: str, arguments: dict[str, Any], code: str, says: str
) -> None:
    async with Client(server, mode=mode) as client:
        result = await client.call_tool(TOOL_NAME, arguments)
        still_serving = await client.call_tool(TOOL_NAME, {})
    assert result.is_error
    body = envelope(result)
    assert body["success"] is False and body["error"]["code"] == code
    assert says in body["error"]["message"]
    assert "Traceback" not in body["error"]["message"]
    assert not still_serving.is_error


@pytest.mark.parametrize(
    ("key", "says"),
    [
        (None, "CYMETICA_API_KEY"),
        ("", "keys create --name"),
        ("cym_this-key-was-never-created", "invalid or revoked API key"),
        ("not a key at all", "malformed credential"),
    ],
)
async def test_calls_without_a_valid_key_are_unauthorized(
    engine: Engine, authenticator: Authenticator, key: str | None, says: str
) -> None:
    server = create_server(engine, authenticator, api_key=key)
    uri = dashboard_uri(Filter.ALL, Period.H24)
    async with Client(server) as client:
        bad_filter = await client.call_tool(TOOL_NAME, {"filter": "bots"})
        with pytest.raises(MCPError) as refused:
            await client.read_resource(uri)
        with pytest.raises(MCPError) as not_listening, anyio.fail_after(5):
            async with client.listen(resource_subscriptions=[uri]):
                pass
    async with Client(server, mode="legacy") as client:
        with pytest.raises(MCPError) as not_subscribed, pytest.warns(MCPDeprecationWarning):
            await client.subscribe_resource(uri)
    body = envelope(bad_filter)
    assert body["error"]["code"] == "unauthorized"  # authentication comes before validation
    assert says in body["error"]["message"] and "keys create" in body["error"]["message"]
    for error in (refused.value, not_listening.value, not_subscribed.value):
        assert error.code == UNAUTHORIZED_RPC_CODE
        assert error.data["error"]["code"] == "unauthorized"


async def test_a_key_revoked_by_another_process_is_refused_on_the_next_call(
    server: MCPServer[Any], demo_store: SQLiteStore
) -> None:
    ring = KeyRing(
        SQLiteStore(demo_store.path)
    )  # as `cymetica-mcp keys revoke` would, with its own connection
    async with Client(server) as client:
        assert not (await client.call_tool(TOOL_NAME, {})).is_error
        (key,) = ring.list()
        ring.revoke(key.id)
        result = await client.call_tool(TOOL_NAME, {})
    assert result.is_error
    assert envelope(result)["error"]["code"] == "unauthorized"


async def test_a_key_without_the_read_scope_is_forbidden_on_every_request(
    engine: Engine, authenticator: Authenticator, demo_store: SQLiteStore
) -> None:
    _, writer = KeyRing(demo_store).create("platform", (Scope.INGEST,))
    server = create_server(engine, authenticator, api_key=writer)
    async with Client(server) as client:
        result = await client.call_tool(TOOL_NAME, {})
        with pytest.raises(MCPError) as refused:
            await client.read_resource(dashboard_uri(Filter.ALL, Period.H24))
    assert result.is_error
    body = envelope(result)
    assert body["error"]["code"] == "forbidden" and "'read' scope" in body["error"]["message"]
    assert refused.value.code == FORBIDDEN_RPC_CODE
    assert refused.value.data["error"]["code"] == "forbidden"


async def test_an_unknown_tool_is_a_protocol_error_naming_the_tools(
    server: MCPServer[Any], mode: str
) -> None:
    def noop() -> str:
        return "ok"

    server.add_tool(noop, name="noop")  # a tool added later (as the benchmarks' reference) is known too
    async with Client(server, mode=mode) as client:
        with pytest.raises(MCPError) as refused:
            await client.call_tool("et_analytics", {})
        assert not (await client.call_tool(TOOL_NAME, {})).is_error  # the session goes on
        assert not (await client.call_tool("noop", {})).is_error
    assert refused.value.code == -32602
    assert f"unknown tool 'et_analytics'; the tools are: {TOOL_NAME}, noop" in str(refused.value)


class BrokenEngine(Engine):
    """An engine whose computation fails, as a corrupt store or a bug would."""

    def result(self, filter: Filter, period: Period, now: int | None = None) -> Result:
        raise RuntimeError("disk I/O error at /secret/path")


async def test_an_internal_failure_is_an_envelope_without_details(
    demo_store: SQLiteStore, authenticator: Authenticator, api_key: str
) -> None:
    server = create_server(BrokenEngine(demo_store, clock=lambda: NOW), authenticator, api_key=api_key)
    async with Client(server) as client:
        result = await client.call_tool(TOOL_NAME, {"filter": "agents"})
        with pytest.raises(MCPError) as read_failure:
            await client.read_resource(dashboard_uri(Filter.AGENTS, Period.D7))
    body = envelope(result)
    assert result.is_error and body["error"]["code"] == "internal"
    assert "secret" not in json.dumps(body) and "secret" not in read_failure.value.message


async def test_resources_list_the_template_and_every_dashboard(
    server: MCPServer[Any], engine: Engine
) -> None:
    async with Client(server) as client:
        (template,) = (await client.list_resource_templates()).resource_templates
        listed = {r.uri for r in (await client.list_resources()).resources}
        read = await client.read_resource("analytics://dashboard/humans/30d")
        with pytest.raises(MCPError) as unknown:
            await client.read_resource("analytics://dashboard/bots/30d")
    assert template.uri_template == URI_TEMPLATE and template.mime_type == "application/json"
    assert listed == {dashboard_uri(f, p) for f, p in COMBINATIONS} | {"ui://cymetica/dashboard.html"}
    (content,) = read.contents
    body = json.loads(content.text)  # type: ignore[union-attr]
    assert body["data"] == engine.dashboard(Filter.HUMANS, Period.D30, NOW).to_wire()
    assert unknown.value.code == INVALID_PARAMS and "invalid_filter" in unknown.value.message


async def test_handshake_subscribers_are_told_when_an_import_changes_the_data(
    server: MCPServer[Any], demo_store: SQLiteStore, tmp_path: Path
) -> None:
    updates: list[str] = []
    notified = anyio.Event()

    async def on_message(message: object) -> None:
        if isinstance(message, ResourceUpdatedNotification):
            updates.append(message.params.uri)
            notified.set()

    uri = dashboard_uri(Filter.AGENTS, Period.H24)
    async with Client(server, mode="legacy", message_handler=on_message) as client:
        assert client.server_capabilities.resources and client.server_capabilities.resources.subscribe
        with pytest.warns(MCPDeprecationWarning):
            await client.subscribe_resource(uri)
        before = json.loads((await client.read_resource(uri)).contents[0].text)  # type: ignore[union-attr]
        await anyio.to_thread.run_sync(import_files, demo_store, *write_new_trade(tmp_path / "new"))
        with anyio.fail_after(5):
            await notified.wait()
        after = json.loads((await client.read_resource(uri)).contents[0].text)  # type: ignore[union-attr]
    assert updates == [uri]
    assert after["meta"]["data_version"] == before["meta"]["data_version"] + 1
    assert (
        after["data"]["metrics"]["active_users"]["value"]
        == before["data"]["metrics"]["active_users"]["value"] + 1
    )


async def test_listeners_are_told_when_an_import_changes_the_data(
    server: MCPServer[Any], demo_store: SQLiteStore, tmp_path: Path
) -> None:
    uri = dashboard_uri(Filter.ALL, Period.D7)
    async with Client(server) as client, client.listen(resource_subscriptions=[uri]) as events:
        await anyio.to_thread.run_sync(import_files, demo_store, *write_new_trade(tmp_path / "new"))
        with anyio.fail_after(5):
            event = await events.__anext__()
    assert event == ResourceUpdated(uri=uri)


async def test_the_briefing_prompt_embeds_the_dashboard(server: MCPServer[Any], engine: Engine) -> None:
    async with Client(server) as client:
        (prompt,) = (await client.list_prompts()).prompts
        briefing = await client.get_prompt("analytics_briefing", {"filter": "agents", "period": "7d"})
        with pytest.raises(MCPError) as bad:
            await client.get_prompt("analytics_briefing", {"period": "1y"})
    assert prompt.name == "analytics_briefing"
    assert {a.name for a in prompt.arguments or []} == {"filter", "period"}
    data, request = briefing.messages
    assert isinstance(data.content, EmbeddedResource)
    assert data.content.resource.uri == dashboard_uri(Filter.AGENTS, Period.D7)
    body = json.loads(data.content.resource.text)  # type: ignore[union-attr]
    assert body["data"] == engine.dashboard(Filter.AGENTS, Period.D7, NOW).to_wire()
    assert request.content.type == "text" and "as_of" in request.content.text
    assert "invalid_period" in bad.value.message


async def test_the_token_verifier_accepts_keys_and_jwts_and_refuses_the_rest(
    authenticator: Authenticator, api_key: str, demo_store: SQLiteStore
) -> None:
    verifier = AnalyticsTokenVerifier(authenticator, resource="http://127.0.0.1:8000/mcp")
    by_key = await verifier.verify_token(api_key)
    assert by_key is not None and by_key.scopes == [SCOPE] and by_key.subject == "1"
    jwt, _ = authenticator.issue(authenticator.authenticate(api_key))
    assert await verifier.verify_token(jwt) is not None
    assert await verifier.verify_token("cym_unknown") is None
    assert await verifier.verify_token(jwt[:-2] + "xx") is None
    KeyRing(demo_store).revoke(1)
    assert await verifier.verify_token(api_key) is None
    assert await verifier.verify_token(jwt) is None


async def test_over_http_the_bearer_token_is_the_credential(
    engine: Engine, authenticator: Authenticator, api_key: str, demo_store: SQLiteStore
) -> None:
    server = create_server(engine, authenticator, auth=http_auth_settings("http://127.0.0.1:8000/mcp"))
    app = server.streamable_http_app()
    base = "http://127.0.0.1:8000"

    def http(token: str | None) -> httpx2.AsyncClient:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx2.AsyncClient(transport=httpx2.ASGITransport(app), base_url=base, headers=headers)

    probe = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    accept = {"Accept": "application/json, text/event-stream"}
    async with server.session_manager.run():
        async with Client(streamable_http_client(f"{base}/mcp", http_client=http(api_key))) as client:
            body = envelope(await client.call_tool(TOOL_NAME, {"filter": "humans"}))
        anonymous = await http(None).post("/mcp", json=probe, headers=accept)
        KeyRing(demo_store).revoke(1)
        revoked = await http(api_key).post("/mcp", json=probe, headers=accept)
    assert body["data"] == engine.dashboard(Filter.HUMANS, Period.H24, NOW).to_wire()
    assert anonymous.status_code == 401 and "resource_metadata=" in anonymous.headers["www-authenticate"]
    assert revoked.status_code == 401


async def test_an_unknown_prompt_or_prompt_argument_is_a_protocol_error_naming_what_exists(
    server: MCPServer[Any], mode: str
) -> None:
    async with Client(server, mode=mode) as client:
        with pytest.raises(MCPError) as unknown:
            await client.get_prompt("test_simple_prompt")
        with pytest.raises(MCPError) as bad_argument:
            await client.get_prompt("analytics_briefing", {"limit": "3"})
        briefing = await client.get_prompt("analytics_briefing", {"filter": "humans"})  # the session goes on
    assert unknown.value.code == INVALID_PARAMS
    assert "unknown prompt 'test_simple_prompt'; the prompts are: analytics_briefing" in str(unknown.value)
    assert bad_argument.value.code == INVALID_PARAMS
    assert "unknown argument 'limit' of prompt analytics_briefing; accepted: filter, period" in str(
        bad_argument.value
    )
    assert len(briefing.messages) == 2


@pytest.mark.parametrize(
    ("ref", "argument", "typed", "expected"),
    [
        (PromptReference(name="analytics_briefing"), "filter", "", ["all", "humans", "agents"]),
        (PromptReference(name="analytics_briefing"), "filter", "a", ["all", "agents"]),
        (PromptReference(name="analytics_briefing"), "period", "7", ["7d"]),
        (ResourceTemplateReference(uri=URI_TEMPLATE), "period", "", ["24h", "7d", "30d"]),
        (ResourceTemplateReference(uri=URI_TEMPLATE), "filter", "HU", ["humans"]),
        (ResourceTemplateReference(uri=URI_TEMPLATE), "filter", "bots", []),
        (PromptReference(name="analytics_briefing"), "limit", "", []),
        (PromptReference(name="test_prompt_with_arguments"), "arg1", "par", []),
        (ResourceTemplateReference(uri="test://template/{id}/data"), "id", "", []),
    ],
)
async def test_completion_suggests_the_filters_and_periods_of_the_prompt_and_the_template(
    server: MCPServer[Any],
    mode: str,
    ref: PromptReference | ResourceTemplateReference,
    argument: str,
    typed: str,
    expected: list[str],
) -> None:
    async with Client(server, mode=mode) as client:
        result = await client.complete(ref, {"name": argument, "value": typed})
    assert result.completion.values == expected
    assert result.completion.total == len(expected) and result.completion.has_more is False


async def test_the_server_declares_completions(server: MCPServer[Any], mode: str) -> None:
    async with Client(server, mode=mode) as client:
        assert client.server_capabilities.completions is not None
