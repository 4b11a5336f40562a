"""The door targets: REST, MCP stdio and WebSocket fan-out, each against a bare reference on loopback.

Each target runs only when its door module is in the package; otherwise its row says
"door not built yet" and the rest of the suite is unaffected. Everything listens on 127.0.0.1 and
every loop is bounded in count and in time.
"""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final

import anyio
import httpx

from benchmarks.report import Row, describe, failed, skipped, versus
from cymetica_mcp.windows import iso

ROOT: Final = Path(__file__).resolve().parent.parent
TARGETS: Final = (
    ("rest_rps", "REST cached dashboard req/s", ">= 0.5 x bare Starlette"),
    ("mcp_round_trip", "MCP stdio tool call, median", "<= 1.3 x no-op tool"),
    ("ws_fanout", "WebSocket fan-out 1000 clients / 9 pairs", "all within 1 s, 9 computations/tick"),
)
MODULES: Final = {
    "rest_rps": "cymetica_mcp.web",
    "mcp_round_trip": "cymetica_mcp.mcp_server",
    "ws_fanout": "cymetica_mcp.web",
}
MCP_ROUNDS: Final = 40
"""Calls per pair and tool: 9 pairs x 40 x 2 tools = 720 round trips."""
MCP_TIME_LIMIT: Final = 120.0
DASHBOARD: Final = "/api/v1/analytics/dashboard?filter=all&period=24h"
REST_ROUNDS: Final = 2
"""Load rounds per server, alternating app and bare route, each of REST_SECONDS after a 1 s warm-up."""
REST_SECONDS: Final = 4.0
REST_CONNECTIONS: Final = 16
WS_CLIENTS: Final = 1000
PUSH_INTERVAL: Final = 2.0
"""The benchmark server's push interval (the default is 30 s): ticks often enough to time several."""
WS_SECONDS: Final = 13.0
"""Measured span of the fan-out: the ticks that start at least one interval after every client is
live (the tick running while 1,000 sessions connect is not the steady state) and whose 1 s deadline
falls inside it: five or six."""
WS_DEADLINE: Final = 1.0
START_TIMEOUT: Final = 180.0
"""Longest wait for a server to answer (it loads the index first: about 25 s at 10M trades)."""

Log = Callable[[str], None]


def built(module: str) -> bool:
    """Whether a door module is present in the installed package."""
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def measure(store_path: Path, now: int, log: Log) -> list[Row]:
    """One row per door target: measured, or skipped or failed with the reason (a target that breaks
    off fails alone; the others are still measured)."""
    rows: dict[str, Row] = {}
    for key, what, target in TARGETS:
        module = MODULES[key]
        if not built(module):
            reason = f"door not built yet ({module} is missing)"
            log(f"  {what}: {reason}")
            rows[key] = skipped(key, what, target, reason)
    if "mcp_round_trip" not in rows:
        rows["mcp_round_trip"] = attempt("mcp_round_trip", lambda: mcp_round_trip(store_path, now, log), log)
    if "rest_rps" not in rows:
        try:
            key = api_key(store_path, "benchmark-web")
            port = free_port()
            log("  web: starting the app (it loads the index first) ...")
            with serving(
                ["benchmarks.web_server", str(store_path), str(now), str(port), str(PUSH_INTERVAL)],
                store_path.with_name("web-server.log"),
                port,
            ):
                rows["rest_rps"] = attempt("rest_rps", lambda: rest_rate(store_path, port, key, log), log)
                rows["ws_fanout"] = attempt("ws_fanout", lambda: fan_out(port, key, log), log)
        except Exception as exc:  # the server did not start (or stop): what it had not measured fails
            for k in ("rest_rps", "ws_fanout"):
                rows.setdefault(k, failure(k, exc, log))
    return [rows[key] for key, _, _ in TARGETS]


def attempt(key: str, action: Callable[[], Row], log: Log) -> Row:
    """The row `action` makes for target `key`, or a failed row with the reason if it raises."""
    try:
        return action()
    except Exception as exc:
        return failure(key, exc, log)


def failure(key: str, exc: Exception, log: Log) -> Row:
    """A failed row for target `key`, its reason `exc` (said at once)."""
    what, target = next((w, t) for k, w, t in TARGETS if k == key)
    reason = describe(exc)
    log(f"  {what}: FAILED: {reason}")
    return failed(key, what, target, reason)


def api_key(store_path: Path, name: str, scopes: tuple[str, ...] = ("read",)) -> str:
    """A new API key in the benchmark's store (its secret), with `scopes` (read, ingest)."""
    from cymetica_mcp.auth import KeyRing
    from cymetica_mcp.models import Scope
    from cymetica_mcp.store import SQLiteStore

    _, secret = KeyRing(SQLiteStore(store_path)).create(name, tuple(Scope(s) for s in scopes))
    return secret


