"""Replicas that agree: `cymetica-mcp serve` processes over one PostgreSQL database, as users run them.

Real servers on loopback ports, real WebSocket and MCP clients, the test fixture's real cluster. An
import committed anywhere (replica A's ingest endpoint, the command line) reaches replica B's
WebSocket clients and MCP subscribers within `BOUND`; a key revoked or a JWT secret rotated anywhere
is refused by B within it; a JWT of A works on B; an MCP client whose requests alternate between the
replicas works (`--mcp-stateless`); killing A leaves B's clients served; B follows the database
through a restart; `--workers 2` serves on PostgreSQL.
"""

from __future__ import annotations

import json
import signal
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx
import httpx2
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPDeprecationWarning
from mcp.types import ResourceUpdatedNotification
from prometheus_client.parser import text_string_to_metric_families
from websockets.asyncio.client import ClientConnection, connect

from cymetica_mcp.auth import KeyRing, rotate_jwt_secret
from cymetica_mcp.ingest import DemoSpec, import_files, write_demo
from cymetica_mcp.mcp_server import TOOL_NAME, dashboard_uri
from cymetica_mcp.models import Filter, Period, Scope
from cymetica_mcp.store import PostgresStore
from cymetica_mcp.web._options import UPDATE_EVERY
from cymetica_mcp.windows import iso
from tests.conftest import NOW, NOW_ISO
from tests.postgres import Cluster

from .helpers import next_of
from .test_web_cli import CLI, Running, rest, serve

pytestmark = pytest.mark.anyio

BOUND = 1.0
"""CONTRACT.md section 8: every replica serves a commit within one second of it."""
BOT = "replica-bot"


@dataclass
class Shared:
    """One database with demo data, a key that may read and ingest, and a store of this process's (what
    `keys revoke` or `import` would do from the command line)."""

    url: str
    key: str
    store: PostgresStore
    folder: Path

    def trades(self, name: str, volume: int) -> str:
        """A CSV of one new trade of BOT inside every window of the fixed clock."""
        return f"trade_id,user_id,ts,volume_usdc,pnl_usdc\n{name},{BOT},{iso(NOW - 60)},{volume},1\n"


@pytest.fixture
def shared(pg_url: str, tmp_path: Path) -> Iterator[Shared]:
    store = PostgresStore(pg_url)
    users, trades = write_demo(DemoSpec(users=60, trades=3_000, days=40, seed=7), NOW, tmp_path)
    bot = tmp_path / "bot.csv"
    bot.write_text(f"user_id,kind,capital_usdc,created_at\n{BOT},agent,1000,2026-01-01T00:00:00Z\n")
    import_files(store, users, trades)
    import_files(store, bot)
    key = KeyRing(store).create("replicas", (Scope.READ, Scope.INGEST))[1]
    yield Shared(pg_url, key, store, tmp_path)
    store.close()


