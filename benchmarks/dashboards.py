"""The dashboard targets: cold (engine compute() vs DuckDB SQL), growth, live (cached) and fresh after an
import. Each side runs in a process of its own, one after the other (`benchmarks.sides`); this module
compares their dashboards and turns their timings into rows."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from benchmarks.data import SIZES, dataset, remove_store
from benchmarks.importing import measure_import
from benchmarks.reference_duckdb import PAIRS
from benchmarks.report import absolute, info, median, versus
from benchmarks.sides import run_side
from benchmarks.suite import Run

REFERENCE_REPS: Final = {"quick": 5, "full": 3, "100m": 3}
COLD_MEDIAN: Final = {"100m": 0.01}
"""The cold median's limit against DuckDB's (issue 16 at 100M); 0.25 at the other sizes (issue 6)."""
FRESH_WORST_MS: Final = {"100m": 50.0}
"""The worst fresh dashboard after a 10k import (issue 16 at 100M); 20 ms at the other sizes."""


@dataclass(frozen=True, slots=True)
class Cold:
    """Per-pair timings (seconds) of the engine's compute() and DuckDB's query, over repetitions."""

    engine: dict[str, list[float]]
    reference: dict[str, list[float]]
    active: dict[str, int]
    """Each pair's active users (its Active Users card): what a dashboard's cost follows."""

    def medians(self, which: dict[str, list[float]]) -> dict[str, float]:
        """Each pair's median time."""
        return {pair: median(times) for pair, times in which.items()}

    def median_ms(self, which: dict[str, list[float]]) -> float:
        """The median over the nine pairs of each pair's median time, in ms."""
        return median(list(self.medians(which).values())) * 1e3


def sides(
    run: Run, store: Path, users: Path, trades: Path, reps: int, extra: Path | None, live: bool
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The engine's side over `store`, then DuckDB's over the CSV files, each in a process of its own
    (started once the other has exited, so they never share memory)."""
    folder = store.parent
    more = ["--extra", str(extra)] if extra is not None else []
    run.log(f"  the engine, in a process of its own ({store.name}) ...")
    mine = run_side(["engine", str(store), *more, *(["--live"] if live else [])], folder / "engine-side.json")
    run.log(f"  DuckDB, in another process ({trades.parent.name}) ...")
    theirs = run_side(
        ["duckdb", str(users), str(trades), "--reps", str(reps), "--order", run.order, *more],
        folder / "duckdb-side.json",
    )
    return mine, theirs


def cold(run: Run, label: str, mine: dict[str, Any], theirs: dict[str, Any]) -> Cold:
    """The cold timings of both sides, with every dashboard of the engine compared with DuckDB's."""
    for f, p in PAIRS:
        pair = f"{f}/{p}"
        run.compare(f"{label} {pair}", mine["boards"][pair], theirs["boards"][pair])
        run.log(
            f"  {label:5} {pair:12} engine {median(mine['cold'][pair]) * 1e3:8.1f} ms   "
            f"DuckDB {median(theirs['cold'][pair]) * 1e3:8.1f} ms"
        )
    return Cold(mine["cold"], theirs["cold"], mine["active"])


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
    apart = "engine and DuckDB each in a process of its own, one after the other"
    run.add(
        versus(
            "cold_median",
            "cold dashboard, median of 9",
            mine_median,
            "ms",
            theirs_median,
            "(DuckDB)",
            COLD_MEDIAN.get(run.size, 0.25),
            note=apart,
        )
    )
    run.add(
        versus("cold_worst", "cold dashboard, worst of 9", mine_worst, "ms", theirs_worst, "(DuckDB)", 0.5)
    )
    return mine_median, theirs_median


def active_growth(big: Cold, small: Cold) -> tuple[float, float]:
    """How many more active users the big side's dashboards have, and how much more time each costs,
    as medians over the pairs of big / small (pairs with no active user on either side left out)."""
    pairs = [pair for pair in big.active if big.active[pair] and small.active.get(pair)]
    users = median([big.active[pair] / small.active[pair] for pair in pairs])
    each = median(
        [
            (median(big.engine[pair]) / big.active[pair]) / (median(small.engine[pair]) / small.active[pair])
            for pair in pairs
        ]
    )
    return users, each


def live_rows(run: Run, live: dict[str, Any], reference_ms: float) -> None:
    """The cached live dashboard: Engine.result(now=None) again and again on an unchanged store."""
    times = sorted(live["seconds"])
    cached = live["cached"]
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


def fresh_rows(run: Run, mine: dict[str, Any], theirs: dict[str, Any]) -> None:
    """The nine fresh dashboards after the engine's side imported 10k new trades into its store (and
    DuckDB's side appended them to its tables).

    The first request after an import pays the index refresh: `engine.index()` was timed on its own
    (it is exactly what `result()` does first), then each of the nine `result()` calls."""
    times = list(mine["seconds"].values())
    reference_times = list(theirs["seconds"].values())
    for f, p in PAIRS:
        pair = f"{f}/{p}"
        run.compare(f"after +10k {pair}", mine["boards"][pair], theirs["boards"][pair])
    refresh, import_seconds = mine["refresh_seconds"], mine["import_seconds"]
    run.details["after_import"] = {
        "trades_inserted": mine["trades_inserted"],
        "import_seconds": import_seconds,
        "refresh_seconds": refresh,
        "dashboards_ms": {pair: t * 1e3 for pair, t in mine["seconds"].items()},
        "duckdb_ms": {pair: t * 1e3 for pair, t in theirs["seconds"].items()},
    }
    ref_median = median(reference_times) * 1e3
    first = (refresh + times[0]) * 1e3
    run.log(
        f"  +{mine['trades_inserted']:,} trades imported in {import_seconds * 1e3:.0f} ms; index refresh "
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
            FRESH_WORST_MS.get(run.size, 20.0),
            reference=ref_median,
            reference_what="(DuckDB median)",
            note="the 9 in order: " + ", ".join(f"{t * 1e3:.1f}" for t in times) + " ms",
        )
    )


def companion(run: Run, folder: Path) -> tuple[Cold, dict[str, Any]]:
    """At full size, the 1M dataset for growth and import memory, measured in this same run (its
    engine and DuckDB sides in processes of their own too)."""
    small = Run("quick", dataset(SIZES["quick"], run.data.seed, run.log), run.log, run.order)
    store_path = folder / "quick-run.db"
    run.log("growth: the 1M dataset, measured in this same run ...")
    imported = measure_import(small, store_path)
    mine, theirs = sides(
        run, store_path, small.data.users_csv, small.data.trades_csv, REFERENCE_REPS["quick"], None, False
    )
    remove_store(store_path)
    return cold(run, "1M", mine, theirs), imported
