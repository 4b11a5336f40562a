"""`/ws/analytics` through the `websockets` library against the real server."""

from __future__ import annotations

import base64
import json
import logging
import os
import socket
import threading
from collections import Counter
from contextlib import closing
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from cymetica_mcp.auth import KeyRing
from cymetica_mcp.engine import Engine, Result, open_engine
from cymetica_mcp.ingest import import_files
from cymetica_mcp.models import Filter, Period
from cymetica_mcp.store import SQLiteStore
from cymetica_mcp.windows import iso
from tests.conftest import NOW

from .conftest import Served, serving
from .helpers import close_of, eventually, forged_jwt, next_of, receive

pytestmark = pytest.mark.anyio


def wire(engine: Engine, filter: Filter = Filter.ALL, period: Period = Period.H24) -> dict[str, Any]:
    return engine.dashboard(filter, period, NOW).to_wire()


async def test_connected_then_an_immediate_update_with_an_api_key_or_a_jwt(
    served: Served, api_key: str
) -> None:
    async with httpx.AsyncClient(base_url=served.url) as http:
        token = (await http.post("/api/v1/auth/token", headers={"Authorization": f"Bearer {api_key}"})).json()
    for credential in (api_key, token["access_token"]):
        async with connect(f"{served.ws_url}?token={credential}") as ws:
            hello = await receive(ws)
            update = await receive(ws)
        assert hello["type"] == "connected"
        assert (hello["filter"], hello["period"]) == ("all", "24h")
        assert hello["push_interval"] == 1 and hello["heartbeat_interval"] == 0.5
        version = served.store.data_version()
        assert update == {"type": "analytics_update", "data_version": version, "data": wire(served.engine)}


async def test_bad_tokens_are_closed_with_4401_before_any_data(served: Served, api_key: str) -> None:
    expired = forged_jwt(served.store, expired=True)
    wrong_key = forged_jwt(served.store, secret=b"x" * 32)
    unknown_key_id = forged_jwt(served.store, sub="99")
    for query in (
        "",
        "?token=",
        "?token=nonsense",
        "?token=cym_not_a_key",
        f"?token={expired}",
        f"?token={wrong_key}",
        f"?token={unknown_key_id}",
        f"?token={api_key}x",
    ):
        async with connect(served.ws_url + query) as ws:
            code, reason, before = await close_of(ws)
        assert (code, before) == (4401, []), query
        assert reason and len(reason.encode()) <= 123
    KeyRing(served.store).revoke(1)
    async with connect(f"{served.ws_url}?token={api_key}") as ws:
        code, reason, before = await close_of(ws)
    assert (code, before) == (4401, []) and "revoked" in reason


async def test_an_authorization_header_works_as_well_as_the_query(served: Served, api_key: str) -> None:
    async with connect(served.ws_url, additional_headers={"Authorization": f"Bearer {api_key}"}) as ws:
        assert (await receive(ws))["type"] == "connected"


async def test_set_preferences_answers_an_ack_and_the_new_dashboard(served: Served, api_key: str) -> None:
    async with connect(f"{served.ws_url}?token={api_key}") as ws:
        await next_of(ws, "analytics_update")
        await ws.send(json.dumps({"type": "set_preferences", "filter": "humans", "period": "7d"}))
        ack = await next_of(ws, "preferences_ack")
        update = await receive(ws)
        await ws.send(json.dumps({"type": "set_preferences", "period": "30d"}))
        partial = await next_of(ws, "preferences_ack")
        partial_update = await receive(ws)
        pushed = await next_of(ws, "analytics_update", seconds=3)
    assert ack == {"type": "preferences_ack", "filter": "humans", "period": "7d"}
    assert update["type"] == "analytics_update"
    assert update["data"] == wire(served.engine, Filter.HUMANS, Period.D7)
    assert (partial["filter"], partial["period"]) == ("humans", "30d")
    assert partial_update["data"] == wire(served.engine, Filter.HUMANS, Period.D30)
    assert pushed["data"] == partial_update["data"], "pushes follow the new preferences"