def index_rebuild(store: Path, now: int) -> None:
    """Build the SQLite store's kept index before its servers start (what a deployment does)."""
    done = subprocess.run(
        [sys.executable, "-m", "cymetica_mcp", "--db", str(store), "index", "rebuild"],
        cwd=ROOT,
        env={**os.environ, "CYMETICA_NOW": iso(now)},
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"index rebuild failed: {done.stderr[-2000:]}")


def mcp_round_trip(store_path: Path, now: int, log: Log) -> Row:
    """Median round trip of `et_analytics_dashboard` vs a no-op tool, same stdio server, interleaved."""
    from benchmarks.mcp_stdio_server import NOOP_TOOL
    from cymetica_mcp.mcp_server import TOOL_NAME

    key = api_key(store_path, "benchmark-mcp")
    logfile = store_path.with_name("mcp-server.log")
    times: dict[str, list[float]] = {TOOL_NAME: [], NOOP_TOOL: []}

    async def session() -> None:
        from mcp import Client
        from mcp.client.stdio import StdioServerParameters

        env = dict(os.environ, CYMETICA_API_KEY=key, PYTHONPATH=str(ROOT))
        server = StdioServerParameters(
            command=sys.executable,
            args=["-m", "benchmarks.mcp_stdio_server", str(store_path), str(now), str(logfile)],
            env=env,
            cwd=str(ROOT),
        )
        pairs = [
            {"filter": f, "period": p} for f in ("all", "humans", "agents") for p in ("24h", "7d", "30d")
        ]
        async with Client(server) as client:
            for arguments in pairs:  # warm up: the first call of each pair computes it
                result = await client.call_tool(TOOL_NAME, arguments)
                if result.is_error:
                    raise RuntimeError(f"{TOOL_NAME} failed: {result.content}")
                await client.call_tool(NOOP_TOOL, {})
            with anyio.fail_after(MCP_TIME_LIMIT):
                for _ in range(MCP_ROUNDS):
                    for arguments in pairs:
                        for name, args in ((NOOP_TOOL, {}), (TOOL_NAME, arguments)):
                            started = time.perf_counter()
                            result = await client.call_tool(name, args)
                            times[name].append(time.perf_counter() - started)
                            if result.is_error:
                                raise RuntimeError(f"{name} failed: {result.content}")

    log("  MCP stdio: dashboard tool vs no-op tool on the same server ...")
    anyio.run(session)
    tool, noop = statistics.median(times[TOOL_NAME]) * 1e3, statistics.median(times[NOOP_TOOL]) * 1e3
    log(f"  MCP stdio: dashboard {tool:.2f} ms, no-op {noop:.2f} ms (median of {len(times[TOOL_NAME])} each)")
    return versus(
        "mcp_round_trip",
        "MCP stdio tool call, median",
        tool,
        "ms",
        noop,
        "(no-op tool)",
        1.3,
        note=f"{len(times[TOOL_NAME])} calls each, interleaved; p90 dashboard "
        f"{_quantile(times[TOOL_NAME], 0.9) * 1e3:.2f} ms, no-op {_quantile(times[NOOP_TOOL], 0.9) * 1e3:.2f} ms",
    )


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def serving(module_args: list[str], log_path: Path, port: int) -> Iterator[subprocess.Popen[bytes]]:
    """Run `python -m MODULE ARGS` (output to `log_path`) until it answers on `port`; stop it after."""
    with log_path.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", *module_args],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            env=dict(os.environ, PYTHONPATH=str(ROOT)),
        )
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"{module_args[0]} exited with {process.returncode}:\n{_tail(log_path)}")
            try:
                httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2.0)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"{module_args[0]} did not answer within {START_TIMEOUT:g} s"
                    ) from None
                time.sleep(0.2)
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _tail(path: Path, size: int = 3000) -> str:
    return path.read_text(errors="replace")[-size:]


