"""`POST /api/v1/ingest/trades|users` and scoped keys, against the real server: what the platform relies on."""

from __future__ import annotations

import gzip
import json
import os
import socket
import sys
import time
from contextlib import closing
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from websockets.asyncio.client import connect

from cymetica_mcp.auth import KeyRing
from cymetica_mcp.engine import open_engine
from cymetica_mcp.models import Filter, Period, Scope
from cymetica_mcp.store import SQLiteStore
from cymetica_mcp.windows import iso
from tests.conftest import NOW, clean_env

from .conftest import Served, serving
from .helpers import MCP_INITIALIZE, close_of, eventually, receive

pytestmark = pytest.mark.anyio

TRADES = "/api/v1/ingest/trades"
USERS = "/api/v1/ingest/users"
CSV = {"Content-Type": "text/csv"}
JSONL = {"Content-Type": "application/x-ndjson"}
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
CLI = [sys.executable, "-m", "cymetica_mcp"]
USERS_JSONL = (
    '{"user_id": "live-h", "kind": "human", "capital_usdc": "1000", "created_at": "2026-01-01T00:00:00Z"}\n'
    '{"user_id": "live-a", "kind": "agent", "capital_usdc": "500", "created_at": "2026-01-01T00:00:00Z"}\n'
)


def trades_csv(*rows: tuple[str, str, float]) -> str:
    """A trades CSV of (trade_id, user_id, volume) rows, a minute before NOW."""
    at = iso(NOW - 60)
    return "trade_id,user_id,ts,volume_usdc,pnl_usdc\n" + "".join(f"{t},{u},{at},{v},1\n" for t, u, v in rows)


def dump(store: SQLiteStore) -> list[str]:
    with store.read() as conn:
        return [line for line in conn.iterdump() if "api_keys" not in line]  # last use may be recorded


def key(store: SQLiteStore, *scopes: Scope) -> str:
    return KeyRing(store).create("ingest-tests", scopes)[1]


def bearer(secret: str, headers: dict[str, str] | None = None) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}", **(headers or {})}


@pytest.fixture
def writer(served: Served) -> str:
    """A key that may read and ingest."""
    return key(served.store, Scope.READ, Scope.INGEST)


async def test_trades_are_imported_shown_at_once_and_a_retry_changes_nothing(
    served: Served, writer: str
) -> None:
    async with httpx.AsyncClient(base_url=served.url, headers=bearer(writer)) as http:
        users = await http.post(USERS, content=USERS_JSONL, headers=JSONL)
        assert users.status_code == 200 and users.json()["users_inserted"] == 2
        before = (await http.get("/api/v1/analytics/dashboard")).json()
        body = trades_csv(("live-1", "live-h", 250.5), ("live-2", "live-a", 100))
        done = await http.post(TRADES, content=body, headers=CSV)
        assert done.status_code == 200
        answer = done.json()
        assert answer["trades_inserted"] == 2 and answer["trades_present"] == 0 and answer["rows"] == 2
        assert answer["data_version"] == users.json()["data_version"] + 1 and answer["seconds"] > 0
        after = (await http.get("/api/v1/analytics/dashboard")).json()  # the next call shows the trades
        grown = after["metrics"]["trading_volume"]["value"] - before["metrics"]["trading_volume"]["value"]
        assert round(grown, 2) == 350.5
        again = (await http.post(TRADES, content=body, headers=CSV)).json()  # a client's retry
        assert (again["trades_inserted"], again["trades_present"]) == (0, 2)
        assert again["data_version"] == answer["data_version"]
    assert served.engine.dashboard(Filter.ALL, Period.H24, NOW).to_wire() == after


async def test_gzip_bodies_are_accepted(served: Served, writer: str) -> None:
    async with httpx.AsyncClient(base_url=served.url, headers=bearer(writer)) as http:
        packed = gzip.compress(USERS_JSONL.encode())
        done = await http.post(USERS, content=packed, headers={**JSONL, "Content-Encoding": "gzip"})
    assert done.status_code == 200 and done.json()["users_inserted"] == 2


