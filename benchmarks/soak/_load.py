"""The soak's clients, all on one asyncio loop: REST pollers, WebSocket followers, MCP sessions over
Streamable HTTP, and one importer sending simulated users and trades to the ingest endpoint.

Every client paces itself with random waits drawn from its own seeded generator, stops when the load
phase ends (`Context.stop`), and reports what it received to the `Recorder`. A 429 (or its WebSocket
forms: close 4429, an `error` with `rate_limited`) is counted as a documented refusal and honoured
(the client waits `Retry-After`); anything else unexpected is an error of its kind.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from dataclasses import dataclass, field
from typing import Any, Final

import httpx
import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from benchmarks.soak._record import Recorder, Sequence
from cymetica_mcp.ingest import Simulator
from cymetica_mcp.mcp_server import TOOL_NAME

Pair = tuple[str, str]
PAIRS: Final[tuple[Pair, ...]] = tuple(
    (f, p) for f in ("all", "humans", "agents") for p in ("24h", "7d", "30d")
)
DASHBOARD: Final = "/api/v1/analytics/dashboard"
TOKEN: Final = "/api/v1/auth/token"
REQUEST_TIMEOUT: Final = 30.0
"""Longest wait for one answer: the machine is shared, but an answer slower than this is an error."""
POLL_EVERY: Final = (1.0, 3.0)
"""Seconds between two polls of one REST client (uniform): 50 clients make about 25 requests a second."""
POLLS_PER_PAIR: Final = (3, 12)
"""Polls a REST client makes of one (filter, period), revalidating with its ETag, before switching."""
SWITCH_EVERY: Final = (8.0, 40.0)
"""Seconds between two messages (a `set_preferences`, or one time in five a `ping`) of one WebSocket."""
WS_LIFETIME: Final = (60.0, 900.0)
"""Seconds a WebSocket connection lives before its client closes it and connects again (a reload)."""
CALL_EVERY: Final = (0.5, 2.5)
"""Seconds between two tool calls of one MCP session."""
CALLS_PER_SESSION: Final = (5, 25)
"""Tool calls an MCP session makes before its client closes it and opens another."""
TOKEN_REFRESH: Final = 1_800.0
"""A JWT (valid one hour) is asked for again after this many seconds."""
IMPORT_STEP: Final = 20
"""Seconds of simulated trading time between two imports (their trades stay before the fixed now)."""
IMPORT_START: Final = 6 * 3_600
"""Simulated trading starts this many seconds before the fixed now (inside every dashboard's window)."""
RETRY_EVERY: Final = 10
"""Every tenth import re-sends the previous trades batch, as a client that timed out would."""
INGEST_ATTEMPTS: Final = 5
UPDATE_PREFIX: Final = '{"type":"analytics_update"'


@dataclass(frozen=True)
class Imported:
    """One answered ingest request: what was sent, in order, and the data version it answered."""

    what: str
    body: str
    version: int
    changed: bool


@dataclass
class Connection:
    """One WebSocket connection's state, as its reader sees it."""

    sequence: Sequence = field(default_factory=Sequence)
    following: Pair | None = None
    pending: list[Pair] = field(default_factory=list)
    """Pairs asked for with `set_preferences` whose `preferences_ack` has not arrived yet."""
    reached: asyncio.Event = field(default_factory=asyncio.Event)
    """Set once an update of the final data version arrived."""


@dataclass
class Context:
    """What every client shares."""

    url: str
    recorder: Recorder
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    final_known: asyncio.Event = field(default_factory=asyncio.Event)
    version: int = 0
    """The data version of the latest answered import (at first, the store's)."""
    final: int | None = None
    final_deadline: float = 0.0
    ws_last: dict[int, Connection] = field(default_factory=dict)
    """Each WebSocket client's latest connection."""
    sequences: list[Sequence] = field(default_factory=list)
    imports: list[Imported] = field(default_factory=list)
    _tokens: dict[str, tuple[float, str]] = field(default_factory=dict)

    @property
    def ws_url(self) -> str:
        return "ws" + self.url.removeprefix("http") + "/ws/analytics"

    async def pause(self, seconds: float) -> bool:
        """Wait `seconds`; False (at once) when the load phase ends meanwhile."""
        if self.stop.is_set():
            return False
        try:
            await asyncio.wait_for(self.stop.wait(), max(0.0, seconds))
        except TimeoutError:
            return True
        return False

    def finish(self, version: int, wait: float) -> None:
        """The load is over at data `version`: WebSocket clients wait (up to `wait` s) to be shown it."""
        self.final, self.final_deadline = version, time.monotonic() + wait
        for connection in self.ws_last.values():
            if connection.sequence.last is not None and connection.sequence.last >= version:
                connection.reached.set()
        self.final_known.set()

    async def token(self, http: httpx.AsyncClient, key: str) -> str:
        """A JWT for `key` from the token endpoint, asked for again once it is half-way to expiry."""
        known = self._tokens.get(key)
        if known is not None and time.monotonic() - known[0] < TOKEN_REFRESH:
            return known[1]
        answer = await http.post(TOKEN, headers={"Authorization": f"Bearer {key}"})
        self.recorder.requests[f"token {answer.status_code}"] += 1
        answer.raise_for_status()
        token = str(answer.json()["access_token"])
        self._tokens[key] = (time.monotonic(), token)
        return token


def retry_after(headers: httpx.Headers) -> float:
    """The whole seconds of a `Retry-After` header (1 when absent)."""
    return float(headers.get("retry-after", "1"))


# REST -------------------------------------------------------------------------------------------


async def rest_poller(ctx: Context, number: int, key: str, use_jwt: bool) -> None:
    """Poll dashboards: one (filter, period) for a few polls, revalidating with its ETag, then another."""
    rng = random.Random(f"rest-{number}")
    known: dict[Pair, tuple[str, Any]] = {}
    async with httpx.AsyncClient(base_url=ctx.url, timeout=REQUEST_TIMEOUT) as http:
        try:
            credential = await ctx.token(http, key) if use_jwt else key
        except httpx.HTTPError as exc:
            ctx.recorder.error("rest token", repr(exc))
            return
        pair, left = rng.choice(PAIRS), rng.randint(*POLLS_PER_PAIR)
        while await ctx.pause(rng.uniform(*POLL_EVERY)):
            if left == 0:
                pair, left = rng.choice(PAIRS), rng.randint(*POLLS_PER_PAIR)
            left -= 1
            if use_jwt:
                credential = await ctx.token(http, key)
            await rest_get(ctx, http, credential, pair, known)


async def rest_get(
    ctx: Context, http: httpx.AsyncClient, credential: str, pair: Pair, known: dict[Pair, tuple[str, Any]]
) -> int | None:
    """One GET of the dashboard for `pair` (with If-None-Match when it was fetched before), recorded;
    the data version it answered, or None."""
    headers = {"Authorization": f"Bearer {credential}"}
    if pair in known:
        headers["If-None-Match"] = known[pair][0]
    try:
        answer = await http.get(DASHBOARD, params={"filter": pair[0], "period": pair[1]}, headers=headers)
    except httpx.HTTPError as exc:
        ctx.recorder.error(f"rest {type(exc).__name__}", repr(exc))
        return None
    ctx.recorder.requests[f"rest {answer.status_code}"] += 1
    if answer.status_code == 429:
        ctx.recorder.limited["rest"] += 1
        await ctx.pause(retry_after(answer.headers))
        return None
    if answer.status_code not in (200, 304):
        ctx.recorder.error(f"rest {answer.status_code}", answer.text)
        return None
    version = int(answer.headers["x-data-version"])
    if answer.status_code == 304:
        if pair not in known:
            ctx.recorder.error("rest 304 to a request without If-None-Match")
            return None
        ctx.recorder.dashboard("rest 304", *pair, version, known[pair][1])
        return version
    data = answer.json()
    shown = (data["metrics"]["filter"], data["metrics"]["period"])
    if shown != pair:
        ctx.recorder.error("rest dashboard of another pair", f"asked {pair}, got {shown}")
        return None
    known[pair] = (answer.headers["etag"], data)
    ctx.recorder.dashboard("rest", *pair, version, data)
    return version


# WebSocket --------------------------------------------------------------------------------------


async def ws_client(ctx: Context, number: int, key: str, use_jwt: bool, http: httpx.AsyncClient) -> None:
    """Follow the stream, switching preferences now and then, reconnecting after each connection's
    lifetime (or after the server closed it); once the load is over, stay until shown the final version."""
    rng = random.Random(f"ws-{number}")
    while True:
        try:
            credential = await ctx.token(http, key) if use_jwt else key
        except httpx.HTTPError as exc:
            ctx.recorder.error("ws token", repr(exc))
            return
        done = await ws_connection(ctx, number, rng, credential, header=number % 4 == 3)
        if done or time.monotonic() > ctx.final_deadline > 0:
            return
        if ctx.stop.is_set():
            await asyncio.sleep(0.5)  # reconnecting after a refusal, once the load is over


async def ws_connection(ctx: Context, number: int, rng: random.Random, credential: str, header: bool) -> bool:
    """One connection, from the handshake to its close; True once it ended on the final version."""
    url = ctx.ws_url if header else f"{ctx.ws_url}?token={credential}"
    headers = {"Authorization": f"Bearer {credential}"} if header else None
    try:
        ws = await connect(
            url,
            additional_headers=headers,
            open_timeout=REQUEST_TIMEOUT,
            close_timeout=REQUEST_TIMEOUT,
            ping_interval=None,
            max_size=2**22,
        )
    except (OSError, InvalidHandshake, TimeoutError) as exc:
        ctx.recorder.error(f"ws connect {type(exc).__name__}", repr(exc))
        await ctx.pause(1.0)
        return False
    ctx.recorder.requests["ws connect"] += 1
    connection = Connection()
    ctx.ws_last[number] = connection
    ctx.sequences.append(connection.sequence)
    reader = asyncio.create_task(ws_read(ctx, ws, connection))
    talker = asyncio.create_task(ws_talk(ctx, ws, connection, rng))
    try:
        await asyncio.wait({reader, talker}, return_when=asyncio.FIRST_COMPLETED)
        if reader.done():  # the server closed it (or it broke): say how, then connect again
            talker.cancel()
            ws_closed(ctx, ws)
            return False
        if not ctx.stop.is_set():  # its lifetime is over: a reload
            await ws.close()
            await reader
            return False
        await ctx.final_known.wait()
        reached = asyncio.create_task(connection.reached.wait())
        left = ctx.final_deadline - time.monotonic()
        await asyncio.wait({reader, reached}, timeout=max(0.0, left), return_when=asyncio.FIRST_COMPLETED)
        reached.cancel()
        if reader.done():
            ws_closed(ctx, ws)
            return False
        await ws.close()
        await reader
        return True
    finally:
        for task in (reader, talker):
            task.cancel()


def ws_closed(ctx: Context, ws: ClientConnection) -> None:
    """Record why the server closed a connection: 4429 is a documented refusal, the rest errors."""
    code, reason = ws.close_code, ws.close_reason or ""
    if code == 4429:
        ctx.recorder.limited["ws"] += 1
    else:
        ctx.recorder.error(f"ws closed by the server with {code}", reason)


async def ws_talk(ctx: Context, ws: ClientConnection, connection: Connection, rng: random.Random) -> None:
    """Switch preferences (or ping) now and then until the connection's lifetime or the load ends."""
    ends = time.monotonic() + rng.uniform(*WS_LIFETIME)
    while True:
        wait = rng.uniform(*SWITCH_EVERY)
        if time.monotonic() + wait > ends:
            await ctx.pause(ends - time.monotonic())
            return
        if not await ctx.pause(wait):
            return
        if rng.random() < 0.2:
            await ws.send('{"type":"ping"}')
            ctx.recorder.requests["ws ping"] += 1
            continue
        filter, period = rng.choice(PAIRS)
        message: dict[str, str] = {"type": "set_preferences"}
        chosen = connection.pending[-1] if connection.pending else connection.following or PAIRS[0]
        shape = rng.random()
        if shape < 0.6:
            message |= {"filter": filter, "period": period}
        elif shape < 0.8:
            message["filter"], period = filter, chosen[1]
        else:
            message["period"], filter = period, chosen[0]
        connection.pending.append((filter, period))
        await ws.send(json.dumps(message))
        ctx.recorder.requests["ws set_preferences"] += 1


async def ws_read(ctx: Context, ws: ClientConnection, connection: Connection) -> None:
    """Read every message until the connection closes, recording updates and checking their order."""
    recorder = ctx.recorder
    try:
        async for raw in ws:
            if not isinstance(raw, str):
                recorder.error("ws binary frame")
                continue
            if raw.startswith(UPDATE_PREFIX):
                (filter, period, version), _ = recorder.update_text("ws", raw)
                connection.sequence.see(version)
                allowed = [connection.following, *connection.pending]
                if (filter, period) not in allowed:
                    recorder.error(
                        "ws update of a pair not followed", f"{filter}/{period}, following {allowed}"
                    )
                if ctx.final is not None and version >= ctx.final:
                    connection.reached.set()
                continue
            message = json.loads(raw)
            kind = message.get("type")
            recorder.requests[f"ws {kind}"] += 1
            if kind == "connected":
                connection.following = (message["filter"], message["period"])
            elif kind == "preferences_ack":
                acknowledged = (message["filter"], message["period"])
                expected = connection.pending.pop(0) if connection.pending else None
                if acknowledged != expected:
                    recorder.error(
                        "ws preferences_ack of another pair", f"{acknowledged}, expected {expected}"
                    )
                connection.following = acknowledged
            elif kind == "error":
                if message["error"]["code"] == "rate_limited":
                    recorder.limited["ws"] += 1
                else:
                    recorder.error(f"ws error {message['error']['code']}", message["error"]["message"])
            elif kind not in ("pong", "heartbeat"):
                recorder.error("ws unknown message", raw[:200])
    except ConnectionClosed:
        pass


# MCP over Streamable HTTP -----------------------------------------------------------------------


async def mcp_worker(ctx: Context, number: int, key: str) -> None:
    """Open an SDK client session, call `et_analytics_dashboard` a few times, close it; again."""
    rng = random.Random(f"mcp-{number}")
    while not ctx.stop.is_set():
        try:
            await mcp_session(ctx, rng, key, rng.randint(*CALLS_PER_SESSION))
        except Exception as exc:  # the SDK raises groups and transport errors of several kinds
            ctx.recorder.error(f"mcp {type(exc).__name__}", repr(exc))
            await ctx.pause(1.0)


async def mcp_session(ctx: Context, rng: random.Random, key: str, calls: int, pace: bool = True) -> None:
    """One SDK client session over Streamable HTTP making `calls` tool calls (fewer once the load ends)."""
    recorder = ctx.recorder
    async with (
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=REQUEST_TIMEOUT) as http,
        Client(streamable_http_client(f"{ctx.url}/mcp", http_client=http)) as mcp,
    ):
        recorder.requests["mcp session"] += 1
        for _ in range(calls):
            if pace and not await ctx.pause(rng.uniform(*CALL_EVERY)):
                break
            filter, period = rng.choice(PAIRS)
            result = await mcp.call_tool(TOOL_NAME, {"filter": filter, "period": period})
            recorder.requests["mcp call"] += 1
            envelope = result.structured_content or {}
            if result.is_error:
                code = envelope.get("error", {}).get("code")
                if code == "rate_limited":
                    recorder.limited["mcp"] += 1
                else:
                    recorder.error(f"mcp error {code}", json.dumps(envelope)[:300])
                continue
            data = envelope["data"]
            shown = (data["metrics"]["filter"], data["metrics"]["period"])
            if shown != (filter, period):
                recorder.error("mcp dashboard of another pair", f"asked {filter}/{period}, got {shown}")
                continue
            recorder.dashboard("mcp", filter, period, int(envelope["meta"]["data_version"]), data)


