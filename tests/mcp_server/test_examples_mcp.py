"""The MCP examples run as a user runs them, and the host configuration starts the server as written."""

from __future__ import annotations

import copy
import importlib
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import jsonschema
import pytest
from mcp import Client, StdioServerParameters

from cymetica_mcp.auth import Authenticator, KeyRing, jwt_secret
from cymetica_mcp.engine import Engine
from cymetica_mcp.mcp_server import OUTPUT_SCHEMA, create_server
from cymetica_mcp.models import Dashboard, Filter, Period
from cymetica_mcp.store import SQLiteStore
from tests.conftest import NOW, NOW_ISO

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
CYMETICA_MCP = str(Path(sys.executable).parent / "cymetica-mcp")


@pytest.fixture
def api_key(demo_store: SQLiteStore) -> str:
    """A valid key for the demo store."""
    return KeyRing(demo_store).create("examples")[1]


@pytest.fixture
def llm_agent(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """examples/llm_agent.py as a module (it imports its sibling agent_stdio.py)."""
    monkeypatch.syspath_prepend(str(EXAMPLES))
    return importlib.import_module("llm_agent")


def run_example(script: str, demo_store: SQLiteStore, api_key: str) -> subprocess.CompletedProcess[str]:
    """Run an example with the settings a user would export, and no LLM API key."""
    env = {
        name: value for name, value in os.environ.items() if not name.startswith(("CYMETICA_", "ANTHROPIC_"))
    }
    env |= {"CYMETICA_DB": str(demo_store.path), "CYMETICA_API_KEY": api_key, "CYMETICA_NOW": NOW_ISO}
    return subprocess.run(
        [sys.executable, str(EXAMPLES / script)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_agent_stdio_lists_the_tool_and_prints_each_description(
    demo_store: SQLiteStore, api_key: str, engine: Engine
) -> None:
    done = run_example("agent_stdio.py", demo_store, api_key)
    assert done.returncode == 0, done.stderr
    assert "tool et_analytics_dashboard: Trading analytics dashboard" in done.stdout
    assert "- filter: all|humans|agents (default all)" in done.stdout
    for filter, period in [("all", "24h"), ("humans", "7d"), ("agents", "7d"), ("agents", "30d")]:
        assert engine.dashboard(Filter(filter), Period(period), NOW).describe() in done.stdout
    assert f"as of {NOW_ISO}" in done.stdout


def test_agent_stdio_reports_a_refused_key(demo_store: SQLiteStore) -> None:
    done = run_example("agent_stdio.py", demo_store, "cym_not-a-real-key")
    assert done.returncode == 1
    assert "error (unauthorized)" in done.stderr and "keys create" in done.stderr


def test_llm_agent_without_an_api_key_prints_the_translated_tools(
    demo_store: SQLiteStore, api_key: str
) -> None:
    done = run_example("llm_agent.py", demo_store, api_key)
    assert done.returncode == 0, done.stderr
    (tool,) = json.loads(done.stdout)
    assert set(tool) == {"name", "description", "input_schema"}
    assert tool["name"] == "et_analytics_dashboard" and "USDC" in tool["description"]
    assert tool["input_schema"]["type"] == "object"
    assert tool["input_schema"]["properties"]["period"]["enum"] == ["24h", "7d", "30d"]
    assert "ANTHROPIC_API_KEY is not set" in done.stderr


@pytest.mark.anyio
async def test_llm_agent_loop_runs_the_models_tool_calls_through_mcp(
    llm_agent: ModuleType, demo_store: SQLiteStore, api_key: str, engine: Engine
) -> None:
    script: list[dict[str, Any]] = [
        {
            "stop_reason": "tool_use",
            "content": [
                {"type": "text", "text": "Let me look at the agents' week."},
                {
                    "type": "tool_use",
                    "id": "tu_1",
                    "name": "et_analytics_dashboard",
                    "input": {"filter": "agents", "period": "7d"},
                },
            ],
        },
        {
            "stop_reason": "tool_use",
            "content": [
                {
                    "type": "tool_use",
                    "id": "tu_2",
                    "name": "et_analytics_dashboard",
                    "input": {"filter": "robots"},
                }
            ],
        },
        {"stop_reason": "end_turn", "content": [{"type": "text", "text": "Agents were busy."}]},
    ]
    replies = iter(script)
    sent: list[dict[str, Any]] = []

    async def model(body: dict[str, Any]) -> dict[str, Any]:
        sent.append(copy.deepcopy(body))
        return next(replies)

    authenticator = Authenticator(demo_store, jwt_secret(demo_store, None))
    try:
        async with Client(create_server(engine, authenticator, api_key=api_key)) as client:
            answer = await llm_agent.run_loop(
                client, "How are the agents doing?", model, show=lambda line: None
            )
    finally:
        authenticator.close()
    assert answer == "Agents were busy."
    assert len(sent) == 3
    (tool,) = sent[0]["tools"]
    assert (
        tool["name"] == "et_analytics_dashboard"
        and tool["input_schema"]["properties"]["filter"]["default"] == "all"
    )
    assert sent[0]["messages"] == [{"role": "user", "content": "How are the agents doing?"}]
    (first,) = sent[1]["messages"][-1]["content"]
    assert first["type"] == "tool_result" and first["tool_use_id"] == "tu_1" and first["is_error"] is False
    assert json.loads(first["content"])["data"] == engine.dashboard(Filter.AGENTS, Period.D7, NOW).to_wire()
    (second,) = sent[2]["messages"][-1]["content"]
    assert second["tool_use_id"] == "tu_2" and second["is_error"] is True
    assert json.loads(second["content"])["error"]["code"] == "invalid_filter"


@pytest.mark.anyio
async def test_claude_desktop_config_starts_the_server_as_written(
    demo_store: SQLiteStore, api_key: str
) -> None:
    config = json.loads((EXAMPLES / "claude_desktop_config.json").read_text())
    (entry,) = config["mcpServers"].values()
    assert Path(entry["command"]).name == "cymetica-mcp" and entry["args"] == ["mcp"]
    assert {"CYMETICA_DB", "CYMETICA_API_KEY"} <= set(entry["env"])
    # The user replaces the placeholders (docs/mcp.md says how); the host then starts exactly this.
    env = entry["env"] | {
        "CYMETICA_DB": str(demo_store.path),
        "CYMETICA_API_KEY": api_key,
        "CYMETICA_NOW": NOW_ISO,
    }
    async with Client(StdioServerParameters(command=CYMETICA_MCP, args=entry["args"], env=env)) as client:
        (tool,) = (await client.list_tools()).tools
        result = await client.call_tool(tool.name, {"filter": "humans", "period": "30d"})
    assert not result.is_error
    assert result.structured_content is not None and result.structured_content["success"] is True


def test_the_documented_example_is_a_real_result_and_every_error_code_is_documented() -> None:
    doc = (ROOT / "docs" / "mcp.md").read_text()
    example = json.loads(doc.split("```json\n")[2].split("\n```")[0])  # the second JSON block
    jsonschema.validate(example, OUTPUT_SCHEMA)
    dashboard = Dashboard.model_validate(example["data"])
    assert example["description"] == dashboard.describe()
    assert example["meta"]["as_of"] == dashboard.metrics.timestamp
    assert len(dashboard.volume_over_time) == len(dashboard.user_activity) == example["meta"]["buckets"]
    codes = OUTPUT_SCHEMA["anyOf"][1]["properties"]["error"]["properties"]["code"]["description"]
    for code in (
        "invalid_filter",
        "invalid_period",
        "invalid_as_of",
        "invalid_argument",
        "unauthorized",
        "internal",
    ):
        assert code in codes and f"| `{code}` |" in doc