async def test_ping_pong_heartbeats_and_periodic_pushes(served: Served, api_key: str) -> None:
    async with connect(f"{served.ws_url}?token={api_key}") as ws:
        await next_of(ws, "analytics_update")
        await ws.send(json.dumps({"type": "ping"}))
        pong = await next_of(ws, "pong")
        beat = await next_of(ws, "heartbeat", seconds=2)
        with anyio.fail_after(4):  # push interval 1 s: two more updates within a few seconds
            first = await next_of(ws, "analytics_update")
            second = await next_of(ws, "analytics_update")
    assert pong["timestamp"].endswith("Z") and beat["timestamp"].endswith("Z")
    assert first["data"] == second["data"] == wire(served.engine)


@pytest.mark.parametrize(
    ("frame", "code", "says"),
    [
        ("not json", "bad_message", "not valid JSON"),
        ("[1, 2]", "bad_message", "must be a JSON object, not array"),
        ("null", "bad_message", "must be a JSON object, not null"),
        ("[" * 2_000 + "]" * 2_000, "bad_message", "nested too deeply"),
        ('{"filter": "all"}', "bad_message", 'no "type"'),
        ('{"type": "subscribe"}', "bad_message", "unknown message type 'subscribe'"),
        ('{"type": "set_preferences", "perod": "7d"}', "bad_message", "unknown field 'perod'"),
        ('{"type": "set_preferences", "filter": "bots"}', "invalid_filter", "all, humans, agents"),
        ('{"type": "set_preferences", "period": 7}', "invalid_period", "24h, 7d, 30d"),
        (b"\x00binary", "bad_message", "binary frames"),
    ],
)
async def test_bad_messages_get_an_error_and_the_connection_stays_open(
    served: Served, api_key: str, frame: str | bytes, code: str, says: str
) -> None:
    async with connect(f"{served.ws_url}?token={api_key}") as ws:
        await next_of(ws, "analytics_update")
        await ws.send(frame)
        error = await next_of(ws, "error")
        await ws.send(json.dumps({"type": "ping"}))
        assert (await next_of(ws, "pong"))["type"] == "pong"
    assert error["error"]["code"] == code
    assert says in error["error"]["message"]
    if code == "bad_message":
        assert "set_preferences" in error["error"]["message"], "the message says what is accepted"


async def test_a_message_over_the_size_limit_closes_with_1009(served: Served, api_key: str) -> None:
    async with connect(f"{served.ws_url}?token={api_key}", max_size=None) as ws:
        await next_of(ws, "analytics_update")
        await ws.send(json.dumps({"type": "ping", "pad": "x" * 5_000}))
        code, _, _ = await close_of(ws)
    assert code == 1009


async def test_reconnecting_starts_a_fresh_session(served: Served, api_key: str) -> None:
    sessions = []
    for _ in range(3):
        async with connect(f"{served.ws_url}?token={api_key}") as ws:
            hello = await receive(ws)
            await ws.send(json.dumps({"type": "set_preferences", "filter": "agents"}))
            await next_of(ws, "preferences_ack")
            sessions.append(hello)
    assert [s["filter"] for s in sessions] == ["all"] * 3, "preferences belong to a session"
    assert len({s["session_id"] for s in sessions}) == 3
    await eventually(lambda: not served.app.hub.clients)  # the server notices every disconnect


class CountingEngine(Engine):
    """An engine that records every dashboard it is asked for: computed, or taken from its cache by a
    door that knows the store has not changed."""

    def __init__(self, store: SQLiteStore) -> None:
        fixed = open_engine(store, now=NOW)
        super().__init__(store, clock=fixed.clock)
        fixed.close()
        self.calls: list[tuple[Filter, Period]] = []

    def result(self, filter: Filter, period: Period, now: int | None = None) -> Result:
        self.calls.append((filter, period))
        return super().result(filter, period, now)

    def cached(self, filter: Filter, period: Period, version: int, now: int | None = None) -> Result | None:
        hit = super().cached(filter, period, version, now)
        if hit is not None:
            self.calls.append((filter, period))
        return hit


