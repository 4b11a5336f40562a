"""PostgreSQL failing under the doors: restarted, down for seconds, an import's connection dropped.

On the real cluster of the fixtures (`pg_cluster`, `pg_url`), with `cymetica-mcp serve` and
`cymetica-mcp mcp` as processes of their own, as users run them:

- while the database is down, `/readyz` is 503 (the envelope, the cause, no password) and every door
  refuses with `unavailable` at once (REST 503, MCP `success: false`, never a 500 or a trace);
- once it is back, everything recovers by itself within seconds (measured and bounded): the pool's
  broken connections are replaced, the listening thread reconnects and WebSocket pushes resume;
- an import whose connection drops (its backend terminated, or the whole server killed) leaves
  the rows, the data version and the totals exactly as before, exits 2 / answers 503 `unavailable`,
  and the same import succeeds when retried;
- no password of a `postgresql://` URL in any body, message or line of the server's log.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import anyio
import anyio.to_thread
import httpx
import httpx2
import psycopg
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from mcp.types import CallToolResult
from websockets.asyncio.client import ClientConnection, connect

from cymetica_mcp.auth import KeyRing
from cymetica_mcp.ingest import DemoSpec, import_files, write_demo
from cymetica_mcp.mcp_server import TOOL_NAME
from cymetica_mcp.models import Scope
from cymetica_mcp.store import PostgresStore
from tests.conftest import NOW, NOW_ISO, clean_env
from tests.faults.conftest import ServerProcess, server_process
from tests.postgres import Cluster

pytestmark = pytest.mark.anyio

RECOVERY_BOUND: Final = 10.0
"""Seconds from the database's return to every door serving again (measured: well under 1 s)."""
REFUSAL_BOUND: Final = 2.0
"""Seconds a request may take to be refused while the database is down (measured: a few ms)."""
BIG_TRADES: Final = 150_000


@dataclass(frozen=True)
class Files:
    users: Path
    base: Path  # 2,000 trades every test's store starts with
    big: Path  # the rest: an import that lasts a few seconds


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Files:
    folder = tmp_path_factory.mktemp("pgfaults")
    users, trades = write_demo(DemoSpec(users=400, trades=BIG_TRADES, days=30, seed=17), NOW, folder)
    lines = trades.read_text().splitlines(keepends=True)
    base, big = folder / "base.csv", folder / "big.csv"
    base.write_text("".join(lines[:2001]))
    big.write_text(lines[0] + "".join(lines[2001:]))
    return Files(users, base, big)


@dataclass(frozen=True)
class Seeded:
    url: str
    key: str


@pytest.fixture
def seeded(pg_url: str, files: Files) -> Seeded:
    store = PostgresStore(pg_url)
    try:
        import_files(store, files.users, files.base)
        key = KeyRing(store).create("pgfaults", scopes=(Scope.READ, Scope.INGEST))[1]
    finally:
        store.close()
    return Seeded(pg_url, key)


def env_for(url: str, **more: str) -> dict[str, str]:
    return {**clean_env(), "CYMETICA_DB": url, "CYMETICA_NOW": NOW_ISO, **more}


def state(url: str) -> dict[str, Any]:
    """What an import may change: meta (data version, totals), row counts and a digest of every row."""
    with psycopg.connect(url) as conn:
        meta: dict[str, int] = dict(conn.execute("SELECT key, value FROM meta").fetchall())
        out: dict[str, Any] = {"meta": meta}
        for table in ("users", "trades"):
            count, digest = conn.execute(
                f"SELECT count(*), md5(coalesce(string_agg(t::text, '|' ORDER BY id), '')) FROM {table} t"
            ).fetchone() or (0, "")
            out[table] = (count, digest)
    return out


async def wait_for(condition: Any, what: str, bound: float = RECOVERY_BOUND) -> float:
    """Poll `condition()` (awaitable bool) until true; the seconds it took (fails past `bound`)."""
    started = time.monotonic()
    while not await condition():
        if time.monotonic() - started > bound:
            raise AssertionError(f"{what}: not within {bound} s")
        await anyio.sleep(0.02)
    return time.monotonic() - started


def no_secret(text: str, cluster: Cluster) -> None:
    assert cluster.password not in text
    assert "Traceback" not in text


def tool_envelope(result: CallToolResult) -> dict[str, Any]:
    assert result.structured_content is not None
    return dict(result.structured_content)


async def next_update(ws: ClientConnection) -> dict[str, Any]:
    """The next `analytics_update` or `error` pushed (within RECOVERY_BOUND)."""
    with anyio.fail_after(RECOVERY_BOUND):
        while True:
            message = json.loads(await ws.recv())
            if message["type"] in ("analytics_update", "error"):
                return dict(message)


