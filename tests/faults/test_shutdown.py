"""SIGTERM to a real `cymetica-mcp serve` while ingest requests commit and WebSockets receive pushes.

Two clients post batches of new trades back to back and three WebSocket clients read the pushes of
each import; once imports have landed and pushes arrived, the server gets SIGTERM. Every WebSocket is
closed with 1001, the process exits with status 0 within the graceful deadline, every batch that got
its 200 is in the store (each batch whole or not at all), the store is sound, and a server started
again on it serves those figures.
"""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import anyio
import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect

from cymetica_mcp.engine import TradeIndex, compute
from cymetica_mcp.models import Filter, Period
from cymetica_mcp.store import SQLiteStore
from cymetica_mcp.web._server import GRACEFUL_SECONDS
from tests.conftest import NOW
from tests.faults.conftest import Workload, server_process
from tests.web.helpers import close_of, next_of

pytestmark = pytest.mark.anyio

POSTERS = 2
BATCHES_EACH = 60  # far more than land before the signal: the posters are still posting when it comes
PER_BATCH = 200
WEBSOCKETS = 3
LANDED_BEFORE_SIGNAL = 4
SECONDS = 20.0


def batch(poster: int, number: int, users: list[str]) -> bytes:
    rows = "".join(
        f"s{poster}-{number}-{i},{users[(number + i) % len(users)]},2026-03-20T{i % 12:02}:{number % 60:02}:00Z,"
        f"{i + 1}.5,{(-1) ** i * i}\n"
        for i in range(PER_BATCH)
    )
    return ("trade_id,user_id,ts,volume_usdc,pnl_usdc\n" + rows).encode()


def present(db: Path, poster: int, number: int) -> int:
    with SQLiteStore(db).read() as conn:
        return int(
            conn.execute(
                "SELECT count(*) FROM trades WHERE trade_id LIKE ?", (f"s{poster}-{number}-%",)
            ).fetchone()[0]
        )


async def test_sigterm_loses_no_answered_import_closes_websockets_with_1001_and_exits_0(
    workload: Workload, tmp_path: Path
) -> None:
    db = workload.fresh(tmp_path / "store.db")
    with SQLiteStore(db).read() as conn:
        users = [row[0] for row in conn.execute("SELECT user_id FROM users ORDER BY id LIMIT 50")]
    answered: list[tuple[int, int]] = []
    refused: list[tuple[int, int, int | None]] = []
    landed = anyio.Event()
    pushed: list[int] = []
    closes: list[tuple[int, str]] = []
    args = ("--push-interval", "0.2", "--ingest-rate-limit", "60000", "--ingest-burst", "1000")
    headers = {"Authorization": f"Bearer {workload.key}", "Content-Type": "text/csv"}

    async with server_process(db, *args) as server:

        async def post(poster: int) -> None:
            async with httpx.AsyncClient(base_url=server.url, timeout=SECONDS) as http:
                for number in range(BATCHES_EACH):
                    try:
                        response = await http.post(
                            "/api/v1/ingest/trades", content=batch(poster, number, users), headers=headers
                        )
                    except httpx.TransportError:
                        refused.append((poster, number, None))
                        return  # the server has gone: nothing more to send
                    if response.status_code != 200:
                        refused.append((poster, number, response.status_code))
                        return  # refused during the shutdown
                    answered.append((poster, number))
                    if len(answered) >= LANDED_BEFORE_SIGNAL:
                        landed.set()

        async def watch(ws: ClientConnection) -> None:
            await next_of(ws, "analytics_update")
            await next_of(ws, "analytics_update", seconds=SECONDS)  # pushed after an import
            pushed.append(1)
            code, reason, _ = await close_of(ws, seconds=SECONDS)
            closes.append((code, reason))

        sockets = [
            await connect(f"{server.ws_url}?token={workload.key}", open_timeout=SECONDS)
            for _ in range(WEBSOCKETS)
        ]
        async with anyio.create_task_group() as tasks:
            for ws in sockets:
                tasks.start_soon(watch, ws)
            for poster in range(POSTERS):
                tasks.start_soon(post, poster)
            with anyio.fail_after(SECONDS):
                await landed.wait()
                while len(pushed) < WEBSOCKETS:  # noqa: ASYNC110 - set by the watchers above
                    await anyio.sleep(0.01)
            server.process.send_signal(signal.SIGTERM)
            signalled = time.monotonic()
            with anyio.fail_after(GRACEFUL_SECONDS + 5):
                await server.process.wait()
            stopped = time.monotonic() - signalled
        log = server.log.read_text()

    assert server.process.returncode == 0, log
    assert stopped < GRACEFUL_SECONDS, stopped
    assert closes == [(1001, "server shutting down")] * WEBSOCKETS
    assert len(refused) == POSTERS  # each poster was cut off by the shutdown, not by running out
    assert "Traceback" not in log and workload.key not in log

    # every answered batch is there, whole; every other batch whole or absent
    for poster, number in answered:
        assert present(db, poster, number) == PER_BATCH, (poster, number)
    for poster, number, _ in refused:
        assert present(db, poster, number) in (0, PER_BATCH)
    store = SQLiteStore(db)
    assert store.check() == []
    with store.read() as conn:
        trades = int(conn.execute("SELECT count(*) FROM trades WHERE trade_id LIKE 's%'").fetchone()[0])
    assert trades // PER_BATCH - len(answered) in (0, 1, 2)  # at most the batches in flight besides
    assert store.data_version() == workload.before.data_version + trades // PER_BATCH

    # started again, the server serves those figures
    expected = compute(TradeIndex.load(store), Filter.ALL, Period.H24, NOW).to_wire()
    async with server_process(db) as again, httpx.AsyncClient(base_url=again.url) as http:
        ready = await http.get("/readyz")
        dashboard = await http.get(
            "/api/v1/analytics/dashboard",
            params={"filter": "all", "period": "24h"},
            headers={"Authorization": f"Bearer {workload.key}"},
        )
        again.process.send_signal(signal.SIGTERM)
        with anyio.fail_after(GRACEFUL_SECONDS + 5):
            await again.process.wait()
    assert ready.status_code == 200 and dashboard.status_code == 200
    assert json.loads(dashboard.content) == expected
    assert again.process.returncode == 0
