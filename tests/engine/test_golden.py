"""Hand-worked dashboards (fixtures/*/expected.json, arithmetic in fixtures/README.md) vs engine and reference.

Each fixture folder holds `users.csv`, `trades.csv` and `expected.json`, whose figures were worked out by
hand from the contract, not produced by any program. The engine must show them (loaded through the real
import into a real SQLite file and a real PostgreSQL database) and so must the reference, so the reference is checked too.

A case lists the metric cards and distribution in full, the first and last bucket start, and the
series points that hold something; every series point it does not list must be all zero.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from cymetica_mcp.engine import Engine
from cymetica_mcp.ingest import import_files
from cymetica_mcp.models import Filter, Period
from cymetica_mcp.store import Store
from tests import reference as ref

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
FOLDERS = sorted(p.parent for p in FIXTURES.glob("*/expected.json"))
RANGES = [label for label, _, _ in ref.RANGES]
BUCKETS = {"24h": 24, "7d": 28, "30d": 30}
EMPTY: dict[str, dict[str, Any]] = {  # a series point where nothing happened (counts are integers)
    "volume_over_time": {"total_volume": 0.0, "bot_volume": 0.0, "human_volume": 0.0, "trade_count": 0},
    "user_activity": {"total_users": 0, "bot_users": 0, "human_users": 0},
}


def cases() -> list[Any]:
    out = []
    for folder in FOLDERS:
        for case in json.loads((folder / "expected.json").read_text())["cases"]:
            out.append(
                pytest.param(
                    folder, case, id=f"{folder.name}-{case['filter']}-{case['period']}-{case['now']}"
                )
            )
    return out


def test_every_fixture_is_there() -> None:
    assert {p.name for p in FOLDERS} >= {"edges", "retention", "rounding"}
    assert len(cases()) >= 12


def check_against_hand_figures(board: dict[str, Any], case: dict[str, Any], who: str) -> None:
    """Compare one dashboard with the hand-worked figures of one case; `who` names the side in messages."""
    board = json.loads(json.dumps(board))  # as a client reads it
    problems = ref.differences(board["metrics"], case["metrics"], "metrics")
    distribution = [
        {"range": r, "count": c} for r, c in zip(RANGES, case["profitability_distribution"], strict=True)
    ]
    problems += ref.differences(
        board["profitability_distribution"], distribution, "profitability_distribution"
    )
    n = BUCKETS[case["period"]]
    for series in ("volume_over_time", "user_activity"):
        points = board[series]
        if len(points) != n:
            problems.append(f"{series}: {len(points)} points, want {n}")
            continue
        problems += ref.differences(points[0]["timestamp"], case["first_bucket"], f"{series}[0].timestamp")
        problems += ref.differences(points[-1]["timestamp"], case["last_bucket"], f"{series}[-1].timestamp")
        listed = case[series]
        for i, point in enumerate(points):
            if str(i) in listed:
                problems += ref.differences(point, listed[str(i)], f"{series}[{i}]")
            else:
                figures = {k: v for k, v in point.items() if k != "timestamp"}
                problems += ref.differences(figures, EMPTY[series], f"{series}[{i}]")
    assert not problems, f"{who} disagrees with the hand-worked figures:\n" + "\n".join(problems)


@pytest.mark.parametrize(("folder", "case"), cases())
def test_engine_shows_the_hand_worked_figures(any_store: Store, folder: Path, case: dict[str, Any]) -> None:
    store = any_store  # both backends: the figures are the store's rows, whichever database holds them
    import_files(store, users=folder / "users.csv", trades=folder / "trades.csv")
    engine = Engine(store)
    try:
        board = engine.dashboard(Filter(case["filter"]), Period(case["period"]), ref.seconds_of(case["now"]))
        check_against_hand_figures(board.to_wire(), case, "engine")
    finally:
        engine.close()


@pytest.mark.parametrize(("folder", "case"), cases())
def test_reference_shows_the_hand_worked_figures(folder: Path, case: dict[str, Any]) -> None:
    users = ref.read_users_csv(folder / "users.csv")
    trades = ref.read_trades_csv(folder / "trades.csv")
    board = ref.dashboard(users, trades, case["filter"], case["period"], ref.seconds_of(case["now"]))
    check_against_hand_figures(board, case, "reference")


def test_the_fixtures_hold_ties_that_float_or_half_even_rounding_gets_wrong() -> None:
    """Guard the fixtures' purpose: Python's round() on floats gives the other answer for each of these."""
    wrong = {
        2.675: (2, 2.67),  # rounding: bucket 23 wants 2.68
        2.795: (2, 2.79),  # rounding: agents volume wants 2.8
        0.125: (2, 0.12),  # edges: human_volume wants 0.13
        20.625: (2, 20.62),  # edges: bucket total wants 20.63
        11.625: (2, 11.62),  # edges: humans volume wants 11.63
        312.625: (2, 312.62),  # edges: all 7d avg capital wants 312.63
        6.25: (1, 6.2),  # retention: humans retention wants 6.3
        181.25: (1, 181.2),  # edges: agents volume change wants 181.3
    }
    for x, (places, floaty) in wrong.items():
        assert round(x, places) == floaty
