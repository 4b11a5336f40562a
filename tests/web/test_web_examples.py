"""The published API document's own examples and ours, run against the real server as users run them."""

from __future__ import annotations

import ast
import functools
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from anyio.streams.text import TextReceiveStream

from cymetica_mcp.models import Filter, Period
from tests.conformance import INSTALL, PINNED_NODE
from tests.conftest import NOW, require_system

from .conftest import Served

pytestmark = pytest.mark.anyio

HERE = Path(__file__).resolve().parent
PUBLISHED = HERE / "published"
EXAMPLES = HERE.parent.parent / "examples"


@pytest.fixture
def node() -> str:
    """Node.js for the JavaScript examples (20 or newer): the pinned 22 of tests/conformance, or PATH's."""
    if PINNED_NODE.is_file():
        return str(PINNED_NODE)
    return require_system("node", INSTALL)


def published(name: str, served: Served, token: str) -> str:
    """A published example with only the base URL and the token placeholder replaced."""
    text = (PUBLISHED / name).read_text()
    ws = "ws" + served.url.removeprefix("http")
    for placeholder in ("YOUR_JWT_TOKEN", "YOUR_TOKEN"):
        text = text.replace(placeholder, token)
    return text.replace("https://cymetica.com", served.url).replace("wss://cymetica.com", ws)


def cards(served: Served, filter: Filter, period: Period) -> dict[str, Any]:
    return served.engine.dashboard(filter, period, NOW).to_wire()["metrics"]  # type: ignore[no-any-return]


async def jwt_for(served: Served, key: str) -> str:
    async with httpx.AsyncClient(base_url=served.url) as http:
        resp = await http.post("/api/v1/auth/token", headers={"Authorization": f"Bearer {key}"})
    return str(resp.json()["access_token"])


@functools.cache
def node_flags(node: str) -> tuple[str, ...]:
    """`--experimental-websocket` where Node (20, 21) keeps WebSocket behind a flag."""
    probe = subprocess.run(
        [node, "-e", "process.stdout.write(typeof WebSocket)"], capture_output=True, text=True
    )
    return () if probe.stdout == "function" else ("--experimental-websocket",)


async def run_until(
    command: list[str], done: Callable[[str], bool], env: dict[str, str] | None = None
) -> str:
    """Run a program that streams forever; stop it once its output satisfies `done` (15 s at most)."""
    text = ""
    async with await anyio.open_process(command, env={**os.environ, **(env or {})}) as process:
        assert process.stdout is not None
        try:
            with anyio.fail_after(15):
                async for chunk in TextReceiveStream(process.stdout):
                    text += chunk
                    if done(text):
                        break
        finally:
            process.terminate()
            await process.wait()
    assert done(text), text
    return text


async def test_the_published_curl_commands(served: Served, api_key: str) -> None:
    require_system("curl", "apt-get install -y --no-install-recommends curl")
    script = published("curl.sh", served, api_key)
    commands = script.split("# ")[1:]
    bodies = []
    for command in commands:
        line = " ".join(command.splitlines()[1:]).replace("\\ ", " ")
        done = await anyio.run_process(["sh", "-c", line.replace("curl ", "curl -s ", 1)])
        bodies.append(json.loads(done.stdout))
    expected = [(Filter.ALL, Period.H24)] * 3 + [(Filter.HUMANS, Period.D7), (Filter.AGENTS, Period.D30)]
    assert [b["metrics"] for b in bodies] == [cards(served, f, p) for f, p in expected]