async def test_each_tick_computes_each_distinct_preference_once(
    demo_store: SQLiteStore, api_key: str
) -> None:
    engine = CountingEngine(demo_store)
    with serving(demo_store, engine, push_interval=3_600, heartbeat_interval=3_600) as served:
        choices = [("all", "24h"), ("humans", "7d"), ("all", "24h"), ("humans", "7d"), ("agents", "24h")]
        async with (
            connect(f"{served.ws_url}?token={api_key}") as a,
            connect(f"{served.ws_url}?token={api_key}") as b,
            connect(f"{served.ws_url}?token={api_key}") as c,
            connect(f"{served.ws_url}?token={api_key}") as d,
            connect(f"{served.ws_url}?token={api_key}") as e,
        ):
            sockets = [a, b, c, d, e]
            for ws, (f, p) in zip(sockets, choices, strict=True):
                await next_of(ws, "analytics_update")
                await ws.send(json.dumps({"type": "set_preferences", "filter": f, "period": p}))
                await next_of(ws, "preferences_ack")
                await receive(ws)
            engine.calls.clear()
            await served.push()
            ticked = [await next_of(ws, "analytics_update") for ws in sockets]
    assert Counter(engine.calls) == Counter(
        {(Filter.ALL, Period.H24): 1, (Filter.HUMANS, Period.D7): 1, (Filter.AGENTS, Period.H24): 1}
    )
    for update, (f, p) in zip(ticked, choices, strict=True):
        assert update["data"] == wire(engine, Filter(f), Period(p))


async def test_two_clients_with_different_preferences_get_their_own_on_one_tick(
    served: Served, api_key: str
) -> None:
    async with (
        connect(f"{served.ws_url}?token={api_key}") as humans,
        connect(f"{served.ws_url}?token={api_key}") as agents,
    ):
        for ws, f in ((humans, "humans"), (agents, "agents")):
            await next_of(ws, "analytics_update")
            await ws.send(json.dumps({"type": "set_preferences", "filter": f, "period": "7d"}))
            await next_of(ws, "preferences_ack")
            await receive(ws)
        to_humans = await next_of(humans, "analytics_update", seconds=3)
        to_agents = await next_of(agents, "analytics_update", seconds=3)
    assert to_humans["data"] == wire(served.engine, Filter.HUMANS, Period.D7)
    assert to_agents["data"] == wire(served.engine, Filter.AGENTS, Period.D7)
    assert to_humans["data"] != to_agents["data"]


async def test_revoking_the_key_closes_its_sockets_with_4401_on_the_next_tick(
    demo_store: SQLiteStore, api_key: str
) -> None:
    with serving(demo_store, push_interval=3_600) as served:
        async with connect(f"{served.ws_url}?token={api_key}") as ws:
            await next_of(ws, "analytics_update")
            await anyio.to_thread.run_sync(KeyRing(demo_store).revoke, 1)
            await served.push()
            code, reason, _ = await close_of(ws)
    assert code == 4401 and "revoked" in reason


async def test_websockets_per_key_and_messages_per_key_are_limited(
    demo_store: SQLiteStore, api_key: str
) -> None:
    with serving(demo_store, connections_per_key=2, rate_burst=6, rate_per_minute=1) as served:
        async with (
            connect(f"{served.ws_url}?token={api_key}") as first,
            connect(f"{served.ws_url}?token={api_key}") as second,
        ):
            await next_of(first, "analytics_update")
            await next_of(second, "analytics_update")
            async with connect(f"{served.ws_url}?token={api_key}") as third:
                code, reason, before = await close_of(third)
            assert (code, before) == (4429, []) and "at most 2" in reason
            for _ in range(3):  # 3 connection attempts + 3 messages use the burst of 6
                await first.send(json.dumps({"type": "ping"}))
                await next_of(first, "pong")
            await first.send(json.dumps({"type": "ping"}))
            limited = await next_of(first, "error")
            await second.send(json.dumps({"type": "ping"}))
            also_limited = await next_of(second, "error")
    assert limited["error"]["code"] == also_limited["error"]["code"] == "rate_limited"
    assert "retry in" in limited["error"]["message"]


async def test_shutdown_closes_every_socket_with_1001(demo_store: SQLiteStore, api_key: str) -> None:
    with serving(demo_store) as served:
        async with (
            connect(f"{served.ws_url}?token={api_key}") as a,
            connect(f"{served.ws_url}?token={api_key}") as b,
        ):
            await next_of(a, "analytics_update")
            await next_of(b, "analytics_update")
            served.server.should_exit = True
            closes = [await close_of(a), await close_of(b)]
    assert [(code, reason) for code, reason, _ in closes] == [(1001, "server shutting down")] * 2


