"""Run the benchmark suite of issue 6: every target as a ratio against a reference measured in this run.

    python -m benchmarks.run --size quick   # 1M trades / 20k users: a few minutes
    python -m benchmarks.run --size full    # 10M trades / 50k users, plus the 1M figures for growth

Prints a table (what, measured, reference, ratio, target, result) and writes the same, with the raw
timings, to benchmarks/results/<size>-<timestamp>.json. Exits 1 if any dashboard figure of the engine
differs from DuckDB's (the first differing field is printed), 2 with --strict if a target fails.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from benchmarks import attack, doors, ingest, pg, startup, workers
from benchmarks.dashboards import (
    REFERENCE_REPS,
    Cold,
    active_growth,
    cold,
    cold_rows,
    companion,
    fresh_rows,
    live_rows,
    sides,
)
from benchmarks.data import NOW, SIZES, dataset
from benchmarks.importing import import_rows, measure_import, measure_sqlite_cli, memory_rows
from benchmarks.reference_duckdb import ORDERS
from benchmarks.report import Row, info, machine, skipped, table, versus, write_json
from benchmarks.suite import Run

RESULTS: Final = Path(__file__).resolve().parent / "results"
SIZE_LABELS: Final = {"quick": "1M", "full": "10M", "100m": "100M"}


def main(argv: list[str] | None = None) -> int:
    """Run the suite; 1 if any figure differs from the reference, 2 with --strict if a target fails."""
    parser = argparse.ArgumentParser(description="cymetica-mcp benchmarks (issue 6).")
    parser.add_argument("--size", choices=sorted(SIZES), default="quick")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for the JSON results")
    parser.add_argument(
        "--duckdb-order",
        choices=sorted(ORDERS),
        default="ts",
        help="layout of DuckDB's trades table: by time (default, the strong reference) or file order",
    )
    parser.add_argument(
        "--no-doors", action="store_true", help="skip the REST, MCP, WebSocket and ingest targets"
    )
    parser.add_argument("--no-ingest", action="store_true", help="skip the ingest-over-HTTP targets")
    parser.add_argument("--no-attack", action="store_true", help="skip the wrong-key flood target")
    parser.add_argument("--no-workers", action="store_true", help="skip the serve --workers curve")
    parser.add_argument(
        "--no-postgres", action="store_true", help="skip the PostgreSQL targets (issue 17; benchmarks/pg.py)"
    )
    parser.add_argument("--strict", action="store_true", help="exit 2 when a target fails")
    args = parser.parse_args(argv)
    begun = time.perf_counter()
    load_before = os.getloadavg()
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")

    def log(message: str) -> None:
        print(f"[{time.perf_counter() - begun:7.1f}s] {message}", flush=True)

    run = Run(args.size, dataset(SIZES[args.size], log=log), log, order=args.duckdb_order)
    log(f"dataset {run.data.folder.name}: now = 2026-03-20T12:34:56Z")
    with tempfile.TemporaryDirectory(dir=run.data.folder, prefix="run-") as scratch:
        folder = Path(scratch)
        store_path = folder / "store.db"
        imported = measure_import(run, store_path)
        run.details["import"] = imported
        cli = measure_sqlite_cli(run, folder)
        run.details["sqlite3_import"] = cli
        import_rows(run, imported, cli)
        memory_rows(run, store_path)
        log("server start-up: from the rows, then from the kept index (serve, a process each) ...")
        started_up = startup.measure(store_path)
        run.details["startup"] = started_up
        for row in startup.rows(started_up, run.data.size.trades):
            run.add(row)

        log("dashboards: the engine, then DuckDB, each in a process of its own ...")
        mine, theirs = sides(
            run,
            store_path,
            run.data.users_csv,
            run.data.trades_csv,
            REFERENCE_REPS[run.size],
            run.data.extra_csv,
            True,
        )
        run.details["load_seconds"] = {"engine": mine["load_seconds"], "duckdb": theirs["load_seconds"]}
        log(f"  index {mine['load_seconds']:.1f} s, DuckDB {theirs['load_seconds']:.1f} s")
        log("cold dashboards (engine compute() vs DuckDB SQL) ...")
        big = cold(run, SIZE_LABELS[run.size], mine, theirs)
        small: Cold | None = None
        small_import: dict[str, Any] | None = None
        if run.size == "full":
            small, small_import = companion(run, folder)
        engine_median, duck_median = cold_rows(run, big)
        if small is not None and small_import is not None:
            quick = small
            run.details["cold_ms_1M"] = {
                "engine": {pair: [t * 1e3 for t in times] for pair, times in quick.engine.items()},
                "duckdb": {pair: [t * 1e3 for t in times] for pair, times in quick.reference.items()},
            }
            run.details["import_1M"] = small_import
            growth = engine_median / quick.median_ms(quick.engine)
            duck_growth = duck_median / quick.median_ms(quick.reference)
            run.add(
                Row(
                    "growth",
                    "growth: cold median 10M / 1M",
                    growth,
                    "x",
                    duck_growth,
                    "(DuckDB 10M/1M)",
                    None,
                    "<= 2",
                    growth <= 2,
                    note=f"1M medians (own processes, after 10M): engine {quick.median_ms(quick.engine):.1f} ms, "
                    f"DuckDB {quick.median_ms(quick.reference):.1f} ms",
                )
            )
            active, per_user = active_growth(big, quick)
            run.add(
                info(
                    "growth_active",
                    "active users per dashboard 10M / 1M",
                    active,
                    "x",
                    note=f"median of the 9 pairs' ratios; cold time per active user, 10M / 1M: {per_user:.2f} x",
                )
            )
            peak_full, peak_quick = imported["after"]["peak_mb"], small_import["after"]["peak_mb"]
            run.add(
                versus(
                    "import_memory",
                    "import peak RSS 10M vs 1M",
                    peak_full,
                    "MB",
                    peak_quick,
                    "(1M import)",
                    1.5,
                )
            )
        else:
            run.add(
                skipped(
                    "growth",
                    "growth: cold median 10M / 1M",
                    "<= 2",
                    "run --size full (it measures both sizes)",
                )
            )
            run.add(
                info(
                    "import_memory",
                    "import peak RSS",
                    imported["after"]["peak_mb"],
                    "MB",
                    "flatness needs --size full",
                )
            )

        live_rows(run, mine["live"], duck_median)
        fresh_rows(run, mine["fresh"], theirs["fresh"])

        if args.no_doors:
            for key, what, target in doors.TARGETS:
                run.add(skipped(key, what, target, "--no-doors"))
        else:
            log("doors (REST, MCP stdio, WebSocket) ...")
            for row in doors.measure(store_path, NOW, log):
                run.add(row)
        if args.no_doors or args.no_workers:
            run.add(skipped("workers_rest", "REST req/s, serve --workers 2 vs 1", ">= 1.3 x ref", "skipped"))
        else:
            log("serve --workers 1, 2, 4: REST req/s ...")
            run.details["workers"] = curve = workers.curve(store_path, NOW)
            for row in workers.rows(curve):
                run.add(row)
        if args.no_doors or args.no_ingest:
            for key, what, target in ingest.TARGETS:
                run.add(skipped(key, what, target, "--no-doors" if args.no_doors else "--no-ingest"))
        else:
            log("ingest over HTTP (batches against the CLI, one-trade latency, freshness) ...")
            ingest_rows, run.details["ingest"] = ingest.measure(
                run.data.store_path, run.data.users_csv, folder, NOW, log
            )
            for row in ingest_rows:
                run.add(row)
        if args.no_doors or args.no_attack:
            for key, what, target in attack.TARGETS:
                run.add(skipped(key, what, target, "--no-doors" if args.no_doors else "--no-attack"))
        else:
            log("a flood of wrong keys beside a valid caller ...")
            attack_rows, run.details["attack"] = attack.measure(run.data.store_path, folder, log)
            for row in attack_rows:
                run.add(row)
        if args.no_postgres or run.size == "100m":
            reason = (
                "--no-postgres" if args.no_postgres else "measured at 1M and 10M (python -m benchmarks.pg)"
            )
            for row in pg.skipped_rows(reason, run.size):
                run.add(row)
        else:
            log("PostgreSQL (issue 17): import, dashboards against SQLite's, replica catch-up ...")
            pg_rows, run.details["postgres"] = pg.measure(run.size, run.data, folder / "pg", log)
            for row in pg_rows:
                run.add(row)

    figures_ok = not run.differences
    if max(load_before[0], os.getloadavg()[0]) > 1.0:
        print(
            f"\nnote: other processes were busy (1-minute load average {load_before[0]:.1f} at the start, "
            f"{os.getloadavg()[0]:.1f} at the end, on {os.cpu_count()} cores): each ratio compares two "
            "figures measured side by side, but absolute times are inflated"
        )
    print()
    print(
        f"cymetica-mcp benchmarks, size {run.size} ({run.data.size.trades:,} trades, {run.data.size.users:,} users)"
    )
    print(table(run.rows))
    if figures_ok:
        print("\nfigures: the engine's 9 dashboards (and the 9 after +10k) are identical to DuckDB's")
    else:
        print(f"\nFIGURES DIFFER from DuckDB's ({len(run.differences)} fields); first: {run.differences[0]}")
    out = args.out / f"{run.size}-{stamp}.json"
    write_json(
        out,
        {
            "size": run.size,
            "trades": run.data.size.trades,
            "users": run.data.size.users,
            "now": "2026-03-20T12:34:56Z",
            "started": stamp,
            "seconds": time.perf_counter() - begun,
            "command": " ".join([Path(sys.executable).name, "-m", "benchmarks.run", *(argv or sys.argv[1:])]),
            "machine": machine(),
            "load_average": {"start": load_before, "end": os.getloadavg()},
            "duckdb_order": run.order,
            "figures_identical": figures_ok,
            "differences": run.differences[:100],
            "details": run.details,
        },
        run.rows,
    )
    print(f"results: {out} ({time.perf_counter() - begun:.0f} s)")
    if not figures_ok:
        return 1
    if args.strict and any(row.passed is False for row in run.rows):
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
