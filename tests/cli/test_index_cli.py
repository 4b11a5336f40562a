"""`cymetica-mcp index rebuild|status` as an operator runs them, and the kept file a server then maps."""

from __future__ import annotations

from cymetica_mcp.engine import Engine, TradeIndex, kept_info
from cymetica_mcp.models import Filter, Period
from cymetica_mcp.store import SQLiteStore
from tests.cli.test_cli import cli
from tests.conftest import NOW, NOW_ISO


def test_rebuild_then_status_then_a_server_maps_it(demo_store: SQLiteStore) -> None:
    db = str(demo_store.path)
    missing = cli("--db", db, "index", "status")
    assert missing.returncode == 1 and "no kept index" in missing.stdout
    built = cli("--db", db, "index", "rebuild", env={"CYMETICA_NOW": NOW_ISO})
    assert built.returncode == 0, built.stderr
    assert (
        "4,000 trades since" in built.stdout and f"data version {demo_store.data_version()}" in built.stdout
    )
    status = cli("--db", db, "index", "status")
    assert status.returncode == 0 and "(current)" in status.stdout and "horizon 120 days" in status.stdout
    engine = Engine(demo_store, clock=lambda: NOW, horizon=120 * 86_400, keep_index=True)
    assert engine.dashboard(Filter.AGENTS, Period.D7) == Engine(demo_store, clock=lambda: NOW).dashboard(
        Filter.AGENTS, Period.D7
    )
    assert engine.load_source == "kept"
    engine.close()
    info = kept_info(demo_store)
    assert info is not None and info.trades == TradeIndex.load(demo_store).trade_count


def test_a_horizon_shorter_than_90_days_is_refused_with_what_is_accepted(demo_store: SQLiteStore) -> None:
    done = cli("--db", str(demo_store.path), "index", "rebuild", "--horizon-days", "30")
    assert done.returncode == 2
    assert "--horizon-days 30" in done.stderr and "0 (all history) or at least 90" in done.stderr
    assert kept_info(demo_store) is None
