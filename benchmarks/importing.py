"""The import targets (rate, against sqlite3's .import of the same file) and the memory targets."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path
from typing import Any, Final

from benchmarks.data import NOW, keep_store, remove_store, settle
from benchmarks.report import absolute, info, skipped, versus
from benchmarks.suite import Run, probe

SQLITE_HINT: Final = "install it (Debian/Ubuntu: apt-get install sqlite3) to measure this reference"


def measure_import(run: Run, store_path: Path) -> dict[str, Any]:
    """Import users.csv then time trades.csv into a new store, in a process of its own."""
    remove_store(store_path)
    run.log(f"import: {run.data.trades_csv.name} ({run.data.size.trades:,} trades) into a new store ...")
    result = probe("import", str(store_path), str(run.data.users_csv), str(run.data.trades_csv))
    settle(store_path)
    if not run.data.has_store():
        keep_store(store_path, run.data)  # for `python -m benchmarks.data` and profiling sessions
    run.log(f"  {result['trades']:,} trades in {result['seconds']:.1f} s = {result['rate']:,.0f} trades/s")
    return result


def measure_sqlite_cli(run: Run, folder: Path) -> dict[str, Any] | None:
    """The `sqlite3` command line's `.import` of the same trades file into a bare table (None if absent)."""
    cli = shutil.which("sqlite3")
    if cli is None:
        run.log(f"import reference: no sqlite3 command line on PATH, skipped; {SQLITE_HINT}")
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
