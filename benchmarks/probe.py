"""Measurements that need a process of their own (memory, or a clean import): one JSON line each.

    python -m benchmarks.probe import STORE USERS_CSV TRADES_CSV   # import rate and peak RSS
    python -m benchmarks.probe import URL USERS_CSV TRADES_CSV     # the same into PostgreSQL
    python -m benchmarks.probe engine STORE NOW                    # a server's engine: load + RSS
    python -m benchmarks.probe duckdb USERS_CSV TRADES_CSV [ORDER] # the reference's RSS

Resident memory is read from /proc/self/status (VmRSS now, VmHWM peak) with `ru_maxrss` as a
fallback, so a probe measures only what its own work made resident.
"""

from __future__ import annotations

import gc
import json
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

MB = 1024 * 1024


def rss() -> dict[str, float]:
    """Current and peak resident memory of this process, in MB."""
    status: dict[str, float] = {}
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            name, _, value = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                status[name] = int(value.split()[0]) * 1024 / MB
    except OSError:
        pass
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KB on Linux
    return {
        "rss_mb": status.get("VmRSS", float("nan")),
        "peak_mb": status.get("VmHWM", peak_kb / 1024),
        "ru_maxrss_mb": peak_kb / 1024,
    }


def probe_import(store_path: str, users_csv: str, trades_csv: str) -> dict[str, Any]:
    """Import the users, then time the trades file alone (validated, the store's indexes included);
    `store_path` may be a `postgresql://` URL."""
    from cymetica_mcp.ingest import import_files
    from cymetica_mcp.store import open_store

    store = open_store(store_path)
    import_files(store, Path(users_csv), None)
    before = rss()
    started = time.perf_counter()
    report = import_files(store, None, Path(trades_csv))
    wall = time.perf_counter() - started
    getattr(store, "close", lambda: None)()  # a PostgreSQL store: its pool and listening thread
    return {
        "trades": report.trades_inserted,
        "rows": report.rows,
        "seconds": wall,
        "rate": report.trades_inserted / wall,
        "before": before,
        "after": rss(),
    }


def probe_engine(store_path: str, now: str) -> dict[str, Any]:
    """What a server holds: an engine with its index loaded and the nine dashboards computed once."""
    from cymetica_mcp.engine import Engine
    from cymetica_mcp.models import Filter, Period
    from cymetica_mcp.store import SQLiteStore

    fixed = int(now)
    baseline = rss()
    engine = Engine(SQLiteStore(store_path), clock=lambda: fixed, max_age=3600.0)
    started = time.perf_counter()
    index = engine.index()
    load = time.perf_counter() - started
    loaded = rss()
    started = time.perf_counter()
    for f in Filter:
        for p in Period:
            engine.result(f, p)
    first = time.perf_counter() - started
    gc.collect()
    return {
        "trades": index.trade_count,
        "load_seconds": load,
        "first_nine_seconds": first,
        "baseline": baseline,
        "loaded": loaded,
        "after": rss(),
    }


def probe_duckdb(users_csv: str, trades_csv: str, order: str = "ts") -> dict[str, Any]:
    """The reference's footprint: DuckDB with both tables loaded in memory."""
    from benchmarks.reference_duckdb import Reference

    baseline = rss()
    started = time.perf_counter()
    reference = Reference.load(Path(users_csv), Path(trades_csv), order)
    load = time.perf_counter() - started
    loaded = rss()
    from benchmarks.data import NOW

    reference.dashboard("all", "30d", NOW)
    count = reference.trade_count()
    return {"trades": count, "load_seconds": load, "baseline": baseline, "loaded": loaded, "after": rss()}


PROBES: dict[str, Callable[..., dict[str, Any]]] = {
    "import": probe_import,
    "engine": probe_engine,
    "duckdb": probe_duckdb,
}


def main(argv: list[str]) -> int:
    """Run one probe and print its JSON result on one line."""
    if not argv or argv[0] not in PROBES:
        print(f"usage: python -m benchmarks.probe {{{','.join(PROBES)}}} ARGS...", file=sys.stderr)
        return 2
    result = PROBES[argv[0]](*argv[1:])
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