@pytest.mark.parametrize(
    ("path", "body", "headers", "status", "code"),
    [
        (TRADES, trades_csv(("g-1", "ghost", 1)), CSV, 400, "import_refused"),
        (TRADES, "trade_id,user_id\nx,y\n", CSV, 400, "import_refused"),
        (USERS, '{"user_id": "x", "kind": "robot"}\n', JSONL, 400, "import_refused"),
        (
            TRADES,
            trades_csv(("n-1", "live-h", 1)),
            {"Content-Type": "application/json"},
            415,
            "unsupported_media_type",
        ),
        (
            TRADES,
            trades_csv(("n-1", "live-h", 1)),
            {**CSV, "Content-Encoding": "br"},
            415,
            "unsupported_media_type",
        ),
        (
            TRADES,
            gzip.compress(b"trade_id,user_id,ts\n" * 50)[:40],
            {**CSV, "Content-Encoding": "gzip"},
            400,
            "invalid_argument",
        ),
        (TRADES, b"not gzip at all", {**CSV, "Content-Encoding": "gzip"}, 400, "invalid_argument"),
        (TRADES, "x" * 5_000, CSV, 413, "payload_too_large"),
        (
            TRADES,
            gzip.compress(b"0" * 5_000_000),
            {**CSV, "Content-Encoding": "gzip"},
            413,
            "payload_too_large",
        ),
    ],
    ids=[
        "unknown-user",
        "bad-header",
        "bad-kind",
        "content-type",
        "encoding",
        "truncated-gzip",
        "not-gzip",
        "too-big",
        "gzip-bomb",
    ],
)
async def test_bad_bodies_are_refused_and_change_nothing(
    demo_store: SQLiteStore, path: str, body: str | bytes, headers: dict[str, str], status: int, code: str
) -> None:
    secret = key(demo_store, Scope.INGEST)
    with serving(demo_store, ingest_max_bytes=4_096) as served:
        before = dump(served.store)
        async with httpx.AsyncClient(base_url=served.url, headers=bearer(secret)) as http:
            refused = await http.post(path, content=body, headers=headers)
        assert refused.status_code == status
        assert refused.json()["success"] is False and refused.json()["error"]["code"] == code
        assert dump(served.store) == before


async def test_a_refused_import_names_its_rows_by_line_as_the_command_line_does(
    served: Served, writer: str
) -> None:
    body = trades_csv(("ok-1", "live-h", 1), ("bad-1", "ghost", 1), ("bad-2", "live-h", -5))
    async with httpx.AsyncClient(base_url=served.url, headers=bearer(writer)) as http:
        await http.post(USERS, content=USERS_JSONL, headers=JSONL)
        refused = (await http.post(TRADES, content=body, headers=CSV)).json()
    assert refused["total"] == 2
    assert [row["line"] for row in refused["rows"]] == [3, 4]
    assert refused["rows"][0]["reason"] == "unknown user_id 'ghost': import the user first"
    assert "volume_usdc must be > 0" in refused["rows"][1]["reason"]
    assert "trades.csv:3: unknown user_id 'ghost'" in refused["error"]["message"]


async def test_scopes_are_enforced_on_every_door(served: Served, api_key: str) -> None:
    ingest_only = key(served.store, Scope.INGEST)
    async with httpx.AsyncClient(base_url=served.url) as http:
        read_key_writes = await http.post(TRADES, content=trades_csv(), headers=bearer(api_key, CSV))
        assert read_key_writes.status_code == 403
        assert "'ingest' scope" in read_key_writes.json()["error"]["message"]
        writer_reads = await http.get("/api/v1/analytics/dashboard", headers=bearer(ingest_only))
        assert writer_reads.status_code == 403 and writer_reads.json()["error"]["code"] == "forbidden"
        assert "'read' scope" in writer_reads.json()["error"]["message"]
        token = (await http.post("/api/v1/auth/token", headers=bearer(ingest_only))).json()["access_token"]
        with_token = await http.post(USERS, content=USERS_JSONL, headers=bearer(token, JSONL))
        assert with_token.status_code == 200  # the JWT carries the key's scopes
        assert (await http.get("/api/v1/analytics/dashboard", headers=bearer(token))).status_code == 403
        mcp = await http.post(
            "/mcp",
            headers=bearer(ingest_only, {"Accept": "application/json, text/event-stream"}),
            json=MCP_INITIALIZE,
        )
        assert mcp.status_code == 200  # the door admits the key; its tool refuses (tests/mcp_server)
    for credential in (ingest_only, token):
        async with connect(f"{served.ws_url}?token={credential}") as ws:
            code, reason, before = await close_of(ws)
        assert (code, before) == (4403, []) and "'read' scope" in reason


