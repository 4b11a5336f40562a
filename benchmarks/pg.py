"""The PostgreSQL targets of issue 17, each a ratio or a bound measured in this run, on a throwaway
cluster the benchmark owns (benchmarks/pg_cluster.py):

    python -m benchmarks.pg --size quick   # 1M trades: import, dashboards, replicas (a few minutes)
    python -m benchmarks.pg --size full    # 10M trades, plus the 1M import
    python -m benchmarks.run ...           # runs this part last (--no-postgres leaves it out)

- import (benchmarks/pg_import.py): ours >= 0.5 x `psql \\copy` into a bare table, at 1M and 10M;
- dashboards (benchmarks/pg_serve.py): a PostgreSQL-backed server against a SQLite-backed one over
  the same rows: cold and after an import within 1.2 x, cached within 1.1 x;
- replicas (benchmarks/pg_replicas.py): commit -> every replica's push, p50 <= 250 ms, worst <= 1 s,
  with 2 and with 4 replicas.

Without PostgreSQL (`apt-get install -y postgresql`), every row is skipped with that reason. A part
that breaks off is reported as failed rows with the reason; the other parts are still measured.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from benchmarks import pg_cluster, pg_import, pg_replicas, pg_serve
from benchmarks.data import NOW, SIZES, Dataset, copy_store, dataset, ensure_store, remove_store
from benchmarks.report import Row, describe, failed, machine, skipped, table, write_json

RESULTS: Final = Path(__file__).resolve().parent / "results"
IMPORT_TARGET: Final = f">= {pg_import.TARGET:g} x ref"
TARGETS: Final[tuple[tuple[str, str, str], ...]] = (
    ("pg_import_1M", "PostgreSQL import, 1M trades (validated, indexed)", IMPORT_TARGET),
    ("pg_import_10M", "PostgreSQL import, 10M trades (validated, indexed)", IMPORT_TARGET),
    ("pg_cold", "cold REST dashboard p50, PostgreSQL vs SQLite", f"<= {pg_serve.COLD_LIMIT:g} x ref"),
    ("pg_cached", "cached REST dashboard p50, PostgreSQL vs SQLite", f"<= {pg_serve.CACHED_LIMIT:g} x ref"),
    ("pg_after_import", "after +10k trades: commit -> REST shows it", f"<= {pg_serve.COLD_LIMIT:g} x ref"),
    ("pg_catch_up_2", "replica catch-up p50, 2 replicas", "<= 250 ms"),
    ("pg_catch_up_2_worst", "replica catch-up worst, 2 replicas", "<= 1,000 ms"),
    ("pg_catch_up_4", "replica catch-up p50, 4 replicas", "<= 250 ms"),
    ("pg_catch_up_4_worst", "replica catch-up worst, 4 replicas", "<= 1,000 ms"),
)
Log = Callable[[str], None]


def skipped_rows(reason: str, size: str = "full") -> list[Row]:
    """Every PostgreSQL row, skipped for `reason`."""
    return [skipped(key, what, target, reason) for key, what, target in _targets(size)]


def _targets(size: str) -> tuple[tuple[str, str, str], ...]:
    return TARGETS if size != "quick" else tuple(t for t in TARGETS if t[0] != "pg_import_10M")


def measure(size: str, data: Dataset, folder: Path, log: Log) -> tuple[list[Row], dict[str, Any]]:
    """Every PostgreSQL row for `size` over `data` (its pristine SQLite store serves the comparison)."""
    reason = pg_cluster.missing()
    if reason is not None:
        log(f"PostgreSQL targets skipped: {reason}")
        return skipped_rows(reason, size), {"skipped": reason}
    rows: dict[str, Row] = {}
    details: dict[str, Any] = {"psql": pg_cluster.psql_version()}
    folder.mkdir(parents=True, exist_ok=True)

    def part(name: str, keys: list[str], action: Callable[[], None]) -> None:
        try:
            action()
        except Exception as exc:  # the part's rows fail with the reason; the other parts go on
            log(f"  {name}: FAILED: {describe(exc)}")
            details.setdefault("errors", {})[name] = describe(exc)
            for key, what, target in TARGETS:
                if key in keys and key not in rows:
                    rows[key] = failed(key, what, target, describe(exc))

    log("PostgreSQL: a throwaway cluster (durable settings) ...")
    with pg_cluster.server() as server:
        details["server"] = {"version": server.version(), "settings": server.settings}
        kept: dict[str, str | None] = {"url": None}

        def imports() -> None:
            sets = [data] if size == "quick" else [data, dataset(SIZES["quick"], data.seed, log)]
            for each in sets:
                label = f"{each.size.trades / 1e6:g}M"
                log(f"PostgreSQL import {label}: ours vs psql \\copy, alternating ...")
                figures, url = pg_import.measure(server, each, log, keep=each is data)
                details[f"import_{label}"] = figures
                if url is not None:
                    kept["url"] = url
                rows[f"pg_import_{label}"] = pg_import.row(figures)

        part("import", ["pg_import_1M", "pg_import_10M"], imports)
        url = kept["url"]
        if url is None:  # the import part failed: a database for the others all the same
            url = server.database()
            from cymetica_mcp.ingest import import_files
            from cymetica_mcp.store import open_store

            import_files(open_store(url), data.users_csv, data.trades_csv)
        # after a bulk load, what PostgreSQL's manual says to do (autovacuum would, within a minute or so):
        # the planner's statistics, without which a replica's refresh reads 10k new rows in 8 ms, not 1.5
        server.psql(url, "ANALYZE")
        sqlite_copy = folder / "pg-compare.db"

        def dashboards() -> None:
            log("PostgreSQL-backed server vs SQLite-backed server, same rows ...")
            copy_store(ensure_store(data, log), sqlite_copy)
            found, details["dashboards"] = pg_serve.measure(
                sqlite_copy, url, data.extra_csv, folder, NOW, log
            )
            rows.update((row.key, row) for row in found)

        part("dashboards", ["pg_cold", "pg_cached", "pg_after_import"], dashboards)
        for suffix in ("", ".index"):
            remove_store(Path(str(sqlite_copy) + suffix))

        def replicas() -> None:
            log("replica catch-up: serve processes on one database, a WebSocket client each ...")
            found, details["replicas"] = pg_replicas.measure(url, folder, data.users_csv, NOW, log)
            rows.update((row.key, row) for row in found)

        part("replicas", [key for key, _, _ in TARGETS if key.startswith("pg_catch_up")], replicas)
    ordered = [rows[key] for key, _, _ in _targets(size) if key in rows]
    extra = [row for key, row in rows.items() if key not in {k for k, _, _ in TARGETS}]
    return ordered + extra, details


def main(argv: list[str] | None = None) -> int:
    """Run the PostgreSQL part alone; write benchmarks/results/pg-<size>-<timestamp>.json."""
    parser = argparse.ArgumentParser(description="cymetica-mcp PostgreSQL benchmarks (issue 17).")
    parser.add_argument("--size", choices=("quick", "full"), default="quick")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for the JSON results")
    parser.add_argument("--strict", action="store_true", help="exit 2 when a target fails")
    args = parser.parse_args(argv)
    begun = time.perf_counter()
    load_before = os.getloadavg()
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")

    def log(message: str) -> None:
        print(f"[{time.perf_counter() - begun:7.1f}s] {message}", flush=True)

    data = dataset(SIZES[args.size], log=log)
    import tempfile

    with tempfile.TemporaryDirectory(dir=data.folder, prefix="pg-run-") as scratch:
        rows, details = measure(args.size, data, Path(scratch), log)
    print(
        f"\nnote: 1-minute load average {load_before[0]:.1f} at the start, {os.getloadavg()[0]:.1f} at the end, "
        f"on {os.cpu_count()} cores (each ratio compares two figures measured side by side)"
    )
    print(f"\ncymetica-mcp PostgreSQL benchmarks, size {args.size} ({data.size.trades:,} trades)")
    print(table(rows))
    out = args.out / f"pg-{args.size}-{stamp}.json"
    write_json(
        out,
        {
            "size": args.size,
            "trades": data.size.trades,
            "users": data.size.users,
            "now": "2026-03-20T12:34:56Z",
            "started": stamp,
            "seconds": time.perf_counter() - begun,
            "command": " ".join([Path(sys.executable).name, "-m", "benchmarks.pg", *(argv or sys.argv[1:])]),
            "machine": machine(),
            "load_average": {"start": load_before, "end": os.getloadavg()},
            "details": details,
        },
        rows,
    )
    print(f"results: {out} ({time.perf_counter() - begun:.0f} s)")
    if args.strict and any(row.passed is False for row in rows):
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