class Doors:
    """REST, WebSocket and MCP-over-HTTP clients of one serving replica."""

    def __init__(
        self, server: ServerProcess, key: str, http: httpx.AsyncClient, ws: ClientConnection, mcp: Client
    ):
        self.server, self.key, self.http, self.ws, self.mcp = server, key, http, ws, mcp

    async def dashboard(self) -> httpx.Response:
        return await self.http.get(
            "/api/v1/analytics/dashboard",
            params={"filter": "agents", "period": "7d"},
            headers={"Authorization": f"Bearer {self.key}"},
        )

    async def tool(self) -> dict[str, Any]:
        return tool_envelope(await self.mcp.call_tool(TOOL_NAME, {"filter": "agents", "period": "7d"}))

    async def refused_tool(self) -> dict[str, Any]:
        """The tool called while the store is down: the POST is answered 503 with the envelope (the
        credential cannot be checked), which the SDK raises."""
        with pytest.raises(MCPError) as refused:
            await self.tool()
        return {"success": False, "error": {"code": "unavailable", "message": str(refused.value)}}

    async def serving(self) -> bool:
        ready = await self.http.get("/readyz")
        return ready.status_code == 200 and (await self.dashboard()).status_code == 200


@asynccontextmanager
async def doors(seeded: Seeded, log: Path) -> AsyncIterator[Doors]:
    async with (
        server_process(seeded.url, "--push-interval", "0.5", log=log) as server,
        httpx.AsyncClient(base_url=server.url, timeout=30) as http,
        connect(f"{server.ws_url}?token={seeded.key}") as ws,
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {seeded.key}"}, timeout=30) as mcp_http,
        Client(streamable_http_client(f"{server.url}/mcp", http_client=mcp_http)) as mcp,
    ):
        yield Doors(server, seeded.key, http, ws, mcp)


async def import_cli(url: str, trades: Path) -> subprocess.CompletedProcess[bytes]:
    command = [sys.executable, "-m", "cymetica_mcp", "import", "--trades", str(trades)]
    return await anyio.run_process(command, env=env_for(url), check=False)


async def test_a_restart_and_an_outage_under_a_serving_replica(
    seeded: Seeded, pg_cluster: Cluster, files: Files, tmp_path: Path
) -> None:
    log = tmp_path / "serve.log"
    one = tmp_path / "one.csv"
    user = files.users.read_text().splitlines()[1].split(",")[0]
    async with doors(seeded, log) as door:
        assert (await door.dashboard()).status_code == 200 and (await door.tool())["success"] is True
        first = await next_update(door.ws)
        assert first["type"] == "analytics_update"
        # several pooled connections, all broken by what follows
        answers = await _together(door, 6)
        assert answers == [200] * 6

        # 1. a restart (fast stop, start): the doors serve again by themselves
        await anyio.to_thread.run_sync(pg_cluster.restart)
        restart_recovery = await wait_for(door.serving, "serving after a restart")
        assert await _together(door, 6) == [200] * 6  # the broken connections were replaced

        # 2. down for seconds (a crash: no checkpoint)
        await anyio.to_thread.run_sync(pg_cluster.kill)
        for _ in range(3):
            started = time.monotonic()
            ready = await door.http.get("/readyz")
            refused = await door.dashboard()
            tool = await door.refused_tool()
            assert time.monotonic() - started < 3 * REFUSAL_BOUND
            assert ready.status_code == 503 and ready.json()["status"] == "unavailable"
            assert ready.json()["error"]["code"] == "unavailable"
            assert ready.json()["reason"].startswith("the database cannot be reached (")
            assert refused.status_code == 503 and refused.json()["error"]["code"] == "unavailable"
            assert "nothing could be read" in refused.json()["error"]["message"]
            assert tool["success"] is False and tool["error"]["code"] == "unavailable"
            for text in (ready.text, refused.text, json.dumps(tool)):
                no_secret(text, pg_cluster)
            await anyio.sleep(0.5)
        pushed = await next_update(door.ws)  # the push tick tells the client, and keeps it
        for _ in range(5):  # updates pushed before the crash may still be on their way
            if pushed["type"] != "analytics_update":
                break
            pushed = await next_update(door.ws)
        assert pushed["type"] == "error" and pushed["error"]["code"] == "unavailable", pushed
        no_secret(json.dumps(pushed), pg_cluster)

        await anyio.to_thread.run_sync(pg_cluster.start)
        back = time.monotonic()
        outage_recovery = await wait_for(door.serving, "serving after an outage")
        assert (await door.tool())["success"] is True
        assert await _together(door, 6) == [200] * 6

        # web pushes resume: an import by the command line reaches the WebSocket (the LISTEN thread
        # reconnected, or its fallback poll of the data version)
        one.write_text(f"trade_id,user_id,ts,volume_usdc,pnl_usdc\npgf-1,{user},{NOW_ISO},7,1\n")
        done = await import_cli(seeded.url, one)
        assert done.returncode == 0, done.stderr
        with anyio.fail_after(RECOVERY_BOUND):
            while (update := await next_update(door.ws))["type"] != "analytics_update" or update[
                "data_version"
            ] != 2:
                pass
        push_recovery = time.monotonic() - back
    text = log.read_text()
    no_secret(text, pg_cluster)
    assert " 500 " not in text, text
    print(
        f"recovery: {restart_recovery:.2f} s after a restart, {outage_recovery:.2f} s after an outage, "
        f"first push of an import {push_recovery:.2f} s after the database's return"
    )