def load(port: int, headers: list[str]) -> dict[str, Any]:
    """One round of the load generator against 127.0.0.1:port (a process of its own)."""
    command = [sys.executable, "-m", "benchmarks.load", "--port", str(port), "--path", DASHBOARD]
    command += ["--connections", str(REST_CONNECTIONS), "--seconds", str(REST_SECONDS)]
    for header in headers:
        command += ["--header", header]
    done = subprocess.run(command, capture_output=True, text=True, check=False, cwd=ROOT, timeout=120)
    if done.returncode != 0:
        raise RuntimeError(f"load generator failed: {done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def rest_rate(store_path: Path, port: int, key: str, log: Log) -> Row:
    """Requests/s of the REST dashboard (cached) vs a bare Starlette route returning the same bytes."""
    auth = f"Authorization: Bearer {key}"
    answer = httpx.get(f"http://127.0.0.1:{port}{DASHBOARD}", headers={"Authorization": f"Bearer {key}"})
    if answer.status_code != 200:
        raise RuntimeError(f"REST dashboard answered {answer.status_code}: {answer.text[:500]}")
    body = store_path.with_name("rest-body.json")
    body.write_bytes(answer.content)
    bare_port = free_port()
    path = DASHBOARD.split("?")[0]
    runs: dict[str, list[dict[str, Any]]] = {"app": [], "bare": []}
    with serving(
        ["benchmarks.bare_server", str(bare_port), path, str(body)],
        store_path.with_name("bare-server.log"),
        bare_port,
    ):
        for _ in range(REST_ROUNDS):
            runs["app"].append(load(port, [auth]))
            runs["bare"].append(load(bare_port, []))
    app = statistics.mean(r["rps"] for r in runs["app"])
    bare = statistics.mean(r["rps"] for r in runs["bare"])
    bad = {status: n for r in runs["app"] for status, n in r["statuses"].items() if status != "200"}
    log(
        f"  REST: app {app:,.0f} req/s, bare route {bare:,.0f} req/s ({len(answer.content):,} bytes a response)"
    )
    row = versus(
        "rest_rps",
        "REST cached dashboard req/s",
        app,
        "req/s",
        bare,
        "(bare Starlette, same bytes)",
        0.5,
        at_least=True,
        note=f"{REST_CONNECTIONS} keep-alive connections, {REST_ROUNDS} x {REST_SECONDS:g} s each side, "
        f"alternating; p50 latency app {runs['app'][-1]['latency_ms']['p50']:.1f} ms, "
        f"bare {runs['bare'][-1]['latency_ms']['p50']:.1f} ms" + (f"; NON-200 answers: {bad}" if bad else ""),
    )
    if bad:
        return Row(**{**_fields(row), "passed": False})
    return row


def fan_out(port: int, key: str, log: Log) -> Row:
    """1,000 WebSocket clients over the 9 pairs: every tick's update to every client within 1 s."""
    log(f"  WebSocket: {WS_CLIENTS} clients over 9 pairs, push every {PUSH_INTERVAL:g} s ...")
    command = [sys.executable, "-m", "benchmarks.fanout", "--port", str(port), "--token", key]
    command += ["--clients", str(WS_CLIENTS), "--seconds", str(WS_SECONDS), "--ticks-path", "/bench/ticks"]
    done = subprocess.run(command, capture_output=True, text=True, check=False, cwd=ROOT, timeout=300)
    if done.returncode != 0:
        raise RuntimeError(f"fan-out clients failed: {done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    start, end = result["window"]
    finished = result["server_after"]["ticks"]
    starts = [t["start"] for t in finished] + [float("inf")]
    measured = [
        (tick, starts[i + 1])
        for i, tick in enumerate(finished)
        if start + PUSH_INTERVAL <= tick["start"] and tick["start"] + WS_DEADLINE <= end
    ]
    computations = [int(tick["computations"]) for tick, _ in measured]
    worst = 0.0
    misses = 0
    for tick, following in measured:
        for updates in result["updates"]:
            arrived = [t - tick["start"] for t in updates if tick["start"] <= t < following]
            if not arrived or arrived[0] > WS_DEADLINE:
                misses += 1
            if arrived:
                worst = max(worst, arrived[0])
    per_tick = "/".join(str(c) for c in computations) or "-"
    tick_seconds = max((tick["seconds"] for tick, _ in measured), default=float("nan"))

    ok = (
        bool(measured) and misses == 0 and result["ready"] == WS_CLIENTS and all(c == 9 for c in computations)
    )
    log(
        f"  WebSocket: {result['ready']}/{WS_CLIENTS} live in {result['ready_seconds']:.1f} s; {len(measured)} ticks: "
        f"worst delivery {worst * 1e3:.0f} ms, {misses} missed; computations per tick {per_tick}"
    )
    return Row(
        "ws_fanout",
        f"WebSocket fan-out {WS_CLIENTS} clients / 9 pairs",
        worst * 1e3,
        "ms",
        None,
        "",
        None,
        "all within 1 s, 9 computations/tick",
        ok,
        note=f"worst tick-to-client delivery over {len(measured)} ticks x {WS_CLIENTS} clients; "
        f"{misses} deliveries missed the 1 s deadline; computations per tick {per_tick}; "
        f"longest tick on the server {tick_seconds * 1e3:.0f} ms; "
        f"{result['ready']}/{WS_CLIENTS} clients live after {result['ready_seconds']:.1f} s; "
        f"{result['error_count']} client errors"
        + (f" (first: {result['errors'][0]})" if result["errors"] else ""),
    )


def _fields(row: Row) -> dict[str, Any]:
    return {name: getattr(row, name) for name in Row.__slots__}
