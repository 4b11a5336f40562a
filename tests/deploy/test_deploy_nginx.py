"""examples/deploy as users run it: `run.py` starts two `serve` replicas on one PostgreSQL database and a
real nginx with the example's configuration, and every door works through the proxy: the page and its
files, REST with a key and with a JWT that either replica accepts, per-address limits that see the client
behind nginx, live WebSocket updates on both replicas, MCP over HTTP, and a replica killed mid-way."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import httpx
import httpx2
import pytest
from anyio.abc import Process
from anyio.streams.text import TextReceiveStream
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from prometheus_client.parser import text_string_to_metric_families
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from cymetica_mcp.mcp_server import TOOL_NAME
from cymetica_mcp.windows import iso
from tests.conftest import NOW, NOW_ISO, clean_env, require_system
from tests.web.helpers import next_of

pytestmark = pytest.mark.anyio

RUN = Path(__file__).resolve().parents[2] / "examples" / "deploy" / "run.py"
CLI = (sys.executable, "-m", "cymetica_mcp")
READY = re.compile(
    r"^ready: (http://\S+) -> replicas a=http://(\S+) \(pid (\d+)\), b=http://(\S+) \(pid (\d+)\); nginx pid (\d+)"
)
LOGGED = re.compile(r'"(\w+) (\S+)" (\d+) upstream=(.*?) upstream_status=')
FAILED_AUTH_LIMIT = 2
DASHBOARD = "/api/v1/analytics/dashboard"
PUBLIC = "http://analytics.example.test"
"""The URL clients would use (--public-url): the test reaches the proxy by its loopback address."""


@dataclass
class Deployment:
    """run.py's processes, as its `ready:` line names them, and the lines it printed so far."""

    process: Process
    url: str
    replicas: dict[str, tuple[str, int]]  # name -> (host:port, pid)
    nginx_pid: int
    folder: Path
    output: list[str] = field(default_factory=list)

    def log(self) -> list[tuple[str, str, int, list[str]]]:
        """nginx's access log: (method, path, status, replicas tried in order) per finished request."""
        text = (self.folder / "logs" / "access.log").read_text()
        return [
            (m[1], m[2], int(m[3]), [a.strip() for a in m[4].split(",")])
            for m in map(LOGGED.search, text.splitlines())
            if m
        ]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def cli(db: str, *args: str) -> str:
    """`cymetica-mcp` on the database (given in the environment, as run.py gives it): its stdout."""
    done = await anyio.run_process([*CLI, *args], env={**clean_env(), "CYMETICA_DB": db}, check=False)
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout.decode()


@asynccontextmanager
async def deployed(db: str, nginx: str) -> AsyncIterator[Deployment]:
    """run.py on free loopback ports, nginx's folder in a fresh temporary one (reachable by nginx's
    workers, which run as nobody when the test runs as root); stopped with SIGTERM at the end."""
    folder = Path(tempfile.mkdtemp(prefix="cymetica-deploy-test-"))
    listen = f"127.0.0.1:{free_port()}"
    command = [
        sys.executable,
        str(RUN),
        "--listen",
        listen,
        "--public-url",
        PUBLIC,
        "--replica-ports",
        "0,0",
        "--folder",
        str(folder),
        "--nginx",
        nginx,
        "--",
        "--failed-auth-limit",
        str(FAILED_AUTH_LIMIT),
    ]
    env = {**clean_env(), "CYMETICA_DB": db, "CYMETICA_NOW": NOW_ISO}
    try:
        async with await anyio.open_process(command, env=env, stderr=None) as process:
            assert process.stdout is not None
            lines: list[str] = []
            stream = TextReceiveStream(process.stdout)
            found = None
            with anyio.fail_after(40):
                buffer = ""
                async for chunk in stream:
                    buffer += chunk
                    *done, buffer = buffer.split("\n")
                    lines += done
                    found = next(filter(None, map(READY.match, done)), None)
                    if found:
                        break
            assert found, "\n".join(lines)
            assert found[1] == PUBLIC
            deployment = Deployment(
                process,
                f"http://{listen}",
                {"a": (found[2], int(found[3])), "b": (found[4], int(found[5]))},
                int(found[6]),
                folder,
                lines,
            )

            async def drain() -> None:  # run.py forwards every replica's log: read it or they block
                async for chunk in stream:
                    lines.append(chunk)

            async with anyio.create_task_group() as tasks:
                tasks.start_soon(drain)
                try:
                    yield deployment
                finally:
                    if process.returncode is None:
                        process.send_signal(signal.SIGTERM)
                        with anyio.fail_after(30):
                            await process.wait()
                    tasks.cancel_scope.cancel()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


