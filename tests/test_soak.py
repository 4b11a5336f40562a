"""The soak (`make soak`, benchmarks/soak): its two-minute run, and its checks shown able to fail.

The run is `python -m benchmarks.soak` as `make soak` starts it, in a subprocess: a real `cymetica-mcp
serve` on 127.0.0.1, every door under load at once, then the proof. CYMETICA_SOAK_SECONDS shortens it
for a local try (CI runs the full 120 s).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.soak import Imported, Recorder, Sequence, verify
from cymetica_mcp.engine import open_engine
from cymetica_mcp.ingest import Simulator, import_files
from cymetica_mcp.models import Filter, Period
from cymetica_mcp.store import SQLiteStore
from tests.conftest import NOW

ROOT = Path(__file__).resolve().parents[1]
SECONDS = float(os.environ.get("CYMETICA_SOAK_SECONDS", "120"))
OVERHEAD = 420.0
"""Seconds a soak takes beyond its load: the store, 260 clients arriving and leaving, the recheck."""


@pytest.mark.timeout(SECONDS + OVERHEAD + 60)
def test_every_door_at_once_for_two_minutes(tmp_path: Path) -> None:
    output = tmp_path / "soak.json"
    run = subprocess.run(
        [sys.executable, "-m", "benchmarks.soak", "--seconds", f"{SECONDS:g}", "--json", str(output)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=SECONDS + OVERHEAD,
        check=False,
    )
    assert output.exists(), f"no summary (exit {run.returncode}):\n{run.stdout[-4000:]}\n{run.stderr[-4000:]}"
    summary = json.loads(output.read_text())
    failed = [check for check in summary["checks"] if not check["ok"]]
    assert not failed and run.returncode == 0, run.stdout[-6000:]
    # The load was what it says: every client connected and every door answered.
    assert summary["requests"]["ws"]["connected"] >= 200
    assert summary["requests"]["rest"]["200"] > 0 and summary["requests"]["mcp"]["call"] > 0
    assert summary["verification"]["deliveries_checked"] == sum(summary["dashboards_received"].values())


def _imports() -> list[str]:
    """A simulated second of trading as (users, trades) JSON Lines."""
    batch = Simulator(5, NOW, 20).batch(NOW - 600)
    return [batch.users, batch.trades]


def _dashboard(store: SQLiteStore, filter: str, period: str) -> dict[str, object]:
    engine = open_engine(store, now=NOW)
    try:
        wire: dict[str, object] = json.loads(
            json.dumps(engine.dashboard(Filter(filter), Period(period)).to_wire())
        )
        return wire
    finally:
        engine.close()


def _after_imports(base: SQLiteStore, folder: Path, bodies: list[str]) -> SQLiteStore:
    """A copy of `base` with `bodies` (users, then trades) imported: the state a client would see."""
    base.backup(folder / "after.db")
    after = SQLiteStore(folder / "after.db")
    users, trades = folder / "u.jsonl", folder / "t.jsonl"
    users.write_text(bodies[0])
    trades.write_text(bodies[1])
    import_files(after, users=users)
    import_files(after, trades=trades)
    return after


def test_the_recheck_finds_a_wrong_figure_and_accepts_the_right_ones(
    demo_store: SQLiteStore, tmp_path: Path
) -> None:
    start = demo_store.data_version()
    bodies = _imports()
    after = _after_imports(demo_store, tmp_path, bodies)
    imports = [
        Imported("users", bodies[0], start + 1, True),
        Imported("trades", bodies[1], start + 2, True),
        Imported("trades", bodies[1], start + 2, False),  # a retry: no new version
    ]
    right = _dashboard(after, "agents", "24h")
    recorder = Recorder()
    recorder.dashboard("rest", "all", "7d", start, _dashboard(demo_store, "all", "7d"))
    recorder.dashboard("ws", "agents", "24h", start + 2, right)
    recorder.dashboard("mcp", "agents", "24h", start + 2, right)
    (tmp_path / "ok").mkdir()
    found = verify(demo_store.path, imports, NOW, recorder, tmp_path / "ok")
    assert (found.problem_count, found.dashboards_checked, found.deliveries_checked) == (0, 2, 3)

    wrong = json.loads(json.dumps(right))
    wrong["metrics"]["active_users"]["value"] += 1
    recorder.dashboard("ws", "agents", "24h", start + 2, wrong)
    (tmp_path / "wrong").mkdir()
    found = verify(demo_store.path, imports, NOW, recorder, tmp_path / "wrong")
    assert found.problem_count == 1
    assert "agents/24h at data version" in found.problems[0] and "(ws x1)" in found.problems[0]
    assert "metrics.active_users.value" in found.problems[0]


def test_the_recheck_finds_a_dashboard_of_the_wrong_version(demo_store: SQLiteStore, tmp_path: Path) -> None:
    start = demo_store.data_version()
    bodies = _imports()
    after = _after_imports(demo_store, tmp_path, bodies)
    imports = [Imported("users", bodies[0], start + 1, True), Imported("trades", bodies[1], start + 2, True)]
    recorder = Recorder()
    recorder.dashboard(
        "rest", "all", "24h", start, _dashboard(after, "all", "24h")
    )  # newer figures, older version
    (tmp_path / "run").mkdir()
    found = verify(demo_store.path, imports, NOW, recorder, tmp_path / "run")
    assert found.problem_count == 1 and f"all/24h at data version {start} (rest x1)" in found.problems[0]


def test_the_recheck_stops_where_the_replay_leaves_the_server(
    demo_store: SQLiteStore, tmp_path: Path
) -> None:
    start = demo_store.data_version()
    bodies = _imports()
    imports = [Imported("users", bodies[0], start + 1, True), Imported("trades", bodies[1], start + 5, True)]
    recorder = Recorder()
    recorder.dashboard("rest", "all", "24h", start + 5, _dashboard(demo_store, "all", "24h"))
    (tmp_path / "run").mkdir()
    found = verify(demo_store.path, imports, NOW, recorder, tmp_path / "run")
    assert found.problems[0].startswith("the replay diverged at import 1 (trades)")


def test_a_websocket_sequence_going_back_is_caught() -> None:
    sequence = Sequence()
    for version in (3, 3, 4, 2, 4, 3, 5):
        sequence.see(version)
    assert sequence.backwards == [(4, 2), (4, 3)]
    assert (sequence.last, sequence.highest, sequence.updates) == (5, 5, 7)
