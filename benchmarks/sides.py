"""Each side of the dashboard comparison in a process of its own, one after the other (issue 16: the
engine and DuckDB must not share memory). A side writes its timings and its dashboards as JSON; the
run compares the dashboards field by field and builds the rows (`benchmarks.dashboards`).

    python -m benchmarks.sides engine STORE OUT [--extra CSV] [--live]
    python -m benchmarks.sides duckdb USERS_CSV TRADES_CSV OUT --reps N [--order ts] [--extra CSV]

The engine side loads the index from the store's rows (as a server without a kept index does), times
`compute()` of the nine (filter, period) pairs at NOW `ENGINE_REPS` times each (a cold dashboard:
nothing cached), then optionally the cached live dashboard, then imports `--extra` into the store and
times the index refresh and the nine fresh dashboards. The DuckDB side loads the CSV files, times its
SQL for the nine pairs, then appends `--extra` and times the nine again.
"""

from __future__ import annotations

import argparse
import gc
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Final

from benchmarks.data import NOW
from benchmarks.reference_duckdb import ORDERS, PAIRS
from benchmarks.suite import ROOT

ENGINE_REPS: Final = 5
LIVE_ROUNDS: Final = 200


def engine_side(store_path: Path, extra: Path | None, live: bool) -> dict[str, Any]:
    """The engine's cold, live and fresh dashboards over the store at `store_path`."""
    from cymetica_mcp.engine import Engine, compute
    from cymetica_mcp.ingest import import_files
    from cymetica_mcp.models import Filter, Period
    from cymetica_mcp.store import SQLiteStore

    store = SQLiteStore(store_path)
    engine = Engine(store, clock=lambda: NOW, max_age=1e9)
    started = time.perf_counter()
    index = engine.index()
    out: dict[str, Any] = {"load_seconds": time.perf_counter() - started, "trades": index.trade_count}
    gc.collect()
    cold: dict[str, list[float]] = {}
    boards: dict[str, Any] = {}
    active: dict[str, int] = {}
    for f, p in PAIRS:
        pair, times = f"{f}/{p}", []
        for _ in range(ENGINE_REPS):
            began = time.perf_counter()
            board = compute(index, Filter(f), Period(p), NOW)
            times.append(time.perf_counter() - began)
        cold[pair], boards[pair] = times, board.to_wire()
        active[pair] = int(board.metrics.active_users.value)
        print(
            f"  engine {pair:12} {sorted(times)[len(times) // 2] * 1e3:8.1f} ms", file=sys.stderr, flush=True
        )
    out.update(cold=cold, boards=boards, active=active)
    if live:
        out["live"] = _live(engine)
    if extra is not None:
        engine.index()
        began = time.perf_counter()
        report = import_files(store, None, extra)
        import_seconds = time.perf_counter() - began
        began = time.perf_counter()
        engine.index()
        refresh = time.perf_counter() - began
        fresh: dict[str, float] = {}
        fresh_boards: dict[str, Any] = {}
        for f, p in PAIRS:
            began = time.perf_counter()
            result = engine.result(Filter(f), Period(p))
            fresh[f"{f}/{p}"] = time.perf_counter() - began
            if result.cached:
                raise RuntimeError(f"{f}/{p}: served from cache after an import")
            fresh_boards[f"{f}/{p}"] = result.dashboard.to_wire()
        out["fresh"] = {
            "trades_inserted": report.trades_inserted,
            "import_seconds": import_seconds,
            "refresh_seconds": refresh,
            "seconds": fresh,
            "boards": fresh_boards,
        }
    engine.close()
    return out


def _live(engine: Any) -> dict[str, Any]:
    """The cached live dashboard: Engine.result(now=None) again and again on an unchanged store."""
    from cymetica_mcp.models import Filter, Period

    pairs = [(Filter(f), Period(p)) for f, p in PAIRS]
    for f, p in pairs:
        engine.result(f, p)
    times, cached = [], 0
    for _ in range(LIVE_ROUNDS):
        for f, p in pairs:
            began = time.perf_counter()
            result = engine.result(f, p)
            times.append(time.perf_counter() - began)
            cached += result.cached
    return {"seconds": times, "cached": cached}


def duckdb_side(users: Path, trades: Path, reps: int, order: str, extra: Path | None) -> dict[str, Any]:
    """DuckDB's cold dashboards over the CSV files, and after appending `extra`."""
    from benchmarks.reference_duckdb import Reference

    started = time.perf_counter()
    reference = Reference.load(users, trades, order)
    out: dict[str, Any] = {"load_seconds": time.perf_counter() - started, "trades": reference.trade_count()}
    cold: dict[str, list[float]] = {}
    boards: dict[str, Any] = {}
    for f, p in PAIRS:
        pair, times = f"{f}/{p}", []
        for _ in range(reps):
            began = time.perf_counter()
            boards[pair] = reference.dashboard(f, p, NOW)
            times.append(time.perf_counter() - began)
        cold[pair] = times
        print(
            f"  DuckDB {pair:12} {sorted(times)[len(times) // 2] * 1e3:8.1f} ms", file=sys.stderr, flush=True
        )
    out.update(cold=cold, boards=boards)
    if extra is not None:
        reference.add_trades(extra)
        fresh: dict[str, float] = {}
        fresh_boards: dict[str, Any] = {}
        for f, p in PAIRS:
            began = time.perf_counter()
            fresh_boards[f"{f}/{p}"] = reference.dashboard(f, p, NOW)
            fresh[f"{f}/{p}"] = time.perf_counter() - began
        out["fresh"] = {"seconds": fresh, "boards": fresh_boards}
    reference.close()
    return out


def run_side(args: list[str], out: Path) -> dict[str, Any]:
    """Run `python -m benchmarks.sides ARGS OUT` in a fresh process (its progress on this stderr);
    the JSON it wrote."""
    done = subprocess.run([sys.executable, "-m", "benchmarks.sides", *args, str(out)], cwd=ROOT, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"benchmarks.sides {args[0]} exited with {done.returncode}")
    result: dict[str, Any] = json.loads(out.read_text())
    out.unlink()
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="One side of the dashboard comparison, in this process.")
    sides = parser.add_subparsers(dest="side", required=True)
    engine = sides.add_parser("engine")
    engine.add_argument("store", type=Path)
    engine.add_argument("out", type=Path)
    engine.add_argument("--extra", type=Path)
    engine.add_argument("--live", action="store_true")
    duck = sides.add_parser("duckdb")
    duck.add_argument("users", type=Path)
    duck.add_argument("trades", type=Path)
    duck.add_argument("out", type=Path)
    duck.add_argument("--reps", type=int, required=True)
    duck.add_argument("--order", choices=sorted(ORDERS), default="ts")
    duck.add_argument("--extra", type=Path)
    args = parser.parse_args(argv)
    if args.side == "engine":
        result = engine_side(args.store, args.extra, args.live)
    else:
        result = duckdb_side(args.users, args.trades, args.reps, args.order, args.extra)
    args.out.write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
