"""`cymetica-mcp index rebuild|status` as an operator runs them, and the kept file a server then maps."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from cymetica_mcp.cli import main
from cymetica_mcp.engine import Engine, TradeIndex, kept_info
from cymetica_mcp.ingest import import_files
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


def test_status_says_whether_the_kept_index_is_current_behind_or_ahead(
    demo_store: SQLiteStore, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = str(demo_store.path)
    backup = tmp_path / "backup.db"
    demo_store.backup(backup)
    assert main(["--db", db, "index", "rebuild", "--horizon-days", "0"]) == 0
    assert "4,000 trades since 1970-01-01T00:00:00Z" in capsys.readouterr().out
    assert main(["--db", db, "index", "status"]) == 0
    assert "(current)" in capsys.readouterr().out
    users = tmp_path / "users.csv"
    users.write_text("user_id,kind,capital_usdc,created_at\nlate,human,1,2026-01-01T00:00:00Z\n")
    import_files(demo_store, users)
    assert main(["--db", db, "index", "status"]) == 0
    assert f"behind the store's {demo_store.data_version()}" in capsys.readouterr().out
    assert main(["--db", str(backup), "index", "status"]) == 1  # no file beside the backup
    assert main(["--db", db, "index", "rebuild", "--horizon-days", "0"]) == 0
    shutil.copy(demo_store.index_path, backup.with_name(backup.name + ".index"))
    assert main(["--db", str(backup), "index", "status"]) == 0
    assert "ahead of the store's 1: not used" in capsys.readouterr().out


def test_an_import_brings_the_kept_index_up_to_date_unless_told_not_to(
    demo_store: SQLiteStore, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = str(demo_store.path)
    with demo_store.read() as conn:
        user = conn.execute("SELECT user_id FROM users LIMIT 1").fetchone()[0]
    trades = tmp_path / "t.csv"
    trades.write_text(f"trade_id,user_id,ts,volume_usdc,pnl_usdc\nk1,{user},2026-03-20T12:00:00Z,5,1\n")
    assert main(["--db", db, "import", "--trades", str(trades)]) == 0
    assert "kept index" not in capsys.readouterr().out  # none kept: nothing to bring up to date
    assert main(["--db", db, "index", "rebuild"]) == 0
    more = tmp_path / "more.csv"
    more.write_text(f"trade_id,user_id,ts,volume_usdc,pnl_usdc\nk2,{user},2026-03-20T12:00:01Z,7,-1\n")
    assert main(["--db", db, "import", "--trades", str(more)]) == 0
    assert f"brought to data version {demo_store.data_version()} (4,002 trades)" in capsys.readouterr().out
    engine = Engine(demo_store, clock=lambda: NOW, horizon=120 * 86_400, keep_index=True)
    assert engine.index().trade_count == 4_002 and engine.load_source == "kept"
    assert engine.dashboard(Filter.ALL, Period.H24) == Engine(demo_store, clock=lambda: NOW).dashboard(
        Filter.ALL, Period.H24
    )
    engine.close()
    last = tmp_path / "last.csv"
    last.write_text(f"trade_id,user_id,ts,volume_usdc,pnl_usdc\nk3,{user},2026-03-20T12:00:02Z,9,2\n")
    assert main(["--db", db, "import", "--no-index", "--trades", str(last)]) == 0
    info = kept_info(demo_store)
    assert info is not None and info.version == demo_store.data_version() - 1
