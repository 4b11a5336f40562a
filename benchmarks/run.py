"""Run the benchmark suite of issue 6: every target as a ratio against a reference measured in this run.

    python -m benchmarks.run --size quick   # 1M trades / 20k users: a few minutes
    python -m benchmarks.run --size full    # 10M trades / 50k users, plus the 1M figures for growth

Prints a table (what, measured, reference, ratio, target, result) and writes the same, with the raw
timings, to benchmarks/results/<size>-<timestamp>.json. Exits 1 if any dashboard figure of the engine
differs from DuckDB's (the first differing field is printed), 2 with --strict if a target fails.
"""

from __future__ import annotations

import argparse
import gc
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from benchmarks import doors
from benchmarks.data import NOW, SIZES, Dataset, copy_store, dataset, remove_store, settle
from benchmarks.reference_duckdb import ORDERS, PAIRS, Reference, differences
from benchmarks.report import Row, absolute, info, machine, median, skipped, table, versus, write_json
from cymetica_mcp.engine import Engine
from cymetica_mcp.index import TradeIndex
from cymetica_mcp.ingest import import_files
from cymetica_mcp.metrics import compute
from cymetica_mcp.models import Filter, Period
from cymetica_mcp.store import Store

RESULTS: Final = Path(__file__).resolve().parent / "results"
ENGINE_REPS: Final = 5
REFERENCE_REPS: Final = {"quick": 5, "full": 3}
SIZE_LABELS: Final = {"quick": "1M", "full": "10M"}
LIVE_ROUNDS: Final = 200
SQLITE_HINT: Final = "install it (Debian/Ubuntu: apt-get install sqlite3) to measure this reference"


@dataclass
class Run:
    """The state of one benchmark run: its dataset, the rows so far and the raw figures behind them."""

    size: str
    data: Dataset
    log: Callable[[str], None]
    order: str = "ts"
    rows: list[Row] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    differences: list[str] = field(default_factory=list)

    def add(self, row: Row) -> None:
        """Record a row and say it at once."""
        self.rows.append(row)
        self.log(f"  -> {row.what}: {row.measured if row.measured is not None else row.note}")

    def compare(self, label: str, engine: dict[str, Any], reference: dict[str, Any]) -> None:
        """Record every field where the engine's figures differ from the reference's."""
        for difference in differences(engine, reference):
            self.differences.append(f"{label}: {difference}")