async def test_a_revoked_ingest_key_and_its_tokens_are_refused_at_once(served: Served) -> None:
    ring = KeyRing(served.store)
    info, secret = ring.create("platform", (Scope.INGEST,))
    async with httpx.AsyncClient(base_url=served.url) as http:
        token = (await http.post("/api/v1/auth/token", headers=bearer(secret))).json()["access_token"]
        assert (await http.post(USERS, content=USERS_JSONL, headers=bearer(secret, JSONL))).status_code == 200
        KeyRing(SQLiteStore(served.store.path)).revoke(info.id)  # as `keys revoke` would, elsewhere
        for credential in (secret, token):
            refused = await http.post(USERS, content=USERS_JSONL, headers=bearer(credential, JSONL))
            assert refused.status_code == 401 and "revoked" in refused.json()["error"]["message"]


async def test_an_expired_key_is_refused_and_its_tokens_never_outlive_it(served: Served) -> None:
    ring = KeyRing(served.store)
    _, short = ring.create("short-lived", (Scope.READ, Scope.INGEST), lifetime=2)
    async with httpx.AsyncClient(base_url=served.url) as http:
        issued = (await http.post("/api/v1/auth/token", headers=bearer(short))).json()
        assert 0 < issued["expires_in"] <= 2
        await anyio.sleep(2.2)
        for credential in (short, issued["access_token"]):
            refused = await http.post(USERS, content=USERS_JSONL, headers=bearer(credential, JSONL))
            assert refused.status_code == 401 and refused.json()["error"]["code"] == "unauthorized"


async def test_a_full_writer_queue_answers_503_with_retry_after(demo_store: SQLiteStore) -> None:
    secret = key(demo_store, Scope.INGEST)
    with serving(demo_store, ingest_queue=1) as served:
        blocker = served.store.connect()
        blocker.execute("BEGIN IMMEDIATE")  # another process's import holds the writer
        try:
            first: list[httpx.Response] = []
            async with (
                httpx.AsyncClient(base_url=served.url, headers=bearer(secret), timeout=30) as http,
                anyio.create_task_group() as tasks,
            ):

                async def waits() -> None:
                    first.append(await http.post(USERS, content=USERS_JSONL, headers=JSONL))

                tasks.start_soon(waits)
                await _until(lambda: served.app.writer.waiting == 1)
                second = await http.post(USERS, content=USERS_JSONL, headers=JSONL)
                assert second.status_code == 503 and second.json()["error"]["code"] == "unavailable"
                assert second.headers["Retry-After"] == "1"
                blocker.execute("ROLLBACK")
            assert first[0].status_code == 200 and first[0].json()["users_inserted"] == 2
        finally:
            blocker.close()


async def test_a_body_cut_short_by_the_client_imports_nothing(served: Served, writer: str) -> None:
    async with httpx.AsyncClient(base_url=served.url, headers=bearer(writer)) as http:
        await http.post(USERS, content=USERS_JSONL, headers=JSONL)
    before = dump(served.store)
    host, port = served.url.removeprefix("http://").split(":")
    body = trades_csv(("cut-1", "live-h", 1)).encode()
    head = (
        f"POST {TRADES} HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer {writer}\r\n"
        f"Content-Type: text/csv\r\nContent-Length: {len(body) + 1000}\r\n\r\n"
    ).encode()

    def ingests_ended() -> float:
        return sum(
            sample.value
            for metric in served.app.metrics.requests.collect()
            for sample in metric.samples
            if sample.name.endswith("_total") and sample.labels["door"] == "ingest"
        )

    with closing(socket.create_connection((host, int(port)))) as sock:
        sock.sendall(head + body)  # a thousand bytes short, then gone
    await eventually(lambda: ingests_ended() >= 2)  # the server is done with the cut request
    assert dump(served.store) == before