async def test_the_published_httpx_examples(
    served: Served, api_key: str, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("quickstart_httpx.py.txt", "dashboard_httpx.py.txt"):
        code = compile(published(name, served, api_key), name, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
        scope: dict[str, Any] = {}
        pending = eval(code, scope)  # our copy of the published example, nothing else
        if pending is not None:
            await pending
        if "get_analytics" in scope:
            await scope["get_analytics"]()
    out = capsys.readouterr().out.splitlines()
    everyone, humans = cards(served, Filter.ALL, Period.H24), cards(served, Filter.HUMANS, Period.D7)
    assert out == [
        f"Active Users: {everyone['active_users']['value']}",
        f"Volume: {everyone['trading_volume']['value']} USDC",
        f"Active users: {humans['active_users']['value']}",
        "Volume points: 28",
    ]


async def test_the_published_websockets_example(served: Served, api_key: str, tmp_path: Path) -> None:
    script = tmp_path / "stream.py"
    script.write_text(published("stream_websockets.py.txt", served, await jwt_for(served, api_key)))
    out = await run_until([sys.executable, str(script)], lambda text: text.count("Avg ROI") >= 2)
    first, then = cards(served, Filter.ALL, Period.H24), cards(served, Filter.HUMANS, Period.D7)
    lines = out.splitlines()
    assert lines[:10] == [
        f"{m[key]['label']}: {m[key]['value']}{m[key]['suffix']}"
        for m in (first, then)
        for key in ("active_users", "trading_volume", "retention_rate", "avg_capital", "avg_roi")
    ]


async def test_the_published_fetch_examples(served: Served, api_key: str, tmp_path: Path, node: str) -> None:
    outputs = []
    for name in ("quickstart_fetch.mjs", "dashboard_fetch.mjs"):
        script = tmp_path / name
        script.write_text(published(name, served, api_key))
        done = await anyio.run_process([node, str(script)])
        outputs.append(done.stdout.decode())
    everyone, agents = cards(served, Filter.ALL, Period.H24), cards(served, Filter.AGENTS, Period.D30)
    assert outputs[0].splitlines() == [
        f"Active Users: {everyone['active_users']['value']}",
        f"Volume: {everyone['trading_volume']['value']} USDC",
    ]
    assert outputs[1].startswith("Metrics: {") and outputs[1].endswith("Volume series: 30 points\n")
    assert f"value: {agents['active_users']['value']}," in outputs[1] and "filter: 'agents'" in outputs[1]


async def test_the_published_javascript_websocket_example(
    served: Served, api_key: str, tmp_path: Path, node: str
) -> None:
    script = tmp_path / "stream.mjs"
    script.write_text(published("stream.mjs", served, await jwt_for(served, api_key)))
    out = await run_until(
        [node, *node_flags(node), str(script)], lambda text: text.count("Volume: 24 points") >= 2
    )
    lines = out.splitlines()
    assert lines[:3] == ["Connected to analytics stream", "Session established", "Metrics: {"]
    assert "Preferences updated" in lines
    assert f"value: {cards(served, Filter.ALL, Period.H24)['active_users']['value']}," in out


async def test_our_python_examples(served: Served, api_key: str) -> None:
    env = {"CYMETICA_URL": served.url, "CYMETICA_API_KEY": api_key, "UPDATES": "2"}
    rest = await anyio.run_process(
        [sys.executable, str(EXAMPLES / "rest_client.py")], env={**os.environ, **env}
    )
    stream = await anyio.run_process(
        [sys.executable, str(EXAMPLES / "ws_client.py")], env={**os.environ, **env}
    )
    out, live = rest.stdout.decode(), stream.stdout.decode()
    for f, p in ((Filter.ALL, Period.H24), (Filter.HUMANS, Period.D7), (Filter.AGENTS, Period.D30)):
        m = cards(served, f, p)
        assert (
            f"\n{f.value}, last {p.value}, as of 2026-03-20T12:34:56Z:\n  Active Users: {m['active_users']['value']} ("
            in out
        )
        assert f"  Trading Volume: {m['trading_volume']['value']} USDC (" in out
    assert "revalidated agents/30d with its ETag: 304 (unchanged, no body)" in out
    assert "period=1y: 400 invalid_period: period must be one of 24h, 7d, 30d; got '1y'" in out
    humans = cards(served, Filter.HUMANS, Period.D7)
    assert "preferences_ack: now humans/7d" in live
    assert live.count(f"  Active Users: {humans['active_users']['value']} (") >= 2


async def test_our_node_example(served: Served, api_key: str, node: str) -> None:
    env = {**os.environ, "CYMETICA_URL": served.url, "CYMETICA_API_KEY": api_key, "UPDATES": "2"}
    done = await anyio.run_process(
        [node, *node_flags(node), str(EXAMPLES / "ws_client.mjs")], env=env, check=False
    )
    out = done.stdout.decode()
    assert done.returncode == 0, out + done.stderr.decode()
    agents = cards(served, Filter.AGENTS, Period.D30)
    assert "preferences_ack: now agents/30d" in out
    assert out.count(f"  Active Users: {agents['active_users']['value']} (") >= 2
    assert out.rstrip().endswith("closed after the updates asked for")