# Ingest -----------------------------------------------------------------------------------------


async def importer(ctx: Context, key: str, every: float, rate: float, now: int, seed: int) -> None:
    """Every `every` seconds, a simulated batch (new users first, then trades) to the ingest endpoint;
    every tenth time, the previous trades again (a retry that must change nothing)."""
    simulator = Simulator(seed, now, rate)
    previous: str | None = None
    count = 0
    async with httpx.AsyncClient(
        base_url=ctx.url, headers={"Authorization": f"Bearer {key}"}, timeout=REQUEST_TIMEOUT
    ) as http:
        while await ctx.pause(every):
            count += 1
            if count % RETRY_EVERY == 0 and previous is not None:
                await ingest(ctx, http, "trades", previous, retry=True)
                continue
            batch = simulator.batch(min(now, now - IMPORT_START + count * IMPORT_STEP))
            if batch.users:
                await ingest(ctx, http, "users", batch.users)
            if batch.trades:
                await ingest(ctx, http, "trades", batch.trades)
                previous = batch.trades


async def ingest(
    ctx: Context,
    http: httpx.AsyncClient,
    what: str,
    body: str,
    retry: bool = False,
    headers: dict[str, str] | None = None,
) -> None:
    """POST one batch (again after a 429 or 503, as its Retry-After says), check the data version it
    answers against the one before, and keep it for the replay."""
    recorder = ctx.recorder
    for _ in range(INGEST_ATTEMPTS):
        try:
            answer = await http.post(
                f"/api/v1/ingest/{what}",
                content=body.encode(),
                headers={"Content-Type": "application/x-ndjson", **(headers or {})},
            )
        except httpx.HTTPError as exc:
            recorder.error(f"ingest {type(exc).__name__}", repr(exc))
            continue
        recorder.requests[f"ingest {what} {answer.status_code}"] += 1
        if answer.status_code in (429, 503):
            recorder.limited["ingest"] += 1
            await asyncio.sleep(retry_after(answer.headers))
            continue
        if answer.status_code != 200:
            recorder.error(f"ingest {answer.status_code}", answer.text)
            return
        report = answer.json()
        changed = bool(report["trades_inserted"] or report["users_inserted"] or report["users_updated"])
        version = int(report["data_version"])
        if version != ctx.version + changed:
            recorder.error(
                "ingest data version out of step", f"{ctx.version} then {version} (changed: {changed})"
            )
        ctx.version = version
        if retry and changed:
            recorder.error("ingest retry changed the store", json.dumps(report))
        ctx.imports.append(Imported(what, body, version, changed))
        return
    recorder.error("ingest gave up", f"{what} after {INGEST_ATTEMPTS} attempts")
