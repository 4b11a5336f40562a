"""One soak, start to end: the store and the server, the load, the end phase, the checks, the summary."""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import re
import signal
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final

import httpx
from websockets.asyncio.client import connect

from benchmarks.soak._load import (
    IMPORT_START,
    PAIRS,
    REQUEST_TIMEOUT,
    UPDATE_PREFIX,
    Context,
    importer,
    ingest,
    mcp_session,
    mcp_worker,
    rest_get,
    rest_poller,
    ws_client,
)
from benchmarks.soak._record import Recorder
from benchmarks.soak._setup import Keys, Server, Usage, descriptors, prepare, usage
from benchmarks.soak._verify import verify
from cymetica_mcp.ingest import DemoSpec, Simulator
from cymetica_mcp.windows import iso, parse_instant

NOW: Final = parse_instant("2026-03-20T12:34:56Z")
"""The server's fixed clock (CYMETICA_NOW), so that every figure can be recomputed afterwards."""
REST_PER_KEY: Final = 5
WS_PER_KEY: Final = 10
"""WebSockets per key: under the server's 16, leaving room for a reconnect overlapping its close."""
MCP_PER_KEY: Final = 4
SAMPLE_EVERY: Final = 1.0
TIMELINE_EVERY: Final = 10.0
SETTLE_TIMEOUT: Final = 30.0
"""Longest wait, once every client has gone, for the server's descriptors to come back to their start."""
END_GRACE: Final = 15.0
"""Seconds beyond two push intervals that WebSocket clients wait to be shown the final version."""
SHUTDOWN: Final = "Application shutdown complete"
STORE_FD_SLACK: Final = 8
"""Descriptors of the store's files the server may hold beyond its start once every client has gone.
SQLite does not close the descriptor of a closed connection while another connection of the process
holds a lock on the file (in WAL mode an open connection always does): it keeps it and reuses it for
the next connection it opens, so these number at most the connections once open together, not the
connections ever opened. Sockets, pipes and every other descriptor must be back to their start exactly."""
LOG_PROBLEM: Final = re.compile(r"\b(ERROR|CRITICAL)\b|Traceback")


RSS_BOUND_MB: Final = 48.0
"""Growth allowed in a run of up to two minutes: ~260 open connections and ~40 worker threads take
about 20-32 MB (measured), the rest is margin."""
RSS_CREEP_MB_PER_MINUTE: Final = 1.0
"""Growth allowed per further minute: the 30-minute run crept about 1 MB a minute after its ramp-up, with
the store more than doubling (no door alone grows so: see docs/benchmarks.md, "Soak")."""


def rss_bound(seconds: float) -> float:
    """The RSS growth (MB) a soak of `seconds` may show."""
    return RSS_BOUND_MB + RSS_CREEP_MB_PER_MINUTE * max(0.0, seconds / 60 - 2)


@dataclass(frozen=True)
class SoakConfig:
    """How much load, for how long. The defaults are the CI run's (bar `seconds`, which `make soak` sets)."""

    seconds: float = 120.0
    rest_clients: int = 50
    ws_clients: int = 200
    mcp_sessions: int = 6
    import_every: float = 3.0
    trades_per_import: float = 40.0
    push_interval: float = 5.0
    rss_growth_mb: float | None = None
    """Largest allowed growth of the server's resident memory from the start of the load to its end;
    None: `rss_bound(seconds)`."""
    seed: int = 1
    demo: DemoSpec = field(default_factory=DemoSpec)


@dataclass
class Watch:
    """The server's resident memory, descriptors and threads, sampled through the run."""

    ready: Usage
    start: Usage | None = None
    ramped: Usage | None = None
    """A quarter into the load: every client connected, every cache warm (growth after it is creep)."""
    end: Usage | None = None
    peak_rss_mb: float = 0.0
    peak_fds: int = 0
    peak_threads: int = 0
    timeline: list[dict[str, float]] = field(default_factory=list)

    def take(self, sample: Usage) -> None:
        self.peak_rss_mb = max(self.peak_rss_mb, sample.rss_mb)
        self.peak_fds = max(self.peak_fds, sample.fds)
        self.peak_threads = max(self.peak_threads, sample.threads)


