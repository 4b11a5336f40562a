"""The door targets: REST, MCP stdio and WebSocket fan-out, each against a bare reference on loopback.

Each target runs only when its door module is in the package; otherwise its row says
"door not built yet" and the rest of the suite is unaffected. Everything listens on 127.0.0.1 and
every loop is bounded in count and in time.
"""

from __future__ import annotations

import importlib.util
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Final

import anyio

from benchmarks.report import Row, skipped, versus

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

Log = Callable[[str], None]


def built(module: str) -> bool:
    """Whether a door module is present in the installed package."""
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def measure(store_path: Path, now: int, log: Log) -> list[Row]:
    """One row per door target: measured, or skipped with the reason."""
    measures: dict[str, Callable[[Path, int, Log], Row]] = {"mcp_round_trip": mcp_round_trip}
    rows = []
    for key, what, target in TARGETS:
        module = MODULES[key]
        if not built(module):
            reason = f"door not built yet ({module} is missing)"
            log(f"  {what}: {reason}")
            rows.append(skipped(key, what, target, reason))
        elif key not in measures:
            reason = f"door not built yet ({module} is present, its benchmark is not written)"
            log(f"  {what}: {reason}")
            rows.append(skipped(key, what, target, reason))
        else:
            rows.append(measures[key](store_path, now, log))
    return rows


def api_key(store_path: Path, name: str) -> str:
    """A new API key in the benchmark's store (its secret)."""
    from cymetica_mcp.auth import KeyRing
    from cymetica_mcp.store import Store

    _, secret = KeyRing(Store(store_path)).create(name)
    return secret


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