async def _together(door: Doors, n: int) -> list[int]:
    codes: list[int] = []

    async def one() -> None:
        codes.append((await door.dashboard()).status_code)

    async with anyio.create_task_group() as tasks:
        for _ in range(n):
            tasks.start_soon(one)
    return codes


async def test_the_stdio_mcp_server_through_an_outage(
    seeded: Seeded, pg_cluster: Cluster, tmp_path: Path
) -> None:
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "cymetica_mcp", "mcp"],
        env=env_for(seeded.url, CYMETICA_API_KEY=seeded.key),
    )
    arguments = {"filter": "all", "period": "24h"}
    with (tmp_path / "mcp.log").open("w") as errlog:
        async with Client(stdio_client(params, errlog=errlog)) as mcp:
            assert tool_envelope(await mcp.call_tool(TOOL_NAME, arguments))["success"] is True
            await anyio.to_thread.run_sync(pg_cluster.kill)
            refused = await mcp.call_tool(TOOL_NAME, arguments)
            assert refused.is_error
            body = tool_envelope(refused)
            assert body["success"] is False and body["error"]["code"] == "unavailable", body
            no_secret(json.dumps(body), pg_cluster)
            await anyio.to_thread.run_sync(pg_cluster.start)

            async def works() -> bool:
                return bool(tool_envelope(await mcp.call_tool(TOOL_NAME, arguments))["success"])

            await wait_for(works, "the stdio tool after the outage")
    no_secret((tmp_path / "mcp.log").read_text(), pg_cluster)


async def _terminate_import(cluster: Cluster, url: str, how: str) -> None:
    """Once the import's `COPY` into trades runs, drop its connection: terminate its backend, or kill
    the whole server (then start it again)."""
    database = url.rsplit("/", 1)[-1]
    query = (
        "SELECT pid FROM pg_stat_activity WHERE datname = %s AND application_name = 'cymetica-mcp'"
        " AND query LIKE 'COPY trades%%'"
    )

    def copying() -> list[int]:
        with psycopg.connect(cluster.admin_url(), autocommit=True) as conn:
            return [int(r[0]) for r in conn.execute(query, (database,)).fetchall()]

    with anyio.fail_after(60):
        while True:
            pids = await anyio.to_thread.run_sync(copying)
            if pids:
                break
            await anyio.sleep(0.005)
    if how == "terminate":
        for pid in pids:
            await anyio.to_thread.run_sync(cluster.admin_sql, f"SELECT pg_terminate_backend({pid})")
    else:
        await anyio.to_thread.run_sync(cluster.kill)
        await anyio.to_thread.run_sync(cluster.start)


@pytest.mark.parametrize("how", ["terminate", "kill"])
async def test_an_import_whose_connection_drops_leaves_nothing(
    seeded: Seeded, pg_cluster: Cluster, files: Files, how: str
) -> None:
    before = state(seeded.url)
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(_terminate_import, pg_cluster, seeded.url, how)
        done = await import_cli(seeded.url, files.big)
    stderr = done.stderr.decode()
    assert done.returncode == 2, (done.stdout, stderr)
    assert stderr.startswith("error (unavailable): ") and "nothing was written" in stderr, stderr
    no_secret(stderr, pg_cluster)
    assert state(seeded.url) == before
    check = await anyio.run_process(
        [sys.executable, "-m", "cymetica_mcp", "check"], env=env_for(seeded.url), check=False
    )
    assert check.returncode == 0, check.stdout + check.stderr
    again = await import_cli(seeded.url, files.big)
    assert again.returncode == 0, again.stderr
    after = state(seeded.url)
    assert after["meta"]["data_version"] == before["meta"]["data_version"] + 1
    assert after["trades"][0] == before["trades"][0] + BIG_TRADES - 2000


async def test_an_ingest_request_whose_connection_drops_leaves_nothing(
    seeded: Seeded, pg_cluster: Cluster, files: Files, tmp_path: Path
) -> None:
    before = state(seeded.url)
    log = tmp_path / "serve.log"
    body = files.big.read_bytes()
    headers = {"Authorization": f"Bearer {seeded.key}", "Content-Type": "text/csv"}
    async with (
        server_process(seeded.url, log=log) as server,
        httpx.AsyncClient(base_url=server.url, timeout=60) as http,
    ):
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(_terminate_import, pg_cluster, seeded.url, "terminate")
            refused = await http.post("/api/v1/ingest/trades", content=body, headers=headers)
        assert refused.status_code == 503, refused.text
        error = refused.json()["error"]
        assert error["code"] == "unavailable" and "nothing was written" in error["message"], error
        no_secret(refused.text, pg_cluster)
        assert state(seeded.url) == before
        accepted = await http.post("/api/v1/ingest/trades", content=body, headers=headers)
        assert accepted.status_code == 200, accepted.text
    assert state(seeded.url)["meta"]["data_version"] == before["meta"]["data_version"] + 1
    no_secret(log.read_text(), pg_cluster)
