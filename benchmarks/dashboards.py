"""The dashboard targets: cold (engine compute() vs DuckDB SQL), growth, live (cached) and fresh after an import."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from benchmarks.data import NOW, SIZES, dataset, remove_store
from benchmarks.importing import measure_import
from benchmarks.reference_duckdb import PAIRS, Reference
from benchmarks.report import absolute, info, median, versus
from benchmarks.suite import Run
from cymetica_mcp.engine import Engine, TradeIndex, compute
from cymetica_mcp.ingest import import_files
from cymetica_mcp.models import Filter, Period
from cymetica_mcp.store import SQLiteStore

ENGINE_REPS: Final = 5
REFERENCE_REPS: Final = {"quick": 5, "full": 3, "100m": 3}
LIVE_ROUNDS: Final = 200


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
    active: dict[str, int]
    """Each pair's active users (its Active Users card): what a dashboard's cost follows."""

    def medians(self, which: dict[str, list[float]]) -> dict[str, float]:
        """Each pair's median time."""
        return {pair: median(times) for pair, times in which.items()}

    def median_ms(self, which: dict[str, list[float]]) -> float:
        """The median over the nine pairs of each pair's median time, in ms."""
        return median(list(self.medians(which).values())) * 1e3


def cold(run: Run, sides: list[Side]) -> dict[str, Cold]:
    """Time the nine cold dashboards of each side, engine and DuckDB interleaved pair by pair (so a
    noisy neighbour hits both alike), and compare their figures."""
    results = {side.label: Cold({}, {}, {}) for side in sides}
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
            results[side.label].active[pair] = int(board.metrics.active_users.value)
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


def fresh_rows(run: Run, engine: Engine, store: SQLiteStore, reference: Reference) -> None:
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
    index = TradeIndex.load(SQLiteStore(store_path))
    reference = Reference.load(small.data.users_csv, small.data.trades_csv, run.order)
    remove_store(store_path)
    return Side("1M", index, reference, REFERENCE_REPS["quick"]), imported