async def sample(pid: int, watch: Watch, began: float, ramped_at: float, stop: asyncio.Event) -> None:
    """Look at the server every second until `stop`; keep one point every ten seconds."""
    next_point = 0.0
    while not stop.is_set():
        now = usage(pid)
        watch.take(now)
        if watch.ramped is None and time.monotonic() >= ramped_at:
            watch.ramped = now
        elapsed = time.monotonic() - began
        if elapsed >= next_point:
            watch.timeline.append({"t": round(elapsed, 1), "rss_mb": round(now.rss_mb, 1), "fds": now.fds})
            next_point += TIMELINE_EVERY
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), SAMPLE_EVERY)


async def warm_up(ctx: Context, keys: Keys, seed: int) -> None:
    """Each door once, before `start` is measured, so that what the server opens on first use (a kept
    SQLite connection per part, worker threads) is there at the start: REST of each pair, one import
    (kept for the replay like every other), one WebSocket to its first update, one MCP session."""
    async with httpx.AsyncClient(base_url=ctx.url, timeout=REQUEST_TIMEOUT) as http:
        for pair in PAIRS:
            await rest_get(ctx, http, keys.rest[0], pair, {})
        batch = Simulator(seed + 1, NOW, 5).batch(NOW - 2 * IMPORT_START)
        headers = {"Authorization": f"Bearer {keys.ingest}"}
        await ingest(ctx, http, "users", batch.users, headers=headers)
        await ingest(ctx, http, "trades", batch.trades, headers=headers)
    async with connect(f"{ctx.ws_url}?token={keys.ws[0]}", open_timeout=REQUEST_TIMEOUT) as ws:
        while not str(await ws.recv()).startswith(UPDATE_PREFIX):
            pass
    await mcp_session(ctx, random.Random(seed), keys.mcp[0], calls=1, pace=False)


def split(fds: Counter[str], store: Path) -> tuple[int, int]:
    """(descriptors of the store's files, all others) among `fds`."""
    mine = sum(n for target, n in fds.items() if target.startswith(str(store)))
    return mine, fds.total() - mine


async def settle(pid: int, start: Counter[str], store: Path) -> Usage:
    """The server's usage once its descriptors are back to `start` (or after SETTLE_TIMEOUT)."""
    first = split(start, store)
    deadline = time.monotonic() + SETTLE_TIMEOUT
    while True:
        now = split(descriptors(pid), store)
        if (now[0] <= first[0] + STORE_FD_SLACK and now[1] <= first[1]) or time.monotonic() > deadline:
            return usage(pid)
        await asyncio.sleep(0.2)