async def test_concurrent_ingests_lose_nothing_double_nothing_and_readers_see_whole_imports(
    served: Served, writer: str
) -> None:
    async with httpx.AsyncClient(base_url=served.url, headers=bearer(writer), timeout=30) as http:
        await http.post(USERS, content=USERS_JSONL, headers=JSONL)
        base = (await http.get("/api/v1/analytics/dashboard")).json()["metrics"]["trading_volume"]["value"]
        seen: list[float] = []

        async def post(batch: int) -> None:  # batches overlap: batch b holds trades b..b+9
            rows = [(f"c-{i}", "live-h", 1) for i in range(batch, batch + 10)]
            answer = await http.post(TRADES, content=trades_csv(*rows), headers=CSV)
            assert answer.status_code == 200

        async def read() -> None:
            for _ in range(20):
                seen.append(
                    (await http.get("/api/v1/analytics/dashboard")).json()["metrics"]["trading_volume"][
                        "value"
                    ]
                )

        async with anyio.create_task_group() as tasks:
            for batch in range(0, 50, 5):
                tasks.start_soon(post, batch)
            tasks.start_soon(read)
        final = (await http.get("/api/v1/analytics/dashboard")).json()["metrics"]["trading_volume"]["value"]
    assert round(final - base, 2) == 55  # trades c-0 .. c-54, each once
    assert all(round(v - base, 2) == int(round(v - base, 2)) and base <= v <= final for v in seen)


async def test_an_import_is_pushed_to_the_websockets_whose_figures_it_changed(
    demo_store: SQLiteStore,
) -> None:
    secret = key(demo_store, Scope.READ, Scope.INGEST)
    with serving(demo_store, push_interval=60, change_check_interval=0.05) as served:
        async with httpx.AsyncClient(base_url=served.url, headers=bearer(secret)) as http:
            await http.post(USERS, content=USERS_JSONL, headers=JSONL)
            async with (
                connect(f"{served.ws_url}?token={secret}") as everyone,
                connect(f"{served.ws_url}?token={secret}") as agents,
            ):
                await receive(everyone), await receive(everyone), await receive(agents), await receive(agents)
                await agents.send(
                    json.dumps({"type": "set_preferences", "filter": "humans", "period": "30d"})
                )
                await receive(agents), await receive(agents)
                await anyio.sleep(1.1)  # past the one-update-a-second bound of each
                posted = time.monotonic()
                done = await http.post(TRADES, content=trades_csv(("push-1", "live-a", 42)), headers=CSV)
                assert done.status_code == 200
                update = await receive(everyone, 2.0)
                assert update["type"] == "analytics_update" and time.monotonic() - posted < 2.0
                assert update["data"] == served.engine.dashboard(Filter.ALL, Period.H24, NOW).to_wire()
                with pytest.raises(TimeoutError):  # an agent's trade leaves the humans' figures alone
                    await receive(agents, 0.6)


async def _until(condition: Any, seconds: float = 10.0) -> None:
    with anyio.fail_after(seconds):
        while not condition():  # noqa: ASYNC110 - the state lives in the server's thread
            await anyio.sleep(0.01)


async def test_the_ingest_example_sends_batches_and_a_retry_lands_nothing_twice(served: Served) -> None:
    secret = key(served.store, Scope.INGEST)
    env = {**os.environ, "CYMETICA_URL": served.url, "CYMETICA_API_KEY": secret}
    done = await anyio.run_process([sys.executable, str(EXAMPLES / "ingest_client.py")], env=env)
    lines = done.stdout.decode().splitlines()
    assert lines[0].startswith("users: 2 new, data version ")
    assert [line.split(", data version")[0] for line in lines[1:]] == [
        "trades: 5 new, 0 already present",
        "trades: 5 new, 0 already present",
        "trades: 5 new, 0 already present",
        "trades: 0 new, 5 already present",
    ]


async def test_the_simulator_reaches_a_websocket_within_two_seconds(demo_store: SQLiteStore) -> None:
    secret = key(demo_store, Scope.READ, Scope.INGEST)
    # the simulator's trades are timed now, so the server's clock must be the real one
    with serving(demo_store, open_engine(demo_store), push_interval=60, change_check_interval=0.1) as served:
        async with connect(f"{served.ws_url}?token={secret}") as ws:
            await receive(ws), await receive(ws)
            await anyio.sleep(1.0)  # past the one-update-a-second bound
            command = [
                *CLI,
                "simulate",
                "--url",
                served.url,
                "--key",
                secret,
                "--rate",
                "20",
                "--duration",
                "1.5",
            ]
            async with await anyio.open_process(command) as simulator:
                started = time.monotonic()
                update = await receive(ws, 4.0)  # the first batch is sent at once
                assert update["type"] == "analytics_update" and time.monotonic() - started < 4.0
                assert update["data"]["metrics"]["active_users"]["value"] > 0
                assert await simulator.wait() == 0
        report = await anyio.run_process(
            [*CLI, "--db", str(served.store.path), "keys", "list", "--json"], env=clean_env()
        )
    assert json.loads(report.stdout)[-1]["scopes"] == ["read", "ingest"]