def probe(*args: str) -> dict[str, Any]:
    """Run `python -m benchmarks.probe ARGS` in a fresh process; its one JSON line."""
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.probe", *args],
        capture_output=True,
        text=True,
        check=False,
        cwd=Path(__file__).resolve().parent.parent,
    )
    if done.returncode != 0:
        raise RuntimeError(f"probe {args[0]} failed:\n{done.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def measure_import(run: Run, store_path: Path) -> dict[str, Any]:
    """Import users.csv then time trades.csv into a new store, in a process of its own."""
    remove_store(store_path)
    run.log(f"import: {run.data.trades_csv.name} ({run.data.size.trades:,} trades) into a new store ...")
    result = probe("import", str(store_path), str(run.data.users_csv), str(run.data.trades_csv))
    settle(store_path)
    if not run.data.has_store():
        copy_store(store_path, run.data.store_path)  # cache it for `python -m benchmarks.data` users
    run.log(f"  {result['trades']:,} trades in {result['seconds']:.1f} s = {result['rate']:,.0f} trades/s")
    return result


def measure_sqlite_cli(run: Run, folder: Path) -> dict[str, Any] | None:
    """The `sqlite3` command line's `.import` of the same trades file into a bare table (None if absent)."""
    cli = shutil.which("sqlite3")
    if cli is None:
        return None
    target = folder / "sqlite-cli-import.db"
    remove_store(target)
    script = (
        ".bail on\n"
        "CREATE TABLE trades (trade_id TEXT, user_id TEXT, ts TEXT, volume_usdc TEXT, pnl_usdc TEXT);\n"
        f".import --csv --skip 1 '{run.data.trades_csv}' trades\n"
        "SELECT count(*) FROM trades;\n"
    )
    run.log("import reference: sqlite3 .import of the same file into a bare table ...")
    started = time.perf_counter()
    done = subprocess.run([cli, str(target)], input=script, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    remove_store(target)
    if done.returncode != 0:
        raise RuntimeError(f"sqlite3 .import failed: {done.stderr.strip()}")
    rows = int(done.stdout.strip().splitlines()[-1])
    run.log(f"  {rows:,} rows in {seconds:.1f} s = {rows / seconds:,.0f} rows/s")
    return {"rows": rows, "seconds": seconds, "rate": rows / seconds}


def import_rows(run: Run, mine: dict[str, Any], cli: dict[str, Any] | None) -> None:
    """The import targets: >= 250k trades/s and >= 0.5 x sqlite3 .import."""
    rate = float(mine["rate"])
    what = f"import {run.data.size.trades / 1e6:g}M-trade CSV (validated, indexed)"
    if cli is None:
        run.add(absolute("import_rate", what, rate, "trades/s", 250_000, at_least=True))
        run.add(
            skipped(
                "import_vs_sqlite",
                "import vs sqlite3 .import",
                ">= 0.5 x ref",
                "no sqlite3 CLI; " + SQLITE_HINT,
            )
        )
        return
    run.add(
        absolute(
            "import_rate",
            what,
            rate,
            "trades/s",
            250_000,
            at_least=True,
            reference=cli["rate"],
            reference_what="(sqlite3 .import)",
        )
    )
    run.add(
        versus(
            "import_vs_sqlite",
            "import vs sqlite3 .import",
            rate,
            "trades/s",
            cli["rate"],
            "(sqlite3 .import)",
            0.5,
            at_least=True,
        )
    )


def memory_rows(run: Run, store_path: Path) -> None:
    """Resident memory of a process holding the engine (index loaded, nine dashboards computed)."""
    run.log("memory: engine holder and DuckDB holder, each in a process of its own ...")
    engine = probe("engine", str(store_path), str(NOW))
    reference = probe("duckdb", str(run.data.users_csv), str(run.data.trades_csv), run.order)
    run.details["memory"] = {"engine": engine, "duckdb": reference}
    run.log(
        f"  engine: load {engine['load_seconds']:.1f} s, RSS {engine['after']['rss_mb']:.0f} MB, "
        f"peak {engine['after']['peak_mb']:.0f} MB; DuckDB: RSS {reference['after']['rss_mb']:.0f} MB"
    )
    run.add(info("index_load", "TradeIndex.load (server start)", engine["load_seconds"], "s"))
    run.add(
        absolute(
            "server_rss",
            "server RSS, index loaded + 9 dashboards",
            engine["after"]["rss_mb"],
            "MB",
            400,
            reference=reference["after"]["rss_mb"],
            reference_what="(DuckDB, tables loaded)",
            note=f"peak during load {engine['after']['peak_mb']:.0f} MB (ru_maxrss "
            f"{engine['after']['ru_maxrss_mb']:.0f} MB); interpreter + imports "
            f"{engine['baseline']['rss_mb']:.0f} MB; target defined at 10M trades",
        )
    )


@dataclass(frozen=True, slots=True)
class Side:
    """One dataset's engine index and DuckDB reference, timed against each other."""

    label: str
    index: TradeIndex
    reference: Reference
    reference_reps: int


@dataclass(frozen=True, slots=True)
class Cold:
    """Per-pair timings (seconds) of the engine's compute() and DuckDB's query, over repetitions."""

    engine: dict[str, list[float]]
    reference: dict[str, list[float]]

    def medians(self, which: dict[str, list[float]]) -> dict[str, float]:
        """Each pair's median time."""
        return {pair: median(times) for pair, times in which.items()}

    def median_ms(self, which: dict[str, list[float]]) -> float:
        """The median over the nine pairs of each pair's median time, in ms."""
        return median(list(self.medians(which).values())) * 1e3


def cold(run: Run, sides: list[Side]) -> dict[str, Cold]:
    """Time the nine cold dashboards of each side, engine and DuckDB interleaved pair by pair (so a
    noisy neighbour hits both alike), and compare their figures."""
    results = {side.label: Cold({}, {}) for side in sides}
    for f, p in PAIRS:
        pair = f"{f}/{p}"
        for side in sides:
            times = []
            wire: dict[str, Any] = {}
            for _ in range(ENGINE_REPS):
                started = time.perf_counter()
                board = compute(side.index, Filter(f), Period(p), NOW)
                times.append(time.perf_counter() - started)
                wire = board.to_wire()
            ref_times = []
            expected: dict[str, Any] = {}
            for _ in range(side.reference_reps):
                started = time.perf_counter()
                expected = side.reference.dashboard(f, p, NOW)
                ref_times.append(time.perf_counter() - started)
            results[side.label].engine[pair] = times
            results[side.label].reference[pair] = ref_times
            run.compare(f"{side.label} {pair}", wire, expected)
            run.log(
                f"  {side.label:5} {pair:12} engine {median(times) * 1e3:8.1f} ms   "
                f"DuckDB {median(ref_times) * 1e3:8.1f} ms"
            )
    return results


def cold_rows(run: Run, result: Cold) -> tuple[float, float]:
    """The cold median and worst targets; returns (engine median, DuckDB median) in ms."""
    mine = result.medians(result.engine)
    theirs = result.medians(result.reference)
    mine_median, theirs_median = median(list(mine.values())) * 1e3, median(list(theirs.values())) * 1e3
    mine_worst, theirs_worst = max(mine.values()) * 1e3, max(theirs.values()) * 1e3
    run.details["cold_ms"] = {
        "engine": {pair: [t * 1e3 for t in times] for pair, times in result.engine.items()},
        "duckdb": {pair: [t * 1e3 for t in times] for pair, times in result.reference.items()},
    }
    run.add(
        versus(
            "cold_median", "cold dashboard, median of 9", mine_median, "ms", theirs_median, "(DuckDB)", 0.25
        )
    )
    run.add(
        versus("cold_worst", "cold dashboard, worst of 9", mine_worst, "ms", theirs_worst, "(DuckDB)", 0.5)
    )
    return mine_median, theirs_median


def live_rows(run: Run, engine: Engine, reference_ms: float) -> None:
    """The cached live dashboard: Engine.result(now=None) again and again on an unchanged store."""
    pairs = [(Filter(f), Period(p)) for f, p in PAIRS]
    for f, p in pairs:
        engine.result(f, p)
    times = []
    cached = 0
    for _ in range(LIVE_ROUNDS):
        for f, p in pairs:
            started = time.perf_counter()
            result = engine.result(f, p)
            times.append(time.perf_counter() - started)
            cached += result.cached
    times.sort()
    run.details["live_ms"] = {
        "calls": len(times),
        "cached": cached,
        "median": median(times) * 1e3,
        "p99": times[int(len(times) * 0.99)] * 1e3,
        "max": times[-1] * 1e3,
    }
    run.add(
        absolute(
            "live_median",
            "live (cached) dashboard, median",
            median(times) * 1e3,
            "ms",
            1.0,
            reference=reference_ms,
            reference_what="(DuckDB cold median)",
            note=f"{cached}/{len(times)} served from cache; p99 {run.details['live_ms']['p99']:.3f} ms",
        )
    )


def fresh_rows(run: Run, engine: Engine, store: Store, reference: Reference) -> None:
    """Import 10k new trades into the loaded store, then each of the nine fresh dashboards.

    The first request after an import pays the index refresh: `engine.index()` is timed on its own
    (it is exactly what `result()` does first), then each of the nine `result()` calls.
    """
    engine.index()
    started = time.perf_counter()
    report = import_files(store, None, run.data.extra_csv)
    import_seconds = time.perf_counter() - started
    started = time.perf_counter()
    engine.index()
    refresh = time.perf_counter() - started
    times: list[float] = []
    boards: dict[str, dict[str, Any]] = {}
    for f, p in PAIRS:
        started = time.perf_counter()
        result = engine.result(Filter(f), Period(p))
        times.append(time.perf_counter() - started)
        if result.cached:
            raise RuntimeError(f"{f}/{p}: served from cache after an import")
        boards[f"{f}/{p}"] = result.dashboard.to_wire()
    reference.add_trades(run.data.extra_csv)
    reference_times = []
    for f, p in PAIRS:
        started = time.perf_counter()
        expected = reference.dashboard(f, p, NOW)
        reference_times.append(time.perf_counter() - started)
        run.compare(f"after +10k {f}/{p}", boards[f"{f}/{p}"], expected)
    run.details["after_import"] = {
        "trades_inserted": report.trades_inserted,
        "import_seconds": import_seconds,
        "refresh_seconds": refresh,
        "dashboards_ms": {pair: t * 1e3 for pair, t in zip(boards, times, strict=True)},
        "duckdb_ms": {pair: t * 1e3 for pair, t in zip(boards, reference_times, strict=True)},
    }
    ref_median = median(reference_times) * 1e3
    first = (refresh + times[0]) * 1e3
    run.log(
        f"  +{report.trades_inserted:,} trades imported in {import_seconds * 1e3:.0f} ms; index refresh "
        f"{refresh * 1e3:.1f} ms; dashboards " + ", ".join(f"{t * 1e3:.1f}" for t in times) + " ms"
    )
    run.add(info("fresh_import", "import of the 10k new trades", import_seconds * 1e3, "ms"))
    run.add(info("fresh_refresh", "index refresh after +10k", refresh * 1e3, "ms"))
    run.add(
        absolute(
            "fresh_first",
            "after +10k: 1st dashboard (refresh + compute)",
            first,
            "ms",
            20,
            reference=ref_median,
            reference_what="(DuckDB median)",
        )
    )
    run.add(
        absolute(
            "fresh_worst",
            "after +10k: worst of the 9, refresh excluded",
            max(times) * 1e3,
            "ms",
            20,
            reference=ref_median,
            reference_what="(DuckDB median)",
            note="the 9 in order: " + ", ".join(f"{t * 1e3:.1f}" for t in times) + " ms",
        )
    )


def companion(run: Run, folder: Path) -> tuple[Side, dict[str, Any]]:
    """At full size, the 1M dataset for growth and import memory, measured in this same run."""
    small = Run("quick", dataset(SIZES["quick"], run.data.seed, run.log), run.log, run.order)
    store_path = folder / "quick-run.db"
    run.log("growth: the 1M dataset, measured in this same run ...")
    imported = measure_import(small, store_path)
    index = TradeIndex.load(Store(store_path))
    reference = Reference.load(small.data.users_csv, small.data.trades_csv, run.order)
    remove_store(store_path)
    return Side("1M", index, reference, REFERENCE_REPS["quick"]), imported


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
    parser.add_argument("--no-doors", action="store_true", help="skip the REST, MCP and WebSocket targets")
    parser.add_argument("--strict", action="store_true", help="exit 2 when a target fails")
    args = parser.parse_args(argv)
    begun = time.perf_counter()
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

        log("loading the engine's index and DuckDB's tables in this process ...")
        store = Store(store_path)
        engine = Engine(store, clock=lambda: NOW, max_age=1e9)
        started = time.perf_counter()
        index = engine.index()
        load_seconds = time.perf_counter() - started
        started = time.perf_counter()
        reference = Reference.load(run.data.users_csv, run.data.trades_csv, run.order)
        run.details["load_seconds"] = {"engine": load_seconds, "duckdb": time.perf_counter() - started}
        log(f"  index {load_seconds:.1f} s, DuckDB {run.details['load_seconds']['duckdb']:.1f} s")

        sides = [Side(SIZE_LABELS[run.size], index, reference, REFERENCE_REPS[run.size])]
        small_import: dict[str, Any] | None = None
        if run.size == "full":
            small, small_import = companion(run, folder)
            sides.append(small)
        log("cold dashboards (engine compute() vs DuckDB SQL) ...")
        gc.collect()
        results = cold(run, sides)
        engine_median, duck_median = cold_rows(run, results[sides[0].label])
        if small_import is not None:
            quick = results[sides[1].label]
            run.details["cold_ms_1M"] = {
                "engine": {pair: [t * 1e3 for t in times] for pair, times in quick.engine.items()},
                "duckdb": {pair: [t * 1e3 for t in times] for pair, times in quick.reference.items()},
            }
            run.details["import_1M"] = small_import
            sides[1].reference.close()
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
                    note=f"1M medians, interleaved with 10M: engine {quick.median_ms(quick.engine):.1f} ms, "
                    f"DuckDB {quick.median_ms(quick.reference):.1f} ms",
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

        log("live dashboard (Engine.result, cached) ...")
        live_rows(run, engine, duck_median)
        log("after importing 10k new trades ...")
        fresh_rows(run, engine, store, reference)
        reference.close()
        engine.close()
        del index, sides

        if args.no_doors:
            for key, what, target in doors.TARGETS:
                run.add(skipped(key, what, target, "--no-doors"))
        else:
            log("doors (REST, MCP stdio, WebSocket) ...")
            for row in doors.measure(store_path, NOW, log):
                run.add(row)

    figures_ok = not run.differences
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
