"""`serve --workers 2` as users run it: one port, two processes, every door fresh whichever answers,
MCP over HTTP across workers, the figures of both in /metrics, and a graceful stop of all."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import anyio
import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from prometheus_client.parser import text_string_to_metric_families

from cymetica_mcp.mcp_server import TOOL_NAME
from cymetica_mcp.store import SQLiteStore
from cymetica_mcp.windows import iso
from tests.conftest import NOW, import_command

from .test_web_cli import rest, serve

pytestmark = pytest.mark.anyio


async def worker_pids(url: str, key: str) -> set[str]:
    async with httpx.AsyncClient() as http:
        answer = await http.get(f"{url}/metrics", headers={"Authorization": f"Bearer {key}"})
    assert answer.status_code == 200, answer.text
    return {
        sample.labels["pid"]
        for family in text_string_to_metric_families(answer.text)
        for sample in family.samples
        if sample.name == "cymetica_index_trades"
    }


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_two_workers_behind_one_port(
    demo_store: SQLiteStore, api_key: str, tmp_path: Path, mode: str
) -> None:
    async with serve(demo_store, "--workers", "2") as running:
        deadline = time.monotonic() + 30
        pids = await worker_pids(running.url, api_key)
        while len(pids) < 2 and time.monotonic() < deadline:  # each worker shares its figures every 2 s
            await anyio.sleep(0.1)
            pids = await worker_pids(running.url, api_key)
        assert len(pids) == 2 and str(running.process.pid) not in pids

        # MCP over HTTP is stateless across workers: every session works, whichever worker takes each
        # POST, with the initialize handshake ("legacy", whose session a stateful server keeps in one
        # process) as without
        expected = (await rest(running.url, api_key, filter="agents", period="7d")).json()
        for _ in range(4):
            async with (
                httpx2.AsyncClient(  # a new connection for every POST: either worker may take each
                    headers={"Authorization": f"Bearer {api_key}"},
                    timeout=10,
                    limits=httpx2.Limits(max_keepalive_connections=0),
                ) as http,
                Client(streamable_http_client(f"{running.url}/mcp", http_client=http), mode=mode) as mcp,
            ):
                result = await mcp.call_tool(TOOL_NAME, {"filter": "agents", "period": "7d"})
                again = await mcp.call_tool(TOOL_NAME, {"filter": "agents", "period": "7d"})
            for answer in (result, again):
                assert answer.structured_content is not None
                assert answer.structured_content["data"] == expected

        # an import by another process shows in the next answer of every worker (CONTRACT.md section 8)
        before = demo_store.data_version()
        with demo_store.read() as conn:
            user = conn.execute("SELECT user_id FROM users LIMIT 1").fetchone()[0]
        trades = tmp_path / "one.csv"
        trades.write_text(f"trade_id,user_id,ts,volume_usdc,pnl_usdc\nw1,{user},{iso(NOW - 60)},5,1\n")
        done = await anyio.run_process(import_command(demo_store.path, "--trades", str(trades)))
        assert done.returncode == 0
        for _ in range(12):  # a new connection each: the kernel hands them to either worker
            fresh = await rest(running.url, api_key, filter="all", period="24h")
            assert fresh.status_code == 200
            assert fresh.headers["X-Data-Version"] == str(before + 1)

        running.process.send_signal(signal.SIGTERM)
        with anyio.fail_after(30):
            await running.process.wait()
    assert running.process.returncode == 0
    left = [pid for pid in pids if await anyio.Path(f"/proc/{pid}").exists()]
    assert not left, f"workers {left} outlived the supervisor"