async def soak(config: SoakConfig, folder: Path) -> dict[str, Any]:
    """Run one soak in `folder` (which keeps the store, the replay and the server's log)."""
    began = time.monotonic()
    keys_needed = (
        math.ceil(config.rest_clients / REST_PER_KEY),
        math.ceil(config.ws_clients / WS_PER_KEY),
        math.ceil(config.mcp_sessions / MCP_PER_KEY),
    )
    prepared = await asyncio.to_thread(prepare, folder, NOW, config.demo, *keys_needed)
    server = await asyncio.to_thread(
        Server.start, prepared.served, NOW, config.push_interval, folder / "server.log"
    )
    recorder = Recorder()
    ctx = Context(server.url, recorder, version=server.version)
    watch = Watch(usage(server.pid))
    sampling = asyncio.Event()
    checks: list[dict[str, Any]] = []
    fds_before: Counter[str] = Counter()
    fds_after: Counter[str] = Counter()
    try:
        await warm_up(ctx, prepared.keys, config.seed)
        watch.start = usage(server.pid)
        fds_before = descriptors(server.pid)
        sampler = asyncio.create_task(
            sample(server.pid, watch, began, time.monotonic() + config.seconds / 4, sampling)
        )
        keys = prepared.keys
        load_began = time.monotonic()
        async with httpx.AsyncClient(base_url=ctx.url, timeout=REQUEST_TIMEOUT) as tokens:
            ramp = min(10.0, config.seconds / 10)
            ws = [
                asyncio.create_task(
                    _later(
                        i * ramp / max(1, config.ws_clients),
                        ws_client(ctx, i, keys.ws[i // WS_PER_KEY], i % 2 == 1, tokens),
                    )
                )
                for i in range(config.ws_clients)
            ]
            others = [
                asyncio.create_task(
                    importer(
                        ctx, keys.ingest, config.import_every, config.trades_per_import, NOW, config.seed
                    )
                ),
                *(
                    asyncio.create_task(rest_poller(ctx, i, keys.rest[i // REST_PER_KEY], i % 2 == 1))
                    for i in range(config.rest_clients)
                ),
                *(
                    asyncio.create_task(mcp_worker(ctx, i, keys.mcp[i // MCP_PER_KEY]))
                    for i in range(config.mcp_sessions)
                ),
            ]
            await asyncio.sleep(config.seconds)
            ctx.stop.set()
            load_ended = time.monotonic()
            load_seconds = load_ended - load_began
            await asyncio.gather(*others)
            final = ctx.version
            ctx.finish(final, 2 * config.push_interval + END_GRACE)
            async with httpx.AsyncClient(base_url=ctx.url, timeout=REQUEST_TIMEOUT) as http:
                rest_final = [await rest_get(ctx, http, keys.rest[0], pair, {}) for pair in PAIRS]
            await asyncio.gather(*ws)
        watch.end = await settle(server.pid, fds_before, prepared.served)
        fds_after = descriptors(server.pid)
        sampling.set()
        await sampler
    finally:
        sampling.set()
        exit_code = await asyncio.to_thread(server.stop)
    log_problems = Counter(
        found.group(0).strip()
        for line in server.log.read_text(errors="replace").splitlines()
        if (found := LOG_PROBLEM.search(line))
    )
    verify_began = time.monotonic()
    verification = await asyncio.to_thread(verify, prepared.base, ctx.imports, NOW, recorder, folder)
    verify_seconds = time.monotonic() - verify_began

    def check(name: str, ok: bool, detail: str) -> None:
        checks.append({"name": name, "ok": ok, "detail": detail})

    assert watch.start is not None and watch.end is not None
    on_final = sum(1 for c in ctx.ws_last.values() if c.sequence.last == final)
    backwards = [step for s in ctx.sequences for step in s.backwards]
    growth = watch.end.rss_mb - watch.start.rss_mb
    bound = config.rss_growth_mb if config.rss_growth_mb is not None else rss_bound(config.seconds)
    ramped = watch.ramped or watch.start
    creep = watch.end.rss_mb - ramped.rss_mb
    check(
        "no errors",
        not recorder.errors,
        ", ".join(f"{k}: {n}" for k, n in recorder.errors.most_common()) or "none",
    )
    check(
        "every dashboard equals the engine's at its data version",
        verification.problem_count == 0 and verification.dashboards_checked > 0,
        f"{verification.dashboards_checked} distinct (filter, period, version) at {verification.versions_checked} versions, "
        f"covering {verification.deliveries_checked} deliveries; {verification.problem_count} problems",
    )
    check(
        "no WebSocket's data versions go backwards",
        not backwards,
        f"{len(ctx.sequences)} connections, {sum(s.updates for s in ctx.sequences)} updates, {len(backwards)} steps back"
        + (f" (first: {backwards[:3]})" if backwards else ""),
    )
    check(
        "every WebSocket client ends on the final version",
        on_final == config.ws_clients,
        f"{on_final} of {config.ws_clients} on version {final}",
    )
    check(
        "REST answers the final version at the end",
        rest_final == [final] * len(PAIRS),
        f"{rest_final} (final {final})",
    )
    check(
        "imports went through",
        len(ctx.imports) > 0 and final > server.version,
        f"{len(ctx.imports)} answered, versions {server.version} -> {final}",
    )
    check(
        f"server RSS growth under {bound:g} MB",
        growth < bound,
        f"start {watch.start.rss_mb:.1f} MB, a quarter in {ramped.rss_mb:.1f} MB, peak {watch.peak_rss_mb:.1f} MB, "
        f"end {watch.end.rss_mb:.1f} MB: {growth:+.1f} MB ({creep:+.1f} MB after the first quarter)",
    )
    store_start, others_start = split(fds_before, prepared.served)
    store_end, others_end = split(fds_after, prepared.served)
    check(
        "server descriptors back to their start",
        others_end <= others_start and store_end <= store_start + STORE_FD_SLACK,
        f"start {watch.start.fds}, peak {watch.peak_fds}, end {watch.end.fds}: sockets, pipes and other files "
        f"{others_start} -> {others_end}; the store's files {store_start} -> {store_end} "
        f"(kept by SQLite for reuse, at most +{STORE_FD_SLACK})"
        + (f"; more at the end: {dict(fds_after - fds_before)}" if fds_after - fds_before else ""),
    )
    check("server log has no ERROR, CRITICAL or traceback", not log_problems, dict(log_problems).__repr__())
    # uvicorn re-raises the signal once it has shut down gracefully, so -SIGTERM is a clean exit too.
    clean = exit_code in (0, -signal.SIGTERM) and SHUTDOWN in server.log.read_text(errors="replace")
    check("server shut down gracefully on SIGTERM", clean, f"exit status {exit_code}")

    imports_by_kind = Counter(item.what for item in ctx.imports)
    return {
        "config": {**asdict(config), "demo": asdict(config.demo), "now": iso(NOW)},
        "passed": all(c["ok"] for c in checks),
        "checks": checks,
        "load_seconds": round(load_seconds, 1),
        "wall_seconds": round(time.monotonic() - began, 1),
        "phase_seconds": {
            "setup": round(load_began - began, 1),
            "load": round(load_seconds, 1),
            "end": round(verify_began - load_ended, 1),
            "recheck": round(verify_seconds, 1),
        },
        "requests": _by_door(recorder.requests),
        "per_second": {
            door: round(n / load_seconds, 1)
            for door, n in {
                "rest": sum(n for k, n in recorder.requests.items() if k.startswith("rest ")),
                "ws_updates": recorder.received["ws"],
                "ws_sent": recorder.requests["ws set_preferences"] + recorder.requests["ws ping"],
                "mcp_calls": recorder.requests["mcp call"],
                "ingest_posts": sum(imports_by_kind.values()),
            }.items()
        },
        "dashboards_received": dict(recorder.received),
        "rate_limited_429": dict(recorder.limited),
        "errors": dict(recorder.errors),
        "error_examples": recorder.examples,
        "versions": {
            "start": server.version,
            "final": final,
            "imports": dict(imports_by_kind),
            "seen": len(recorder.versions()),
            "ws_connections": len(ctx.sequences),
            "ws_steps_back": len(backwards),
            "ws_clients_on_final": on_final,
        },
        "verification": asdict(verification),
        "server": {
            "rss_mb": {
                "ready": round(watch.ready.rss_mb, 1),
                "start": round(watch.start.rss_mb, 1),
                "quarter_in": round(ramped.rss_mb, 1),
                "peak": round(watch.peak_rss_mb, 1),
                "end": round(watch.end.rss_mb, 1),
                "growth": round(growth, 1),
                "growth_after_first_quarter": round(creep, 1),
                "bound": bound,
            },
            "fds": {
                "ready": watch.ready.fds,
                "start": watch.start.fds,
                "peak": watch.peak_fds,
                "end": watch.end.fds,
            },
            "threads": {"start": watch.start.threads, "peak": watch.peak_threads, "end": watch.end.threads},
            "exit_code": exit_code,
            "log_problems": dict(log_problems),
            "timeline": watch.timeline,
        },
    }


async def _later(delay: float, work: Any) -> None:
    """Run the coroutine `work` after `delay` seconds (a ramp: clients arrive over a few seconds)."""
    await asyncio.sleep(delay)
    await work


def _by_door(counts: Counter[str]) -> dict[str, dict[str, int]]:
    """`{"rest 200": 5, "ws ping": 2}` as `{"rest": {"200": 5}, "ws": {"ping": 2}}`."""
    doors: dict[str, dict[str, int]] = {}
    for name, n in sorted(counts.items()):
        door, _, what = name.partition(" ")
        doors.setdefault(door, {})[what] = n
    return doors