def auth(credential: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {credential}"}


@asynccontextmanager
async def replicas(shared: Shared, count: int = 2, *args: str) -> AsyncIterator[list[Running]]:
    """`count` replicas over the shared database, started together."""
    async with AsyncExitStack() as stack:
        running: list[Running] = [None] * count  # type: ignore[list-item]

        async def start(i: int) -> None:
            running[i] = await stack.enter_async_context(serve(shared.url, "--mcp-stateless", *args))

        async with anyio.create_task_group() as tasks:
            for i in range(count):
                tasks.start_soon(start, i)
        yield running


@asynccontextmanager
async def watching(server: Running, key: str) -> AsyncIterator[tuple[ClientConnection, int]]:
    """A WebSocket on `server`, after its first update: (socket, that update's data version). The next
    change is pushed as soon as it is learnt (the first update does not hold it back)."""
    async with connect(f"{server.url.replace('http', 'ws')}/ws/analytics?token={key}") as ws:
        first = await next_of(ws, "analytics_update")
        yield ws, first["data_version"]


async def pushed(ws: ClientConnection, version: int, seconds: float = 5.0) -> tuple[float, dict[str, Any]]:
    """The first update of data `version` or newer: when it arrived (perf_counter) and the message."""
    with anyio.fail_after(seconds):
        while True:
            message = await next_of(ws, "analytics_update", seconds)
            if message["data_version"] >= version:
                return time.perf_counter(), message


async def ingest(url: str, key: str, body: str) -> float:
    """POST trades to a replica; the instant (perf_counter) the request was sent, before its commit."""
    async with httpx.AsyncClient(base_url=url) as http:
        sent = time.perf_counter()
        answer = await http.post(
            "/api/v1/ingest/trades", content=body, headers={**auth(key), "Content-Type": "text/csv"}
        )
    assert answer.status_code == 200, answer.text
    return sent


async def figures(url: str, key: str) -> dict[str, float]:
    async with httpx.AsyncClient() as http:
        answer = await http.get(f"{url}/metrics", headers=auth(key))
    assert answer.status_code == 200, answer.text
    return {
        sample.name: sample.value
        for family in text_string_to_metric_families(answer.text)
        for sample in family.samples
    }


class Alternating(httpx2.AsyncHTTPTransport):
    """Sends each request to the next replica in turn, as a round-robin balancer without affinity would."""

    def __init__(self, ports: list[int]) -> None:
        super().__init__()
        self.ports = ports
        self.sent: list[int] = []

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        port = self.ports[len(self.sent) % len(self.ports)]
        self.sent.append(port)
        request.url = request.url.copy_with(port=port)
        return await super().handle_async_request(request)


async def test_an_import_anywhere_reaches_every_replica_s_clients_within_a_second(shared: Shared) -> None:
    async with replicas(shared) as (a, b), watching(b, shared.key) as (ws, version):
        # through replica A's ingest endpoint: from the request's sending (before its commit) to B's push
        latencies = []
        for n in range(3):
            sent = await ingest(a.url, shared.key, shared.trades(f"via-a-{n}", 10 + n))
            arrived, message = await pushed(ws, version + 1)
            version = message["data_version"]
            latencies.append(arrived - sent)
            await anyio.sleep(UPDATE_EVERY)  # pacing: at most one change push a second to a client
        assert max(latencies) <= BOUND, latencies

        # through the command line: from its exit (after its commit) to B's push
        trades = shared.folder / "cli.csv"
        trades.write_text(shared.trades("via-cli", 7))
        done = await anyio.run_process([*CLI, "--db", shared.url, "import", "--trades", str(trades)])
        exited = time.perf_counter()
        assert done.returncode == 0
        arrived, message = await pushed(ws, version + 1)
        assert arrived - exited <= BOUND
        version = message["data_version"]

        # every door of every replica answers the same, to the cent
        answers = [await rest(r.url, shared.key, filter="all", period="24h") for r in (a, b)]
        assert [r.headers["X-Data-Version"] for r in answers] == [str(version)] * 2
        assert answers[0].json() == answers[1].json() == message["data"]

        # an MCP client whose requests alternate between the replicas (no session affinity)
        transport = Alternating([int(r.url.rsplit(":", 1)[1]) for r in (a, b)])
        async with (
            httpx2.AsyncClient(headers=auth(shared.key), timeout=10, transport=transport) as http,
            Client(streamable_http_client(f"{a.url}/mcp", http_client=http), mode="legacy") as mcp,
        ):
            calls = [await mcp.call_tool(TOOL_NAME, {"filter": "all", "period": "24h"}) for _ in range(3)]
        assert set(transport.sent) == set(transport.ports)
        for call in calls:
            assert call.structured_content is not None
            assert call.structured_content["data"] == answers[0].json()

        # B's figures show no lag behind the database
        shown = await figures(b.url, shared.key)
        assert shown["cymetica_store_data_version"] == version
        assert shown["cymetica_replica_lag_versions"] == 0
        assert shown["cymetica_replica_lag_seconds"] == 0


async def test_an_mcp_subscriber_hears_of_another_replica_s_import_within_a_second(shared: Shared) -> None:
    uri = dashboard_uri(Filter.AGENTS, Period.H24)
    heard: list[float] = []

    async def on_message(message: object) -> None:
        if isinstance(message, ResourceUpdatedNotification) and message.params.uri == uri:
            heard.append(time.perf_counter())

    env = {"CYMETICA_DB": shared.url, "CYMETICA_API_KEY": shared.key, "CYMETICA_NOW": NOW_ISO}
    params = StdioServerParameters(command=sys.executable, args=["-m", "cymetica_mcp", "mcp"], env=env)
    async with replicas(shared, 1) as (a,):
        with (shared.folder / "mcp.log").open("a") as errlog:
            async with Client(
                stdio_client(params, errlog=errlog), mode="legacy", message_handler=on_message
            ) as mcp:
                with pytest.warns(MCPDeprecationWarning):
                    await mcp.subscribe_resource(uri)
                sent = await ingest(a.url, shared.key, shared.trades("for-mcp", 5))
                with anyio.fail_after(5):
                    while not heard:  # noqa: ASYNC110 - the handler runs on the session's task
                        await anyio.sleep(0.01)
                assert heard[0] - sent <= BOUND
                after = json.loads((await mcp.read_resource(uri)).contents[0].text)  # type: ignore[union-attr]
    assert after["meta"]["data_version"] == shared.store.data_version()


async def test_a_revocation_or_rotation_anywhere_is_refused_by_every_replica_within_a_second(
    shared: Shared,
) -> None:
    ring = KeyRing(shared.store)
    info, other = ring.create("to-revoke")
    async with replicas(shared) as (a, b), httpx.AsyncClient() as http:
        # a JWT issued by A is accepted by B (the secret lives in the database)
        token = (await http.post(f"{a.url}/api/v1/auth/token", headers=auth(shared.key))).json()[
            "access_token"
        ]
        other_token = (await http.post(f"{a.url}/api/v1/auth/token", headers=auth(other))).json()[
            "access_token"
        ]
        for credential in (token, other, other_token):
            assert (await rest(b.url, credential)).status_code == 200  # and remembered by B

        async def refused_within(credential: str) -> float:
            began = time.perf_counter()
            with anyio.fail_after(5):
                while (await rest(b.url, credential)).status_code == 200:
                    pass
            return time.perf_counter() - began

        ring.revoke(info.id)  # as `keys revoke` does, in another process than either replica
        assert await refused_within(other) <= BOUND
        assert (await rest(b.url, other_token)).status_code == 401
        assert (await rest(a.url, other)).status_code == 401

        rotate_jwt_secret(shared.store)  # as `keys rotate-jwt-secret` does
        assert await refused_within(token) <= BOUND
        fresh = (await http.post(f"{b.url}/api/v1/auth/token", headers=auth(shared.key))).json()[
            "access_token"
        ]
        assert (await rest(a.url, fresh)).status_code == 200
        assert (await rest(b.url, shared.key)).status_code == 200


async def test_b_s_clients_outlive_a_and_follow_the_database_through_a_restart(
    shared: Shared, pg_cluster: Cluster
) -> None:
    async with replicas(shared) as (a, b), watching(b, shared.key) as (ws, version):
        a.process.send_signal(signal.SIGKILL)
        await a.process.wait()
        sent = await ingest(b.url, shared.key, shared.trades("after-a", 3))
        arrived, message = await pushed(ws, version + 1)
        assert arrived - sent <= BOUND
        version = message["data_version"]

        pg_cluster.restart()  # every connection of B is cut, its listener's included
        await anyio.sleep(UPDATE_EVERY)  # pacing: at most one change push a second to a client
        with anyio.fail_after(20):  # B answers again once the database is back (its pool reconnects)
            while (await rest(b.url, shared.key)).status_code != 200:  # noqa: ASYNC110 - polled over HTTP
                await anyio.sleep(0.05)
        restarted = PostgresStore(shared.url)
        try:
            trades = shared.folder / "restart.csv"
            trades.write_text(shared.trades("after-restart", 4))
            began = time.perf_counter()
            import_files(restarted, trades=trades)
            committed = time.perf_counter()
        finally:
            restarted.close()
        arrived, message = await pushed(ws, version + 1)
        assert arrived - committed <= BOUND, arrived - began
        assert ws.close_code is None  # the same socket throughout
        b.process.send_signal(signal.SIGTERM)
        with anyio.fail_after(15):
            await b.process.wait()
        assert b.process.stderr is not None
        log = (await b.process.stderr.receive(1 << 20)).decode()
    assert "Traceback" not in log, log  # the outage was said in a line, not as a trace every look


async def test_two_workers_serve_a_postgresql_store(shared: Shared) -> None:
    async with serve(shared.url, "--workers", "2") as running:
        before = shared.store.data_version()
        first = await rest(running.url, shared.key, filter="all", period="24h")
        assert first.status_code == 200 and first.headers["X-Data-Version"] == str(before)
        trades = shared.folder / "workers.csv"
        trades.write_text(shared.trades("workers", 9))
        import_files(shared.store, trades=trades)
        for _ in range(8):  # a new connection each: the kernel hands them to either worker
            fresh = await rest(running.url, shared.key, filter="all", period="24h")
            assert fresh.status_code == 200 and fresh.headers["X-Data-Version"] == str(before + 1)
        running.process.send_signal(signal.SIGTERM)
        with anyio.fail_after(30):
            await running.process.wait()
    assert running.process.returncode == 0