async def until(condition: Callable[[], bool], what: str, seconds: float = 10) -> None:
    """Poll `condition` (state in another process: nginx's log, a replica's figures) until it holds."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"not within {seconds} s: {what}"
        await anyio.sleep(0.05)


async def websocket_clients(address: str, key: str) -> float:
    """`cymetica_websocket_clients` of one replica, asked directly (not through nginx)."""
    async with httpx.AsyncClient() as http:
        answer = await http.get(f"http://{address}/metrics", headers={"Authorization": f"Bearer {key}"})
    assert answer.status_code == 200, answer.text
    return sum(
        sample.value
        for family in text_string_to_metric_families(answer.text)
        for sample in family.samples
        if sample.name == "cymetica_websocket_clients"
    )


async def ingest(url: str, key: str, name: str, body: str) -> int:
    """POST one CSV import through the proxy; the data version it committed."""
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        answer = await http.post(
            f"/api/v1/ingest/{name}",
            content=body,
            headers={"Authorization": f"Bearer {key}", "Content-Type": "text/csv"},
        )
    assert answer.status_code == 200, answer.text
    version: int = answer.json()["data_version"]
    return version


async def update_after(ws: ClientConnection, version: int) -> dict[str, Any]:
    """The first `analytics_update` showing `version` or later (within 5 s: CONTRACT.md's bound is 1 s)."""
    with anyio.fail_after(5):
        while True:
            message = await next_of(ws, "analytics_update")
            if message["data_version"] >= version:
                return message


async def test_two_replicas_behind_nginx(pg_url: str) -> None:
    nginx = require_system(
        "nginx", "apt-get install -y nginx", path=Path(shutil.which("nginx") or "/usr/sbin/nginx")
    )
    await cli(pg_url, "demo", "--users", "60", "--trades", "2000", "--days", "40", "--now", NOW_ISO)
    key = (await cli(pg_url, "keys", "create", "--name", "deploy", "--scope", "read,ingest")).strip()
    bearer = {"Authorization": f"Bearer {key}"}

    async with deployed(pg_url, nginx) as d:
        a, b = d.replicas["a"][0], d.replicas["b"][0]
        ws_url = d.url.replace("http://", "ws://") + "/ws/analytics?token="
        async with httpx.AsyncClient(base_url=d.url, timeout=10) as http:
            # the page and every file it loads, through the proxy
            page = await http.get("/")
            assert page.status_code == 200 and "text/html" in page.headers["content-type"]
            files = set(re.findall(r'"(/assets/[^"]+)"', page.text))
            assert files, page.text
            for name in files:
                assert (await http.get(name)).status_code == 200, name

            # REST with the key: the same answer as a replica gives directly
            params = {"filter": "agents", "period": "7d"}
            proxied = await http.get(DASHBOARD, params=params, headers=bearer)
            assert proxied.status_code == 200, proxied.text
            direct = await http.get(f"http://{b}{DASHBOARD}", params=params, headers=bearer)
            assert proxied.json() == direct.json()

            # under the public name, the replicas (bound to loopback) answer through the proxy, and their
            # Origin check still refuses other sites' pages
            public = {**bearer, "Host": "analytics.example.test", "Origin": PUBLIC}
            assert (await http.get(DASHBOARD, params=params, headers=public)).json() == proxied.json()
            foreign = await http.get(
                DASHBOARD, params=params, headers={**public, "Origin": "http://evil.test"}
            )
            assert foreign.status_code == 403, foreign.text

            # a JWT issued through the proxy by one replica works on both
            issued = await http.post("/api/v1/auth/token", headers=bearer)
            assert issued.status_code == 200, issued.text
            jwt = issued.json()["access_token"]
            for _ in range(4):
                answer = await http.get(DASHBOARD, params=params, headers={"Authorization": f"Bearer {jwt}"})
                assert answer.status_code == 200, answer.text
                assert answer.json() == proxied.json()
            await until(lambda: sum(r[1] == DASHBOARD for r in d.log()) >= 7, "7 dashboards logged")
            served_by = {r[3][-1] for r in d.log() if r[1] == DASHBOARD}
            assert served_by == {a, b}, d.log()

        # the replicas see the client behind nginx (--trusted-proxy): refused credentials from
        # 127.0.0.2 get it 429 on both replicas, while 127.0.0.3 is still only told its key is wrong
        async with httpx.AsyncClient(
            base_url=d.url, transport=httpx.AsyncHTTPTransport(local_address="127.0.0.2")
        ) as attacker:
            statuses = [
                (await attacker.get(DASHBOARD, headers={"Authorization": "Bearer cym_wrong"})).status_code
                for _ in range(2 * FAILED_AUTH_LIMIT + 2)
            ]
        assert statuses.count(429) >= 2 and set(statuses) == {401, 429}, statuses
        async with httpx.AsyncClient(
            base_url=d.url, transport=httpx.AsyncHTTPTransport(local_address="127.0.0.3")
        ) as neighbour:
            for _ in range(2):
                wrong = await neighbour.get(DASHBOARD, headers={"Authorization": "Bearer cym_wrong"})
                assert wrong.status_code == 401, wrong.text

        # MCP over Streamable HTTP through the proxy: every call lands on either replica
        for mode in ("auto", "legacy"):
            async with (
                httpx2.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=10) as mcp_http,
                Client(streamable_http_client(f"{d.url}/mcp", http_client=mcp_http), mode=mode) as mcp,
            ):
                for _ in range(3):
                    result = await mcp.call_tool(TOOL_NAME, {"filter": "agents", "period": "7d"})
                    assert result.structured_content is not None
                    assert result.structured_content["data"] == proxied.json()
        mcp_replicas = {r[3][-1] for r in d.log() if r[1] == "/mcp" and r[2] == 200}
        assert mcp_replicas == {a, b}, d.log()

        # two WebSockets: least_conn puts them on different replicas; an import through the proxy
        # (committed by one replica) reaches both
        async with connect(ws_url + jwt) as first, connect(ws_url + jwt) as second:
            for ws in (first, second):
                await next_of(ws, "analytics_update")
            assert [await websocket_clients(r, key) for r in (a, b)] == [1, 1]
            users = "user_id,kind,capital_usdc,created_at\nproxied,agent,1000,2026-03-01T00:00:00Z\n"
            await ingest(d.url, key, "users", users)
            trades = f"trade_id,user_id,ts,volume_usdc,pnl_usdc\np1,proxied,{iso_minus(60)},250,5\n"
            version = await ingest(d.url, key, "trades", trades)
            for ws in (first, second):
                await update_after(ws, version)

            # replica a dies: its WebSocket is cut, REST through the proxy keeps answering (nginx tries
            # a, fails, and retries on b), and the cut client reconnects through the proxy to b
            os.kill(d.replicas["a"][1], signal.SIGKILL)
            cut, kept = await cut_and_kept(first, second)
            before = len(d.log())
            async with httpx.AsyncClient(base_url=d.url, timeout=10) as http:
                for _ in range(4):
                    answer = await http.get(DASHBOARD, params=params, headers=bearer)
                    assert answer.status_code == 200, answer.text
            await until(lambda: len(d.log()) >= before + 4, "4 more requests logged")
            after = [r for r in d.log()[before:] if r[1] == DASHBOARD]
            assert all(r[2] == 200 and r[3][-1] == b for r in after), after
            assert any(r[3] == [a, b] for r in after), after  # the first tried a, then b
            async with connect(ws_url + jwt) as again:
                await next_of(again, "analytics_update")
                more = f"trade_id,user_id,ts,volume_usdc,pnl_usdc\np2,proxied,{iso_minus(30)},100,1\n"
                version = await ingest(d.url, key, "trades", more)
                for ws in (again, kept):
                    await update_after(ws, version)
            assert await websocket_clients(b, key) == 1  # `kept`, still open on b
            del cut

        # a graceful stop takes nginx and the surviving replica with it
        d.process.send_signal(signal.SIGTERM)
        with anyio.fail_after(30):
            await d.process.wait()
        assert d.process.returncode == 0, "".join(d.output)
        await until(lambda: not alive(d.nginx_pid) and not alive(d.replicas["b"][1]), "nginx and b gone")


def iso_minus(seconds: int) -> str:
    return iso(NOW - seconds)


async def cut_and_kept(
    first: ClientConnection, second: ClientConnection
) -> tuple[ClientConnection, ClientConnection]:
    """Which of the two WebSockets the dead replica's was: the one that closes (within 5 s)."""
    closed: list[ClientConnection] = []

    async def watch(ws: ClientConnection) -> None:
        try:
            while True:
                await ws.recv()
        except ConnectionClosed:
            closed.append(ws)
            tasks.cancel_scope.cancel()

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(watch, first)
            tasks.start_soon(watch, second)
    assert len(closed) == 1
    cut = closed[0]
    return cut, second if cut is first else first