async def test_a_foreign_origin_is_refused_before_the_upgrade(served: Served, api_key: str) -> None:
    with pytest.raises(InvalidStatus) as refused:
        async with connect(f"{served.ws_url}?token={api_key}", origin="http://evil.example"):  # type: ignore[arg-type]
            pass
    assert refused.value.response.status_code == 403
    async with connect(f"{served.ws_url}?token={api_key}", origin=served.url) as ws:  # type: ignore[arg-type]
        assert (await receive(ws))["type"] == "connected"


def silent_client(served: Served, token: str) -> socket.socket:
    """A WebSocket client that completes the upgrade request and then never reads a byte."""
    host, port = served.url.removeprefix("http://").split(":")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
    sock.connect((host, int(port)))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        f"GET /ws/analytics?token={token} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    return sock


@pytest.mark.parametrize(
    ("limits", "says"),
    [
        ({"queue_messages": 4, "send_timeout": 30}, "messages were waiting unread"),
        ({"queue_messages": 10_000, "send_timeout": 0.5}, "could not be delivered within 0.5 s"),
    ],
)
async def test_a_slow_client_is_closed_and_never_delays_the_others(
    demo_store: SQLiteStore, api_key: str, limits: dict[str, Any], says: str
) -> None:
    options = {"push_interval": 0.05, "heartbeat_interval": 0.05, **limits}
    with serving(demo_store, send_buffer=4_096, **options) as served:
        hub = served.app.hub
        async with connect(f"{served.ws_url}?token={api_key}") as fast:
            await next_of(fast, "analytics_update")
            (fast_client,) = hub.clients.values()
            with closing(silent_client(served, api_key)):
                await eventually(lambda: len(hub.clients) == 2)
                (slow,) = (c for c in hub.clients.values() if c is not fast_client)
                updates = 0
                with anyio.fail_after(15):
                    while slow.id in hub.clients:
                        await next_of(fast, "analytics_update")
                        updates += 1
            await fast.send(json.dumps({"type": "ping"}))
            await next_of(fast, "pong")
            # checked while connected: leaving `serving` closes everyone with 1001
            assert fast_client.closing is None
    assert slow.closing is not None and slow.closing[0] == 1008
    assert "too slow" in slow.closing[1] and says in slow.closing[1]
    assert updates >= 3, "the reading client kept getting its pushes while the other backed up"


async def test_debug_logs_of_a_handshake_hold_no_credential(served: Served, api_key: str) -> None:
    """The websockets library logs request headers at DEBUG through uvicorn.error."""
    seen: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(self.format(record))

    logger, handler = logging.getLogger("uvicorn.error"), Keep(logging.DEBUG)
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        async with connect(served.ws_url, additional_headers={"Authorization": f"Bearer {api_key}"}) as ws:
            await receive(ws)
        async with connect(f"{served.ws_url}?token={api_key}") as ws:
            await receive(ws)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    text = "\n".join(seen)
    assert "Bearer [redacted]" in text  # the header was logged, redacted
    assert api_key not in text and api_key.removeprefix("cym_")[:16] not in text


async def test_a_client_that_writes_ahead_and_reads_its_replies_is_never_dropped(
    served: Served, api_key: str
) -> None:
    """Twelve pings sent back to back (more than the outgoing queue holds), then every reply read."""
    async with connect(f"{served.ws_url}?token={api_key}") as ws:
        await receive(ws), await receive(ws)
        for _ in range(12):  # queued in the protocol, then written in one piece: one TCP segment
            ws.protocol.send_text(b'{"type":"ping"}')
        for _ in range(4):
            ws.protocol.send_text(b'{"type":"set_preferences","period":"7d"}')
        ws.send_data()
        kinds: Counter[str] = Counter()
        with anyio.fail_after(10):
            while kinds["pong"] < 12 or kinds["preferences_ack"] < 4:
                kinds[(await receive(ws))["type"]] += 1
        await ws.send('{"type":"ping"}')
        assert (await next_of(ws, "pong"))["type"] == "pong"  # still open


