"""The engine over a real store: incremental index == fresh index, caching, freshness across processes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from cymetica_mcp.demo import DemoSpec, write_demo
from cymetica_mcp.engine import Engine
from cymetica_mcp.index import TradeIndex
from cymetica_mcp.ingest import import_files
from cymetica_mcp.metrics import compute
from cymetica_mcp.models import Filter, Period
from cymetica_mcp.store import Store
from cymetica_mcp.windows import DAY, HOUR

from .conftest import NOW

PAIRS = [(f, p) for f in Filter for p in Period]


def a_human(store: Store) -> str:
    with store.read() as conn:
        return str(conn.execute("SELECT user_id FROM users WHERE kind = 0 ORDER BY id LIMIT 1").fetchone()[0])


def every_dashboard(index: TradeIndex, now: int) -> list[dict[str, object]]:
    return [compute(index, f, p, now).to_wire() for f, p in PAIRS]


def test_an_index_extended_import_by_import_equals_one_built_at_once(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    users, trades = write_demo(DemoSpec(users=60, trades=3_000, days=65, seed=11), NOW, tmp_path / "a")
    lines = trades.read_text().splitlines(keepends=True)
    header, body = lines[0], lines[1:]
    import_files(store, users)
    index = TradeIndex.load(store)
    for part, chunk in enumerate((body[:1000], body[1000:1001], body[1001:])):
        path = tmp_path / f"part{part}.csv"
        path.write_text(header + "".join(chunk))
        import_files(store, trades=path)
        index = index.refreshed(store)
    # a kind change of users with trades, and a brand-new user, in a later import
    with store.read() as conn:
        human, agent = (
            conn.execute(f"SELECT user_id FROM users WHERE kind = {k} ORDER BY id LIMIT 1").fetchone()[0]
            for k in (0, 1)
        )
    flipped = tmp_path / "flip.csv"
    flipped.write_text(
        "user_id,kind,capital_usdc,created_at\n"
        f"{human},agent,10,2026-01-01T00:00:00Z\n{agent},human,0,2026-01-01T00:00:00Z\n"
        "newbie,human,50,2026-01-01T00:00:00Z\n"
    )
    assert index.kind.tolist().count(0) > 0
    more = tmp_path / "more.csv"
    more.write_text(
        header + f"late1,newbie,2026-03-20T12:00:00Z,10,1\nlate2,{human},2026-03-20T12:00:01Z,5,-1\n"
    )
    report = import_files(store, flipped, more)
    assert (report.users_updated, report.users_inserted) == (2, 1)
    index = index.refreshed(store)
    fresh = TradeIndex.load(store)
    assert index.version == fresh.version == store.data_version()
    for now in (NOW, NOW - 7 * DAY - 1234, NOW + 3 * HOUR):
        assert every_dashboard(index, now) == every_dashboard(fresh, now)


def test_every_series_has_exactly_n_points_even_on_an_empty_store(store: Store) -> None:
    engine = Engine(store)
    for f, p in PAIRS:
        d = engine.dashboard(f, p, NOW)
        n = {Period.H24: 24, Period.D7: 28, Period.D30: 30}[p]
        assert len(d.volume_over_time) == len(d.user_activity) == n
        assert [b.count for b in d.profitability_distribution] == [0] * 8
        assert d.metrics.avg_roi.value == 0.0 and d.metrics.avg_roi.change is None
    engine.close()


def test_a_live_dashboard_is_cached_only_while_fresh(demo_store: Store, tmp_path: Path) -> None:
    ticks = iter(range(NOW, NOW + 1000))
    engine = Engine(demo_store, clock=lambda: next(ticks), max_age=3600)
    first = engine.result(Filter.ALL, Period.H24)
    again = engine.result(Filter.ALL, Period.H24)
    assert again.cached and again.dashboard == first.dashboard and again.now == first.now
    trades = tmp_path / "new.csv"
    trades.write_text(
        f"trade_id,user_id,ts,volume_usdc,pnl_usdc\nfresh1,{a_human(demo_store)},2026-03-20T12:34:00Z,1,0\n"
    )
    import_files(demo_store, trades=trades)
    after = engine.result(Filter.ALL, Period.H24)
    assert not after.cached and after.data_version == first.data_version + 1
    engine.max_age = 0
    assert not engine.result(Filter.ALL, Period.H24).cached
    engine.close()


def test_an_import_by_another_process_shows_in_the_next_dashboard(demo_store: Store, tmp_path: Path) -> None:
    engine = Engine(demo_store, max_age=3600)
    before = engine.dashboard(Filter.HUMANS, Period.H24, NOW)
    trades = tmp_path / "cli.csv"
    trades.write_text(
        f"trade_id,user_id,ts,volume_usdc,pnl_usdc\ncli1,{a_human(demo_store)},2026-03-20T12:30:00Z,1000,0\n"
    )
    cli = [
        sys.executable,
        "-m",
        "cymetica_mcp",
        "--db",
        str(demo_store.path),
        "import",
        "--trades",
        str(trades),
    ]
    subprocess.run(cli, check=True, capture_output=True)
    after = engine.dashboard(Filter.HUMANS, Period.H24, NOW)
    assert after.metrics.trading_volume.value == pytest.approx(before.metrics.trading_volume.value + 1000)
    assert after.volume_over_time[-1].trade_count == before.volume_over_time[-1].trade_count + 1
    engine.close()