class HeldEngine(Engine):
    """An engine that, once armed, holds its next computation of one (filter, period), once computed,
    until released: a slow dashboard that an import overtakes."""

    def __init__(self, store: SQLiteStore, held: tuple[Filter, Period]) -> None:
        fixed = open_engine(store, now=NOW)
        super().__init__(store, clock=fixed.clock)
        fixed.close()
        self.held = held
        self.armed = threading.Event()
        self.holding = threading.Event()
        self.release = threading.Event()

    def result(self, filter: Filter, period: Period, now: int | None = None) -> Result:
        result = super().result(filter, period, now)
        if (filter, period) == self.held and self.armed.is_set():
            self.armed.clear()
            self.holding.set()
            self.release.wait(10)
        return result


def _import_a_trade(store: SQLiteStore, folder: Path) -> int:
    """A new human and one trade of theirs a minute before NOW, imported as another process would."""
    users, trades = folder / "race-users.csv", folder / "race-trades.csv"
    users.write_text(f"user_id,kind,capital_usdc,created_at\nrace-h,human,1000,{iso(NOW - 86_400)}\n")
    trades.write_text(f"trade_id,user_id,ts,volume_usdc,pnl_usdc\nrace-1,race-h,{iso(NOW - 60)},250,5\n")
    return import_files(store, users=users, trades=trades).data_version


async def test_an_update_computed_before_an_import_never_follows_one_computed_after_it(
    demo_store: SQLiteStore, api_key: str, tmp_path: Path
) -> None:
    # Found by the soak's reasoning about `set_preferences`: its dashboard is computed on a worker thread
    # while the hub may push the next import's figures to the same client; the answer must not then bring
    # the older data version after the newer one.
    engine = HeldEngine(demo_store, (Filter.HUMANS, Period.D7))
    with serving(
        demo_store, engine, push_interval=3_600, heartbeat_interval=3_600, change_check_interval=0.05
    ) as served:
        async with connect(f"{served.ws_url}?token={api_key}") as ws:
            first = await next_of(ws, "analytics_update")
            await anyio.sleep(1.1)  # past the one-update-a-second bound, so the import is pushed at once
            engine.armed.set()
            await ws.send(json.dumps({"type": "set_preferences", "filter": "humans", "period": "7d"}))
            await eventually(engine.holding.is_set)
            version = await anyio.to_thread.run_sync(_import_a_trade, demo_store, tmp_path)
            pushed = await next_of(ws, "analytics_update")  # the import, for all/24h it still follows
            engine.release.set()
            ack = await next_of(ws, "preferences_ack")
            answer = await next_of(ws, "analytics_update")
    assert first["data_version"] < version == pushed["data_version"]
    assert pushed["data"]["metrics"]["filter"] == "all" and ack["filter"] == "humans"
    assert answer["data_version"] == version, "the answer went back to the data version before the import"
    assert answer["data"] == served.engine.dashboard(Filter.HUMANS, Period.D7, NOW).to_wire()


async def test_a_push_computed_before_an_import_is_not_sent_after_the_import_was(
    demo_store: SQLiteStore, api_key: str, tmp_path: Path
) -> None:
    engine = HeldEngine(demo_store, (Filter.ALL, Period.H24))
    with serving(
        demo_store, engine, push_interval=3_600, heartbeat_interval=3_600, change_check_interval=0.05
    ) as served:
        async with connect(f"{served.ws_url}?token={api_key}") as ws:
            first = await next_of(ws, "analytics_update")
            await anyio.sleep(1.1)  # past the update bound, and past the cache's second: a push computes
            engine.armed.set()
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(served.push)  # its dashboard is held once computed, before the import
                await eventually(engine.holding.is_set)
                version = await anyio.to_thread.run_sync(_import_a_trade, demo_store, tmp_path)
                pushed = await next_of(ws, "analytics_update")
                engine.release.set()
            await ws.send(json.dumps({"type": "ping"}))
            after = await receive(ws)  # the tick is over: anything it sent came before this pong
    assert first["data_version"] < version == pushed["data_version"]
    assert after["type"] == "pong", (
        f"after the import's update came {after['type']} {after.get('data_version')}"
    )
