"""The engine over a real store: incremental index == fresh index, caching, freshness across processes
(the last two on SQLite and PostgreSQL)."""

from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from cymetica_mcp.engine import Engine, TradeIndex, _rollups, _runs
from cymetica_mcp.engine import _index as index_module
from cymetica_mcp.engine._metrics import ROI_BOUNDS, PeriodState, _roi_slots, compute
from cymetica_mcp.exact import exact_sum
from cymetica_mcp.ingest import DemoSpec, import_files, write_demo
from cymetica_mcp.models import Filter, Period
from cymetica_mcp.store import SQLiteStore, Store
from cymetica_mcp.windows import DAY, HOUR, iso
from tests.backends import location, rows
from tests.conftest import NOW, import_command

PAIRS = [(f, p) for f in Filter for p in Period]


def a_human(store: Store) -> str:
    return str(rows(store, "SELECT user_id FROM users WHERE kind = 0 ORDER BY id LIMIT 1")[0][0])


def every_dashboard(index: TradeIndex, now: int) -> list[dict[str, object]]:
    return [compute(index, f, p, now).to_wire() for f, p in PAIRS]


@pytest.mark.parametrize("slice_", [1 << 20, 97], ids=["whole", "in-slices"])
@pytest.mark.parametrize(
    "delta_min", [0, 500, 1 << 18], ids=["merge-eagerly", "merge-sometimes", "merge-rarely"]
)
def test_an_index_extended_import_by_import_equals_one_built_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, delta_min: int, slice_: int
) -> None:
    monkeypatch.setattr(index_module, "DELTA_MIN", delta_min)
    monkeypatch.setattr(_rollups, "SLICE", slice_)  # rollups taken a slice of trades at a time
    store = SQLiteStore(tmp_path / "s.db")
    users, trades = write_demo(DemoSpec(users=60, trades=3_000, days=65, seed=11), NOW, tmp_path / "a")
    lines = trades.read_text().splitlines(keepends=True)
    header, body = lines[0], lines[1:]
    import_files(store, users)
    index = TradeIndex.load(store)
    both_runs_answered = False
    for part, chunk in enumerate((body[:1000], body[1000:1001], body[1001:1300], body[1300:])):
        path = tmp_path / f"part{part}.csv"
        path.write_text(header + "".join(chunk))
        import_files(store, trades=path)
        index = index.refreshed(store)
        assert every_dashboard(index, NOW) == every_dashboard(TradeIndex.load(store), NOW)
        both_runs_answered |= bool(index.main.size and index.delta.size)
    assert both_runs_answered or delta_min != 500
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
    monkeypatch.setattr(index_module, "DELTA_MIN", 1 << 18)
    fresh = TradeIndex.load(store)
    assert index.version == fresh.version == store.data_version()
    for now in (NOW, NOW - 7 * DAY - 1234, NOW + 3 * HOUR):
        assert every_dashboard(index, now) == every_dashboard(fresh, now)


def test_every_series_has_exactly_n_points_even_on_an_empty_store(any_store: Store) -> None:
    engine = Engine(any_store)
    for f, p in PAIRS:
        d = engine.dashboard(f, p, NOW)
        n = {Period.H24: 24, Period.D7: 28, Period.D30: 30}[p]
        assert len(d.volume_over_time) == len(d.user_activity) == n
        assert [b.count for b in d.profitability_distribution] == [0] * 8
        assert d.metrics.avg_roi.value == 0.0 and d.metrics.avg_roi.change is None
    engine.close()


def test_a_live_dashboard_is_cached_only_while_fresh(any_demo_store: Store, tmp_path: Path) -> None:
    demo_store = any_demo_store  # both backends: an import through this store object is seen at once
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


def test_an_import_by_another_process_shows_in_the_next_dashboard(
    any_demo_store: Store, backend: str, tmp_path: Path
) -> None:
    """SQLite: the very next dashboard (the data version is read on each call). PostgreSQL: within one
    second (CONTRACT.md section 8: the import's NOTIFY reaches this process's listener)."""
    demo_store = any_demo_store
    engine = Engine(demo_store, max_age=3600)
    before = engine.dashboard(Filter.HUMANS, Period.H24, NOW)
    trades = tmp_path / "cli.csv"
    trades.write_text(
        f"trade_id,user_id,ts,volume_usdc,pnl_usdc\ncli1,{a_human(demo_store)},2026-03-20T12:30:00Z,1000,0\n"
    )
    done = subprocess.run(import_command(location(demo_store), "--trades", str(trades)), capture_output=True)
    assert done.returncode == 0, done.stderr
    deadline = time.monotonic() + (0.0 if backend == "sqlite" else 1.0)
    after = engine.dashboard(Filter.HUMANS, Period.H24, NOW)
    while after.volume_over_time[-1].trade_count == before.volume_over_time[-1].trade_count:
        if time.monotonic() > deadline:
            break
        time.sleep(0.01)  # polling a condition with a deadline: the notification comes on its own thread
        after = engine.dashboard(Filter.HUMANS, Period.H24, NOW)
    assert after.metrics.trading_volume.value == pytest.approx(before.metrics.trading_volume.value + 1000)
    assert after.volume_over_time[-1].trade_count == before.volume_over_time[-1].trade_count + 1
    engine.close()


def test_a_population_is_computed_alone_and_everyone_is_joined_from_the_two(
    demo_store: SQLiteStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    computed: list[tuple[Period, Filter]] = []
    of = PeriodState.of.__func__  # type: ignore[attr-defined]

    def counting(
        cls: type[PeriodState], index: TradeIndex, period: Period, now: int, held: Filter = Filter.ALL
    ) -> PeriodState:
        computed.append((period, held))
        return of(cls, index, period, now, held)  # type: ignore[no-any-return]

    monkeypatch.setattr(PeriodState, "of", classmethod(counting))
    engine = Engine(demo_store, clock=lambda: NOW, max_age=3600)
    boards = {
        (f, Period.D7): engine.dashboard(f, Period.D7) for f in (Filter.HUMANS, Filter.AGENTS, Filter.ALL)
    }
    boards[Filter.HUMANS, Period.H24] = engine.dashboard(Filter.HUMANS, Period.H24)
    boards[Filter.ALL, Period.H24] = engine.dashboard(Filter.ALL, Period.H24)
    # everyone's state is joined from the two populations', computing only the one not kept
    assert computed == [
        (Period.D7, Filter.HUMANS),
        (Period.D7, Filter.AGENTS),
        (Period.H24, Filter.HUMANS),
        (Period.H24, Filter.AGENTS),
    ]
    fresh = TradeIndex.load(demo_store)
    assert {key: board.to_wire() for key, board in boards.items()} == {
        (f, p): compute(fresh, f, p, NOW).to_wire() for f, p in boards
    }
    # an import moves the joined state forward, and it serves both populations
    with demo_store.read() as conn:
        agent = conn.execute("SELECT user_id FROM users WHERE kind = 1 ORDER BY id LIMIT 1").fetchone()[0]
    path = tmp_path / "more.csv"
    path.write_text(
        "trade_id,user_id,ts,volume_usdc,pnl_usdc\n"
        f"m1,{a_human(demo_store)},{iso(NOW - 60)},7.5,1\nm2,{agent},{iso(NOW - 86_400 * 8)},3,-2\n"
    )
    import_files(demo_store, trades=path)
    computed.clear()
    after = {key: engine.dashboard(*key).to_wire() for key in boards}
    assert computed == []
    fresh = TradeIndex.load(demo_store)
    assert after == {(f, p): compute(fresh, f, p, NOW).to_wire() for f, p in boards}
    assert after != {key: board.to_wire() for key, board in boards.items()}
    with pytest.raises(ValueError, match="does not hold the agents"):
        PeriodState.of(fresh, Period.D7, NOW, Filter.HUMANS).population(Filter.AGENTS)
    engine.close()


def test_dashboards_moved_forward_by_an_import_equal_ones_computed_afresh(
    demo_store: SQLiteStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    computed_afresh: list[Period] = []
    of = PeriodState.of.__func__  # type: ignore[attr-defined]

    def counting(
        cls: type[PeriodState], index: TradeIndex, period: Period, now: int, held: Filter = Filter.ALL
    ) -> PeriodState:
        computed_afresh.append(period)
        return of(cls, index, period, now, held)  # type: ignore[no-any-return]

    monkeypatch.setattr(PeriodState, "of", classmethod(counting))
    engine = Engine(demo_store, clock=lambda: NOW, max_age=3600)
    human = a_human(demo_store)
    with demo_store.read() as conn:
        agent = conn.execute("SELECT user_id FROM users WHERE kind = 1 ORDER BY id LIMIT 1").fetchone()[0]
    header = "trade_id,user_id,ts,volume_usdc,pnl_usdc\n"
    stamps = [NOW, NOW - 5, NOW - 3600, NOW - 86_400, NOW - 86_400 * 7 - 60, NOW - 86_400 * 45, NOW + 1]
    batches = [
        [
            f"x{i},{who},{iso(ts)},{10 + i}.125,-{i}.5"
            for i, ts in enumerate(stamps)
            for who in (human, agent)
        ],
        [f"y1,{agent},{iso(NOW - 7200)},3,3"],
        [f"z1,{human},{iso(NOW - 10)},1,1"],
        [f"z2,{agent},{iso(NOW - 20)},2,2"],  # two imports between two requests
        [f"w1,newcomer,{iso(NOW - 30)},4,4"],  # a new trader
    ]
    (tmp_path / "newcomer.csv").write_text(
        "user_id,kind,capital_usdc,created_at\nnewcomer,agent,100,2026-01-01T00:00:00Z\n"
    )
    import_files(demo_store, users=tmp_path / "newcomer.csv")
    for number, lines in enumerate(batches):
        if number != 3:  # batches 2 and 3 land with no request between them
            every = [engine.dashboard(f, p) for f, p in PAIRS]
        path = tmp_path / f"batch{number}.csv"
        path.write_text(header + "\n".join(lines) + "\n")
        import_files(demo_store, trades=path)
        if number == 2:
            continue
        fresh = TradeIndex.load(demo_store)
        computed_afresh.clear()
        after = [engine.dashboard(f, p).to_wire() for f, p in PAIRS]
        # imports since the state's last refresh, among known traders: moved forward; a new trader: recomputed
        assert computed_afresh == ([] if number < 4 else list(Period))
        assert after == every_dashboard(fresh, NOW)
        assert after != [d.to_wire() for d in every]
    # a state left behind by more than one refresh of the index is recomputed
    for name, who in (("v1", human), ("v2", agent)):
        path = tmp_path / f"{name}.csv"
        path.write_text(header + f"{name},{who},{iso(NOW - 40)},5,5\n")
        import_files(demo_store, trades=path)
        engine.dashboard(Filter.ALL, Period.H24)
    computed_afresh.clear()
    after = [engine.dashboard(f, p).to_wire() for f, p in PAIRS]
    assert computed_afresh == [Period.D7, Period.D30]
    assert after == every_dashboard(TradeIndex.load(demo_store), NOW)
    # a trader who changes kind moves between the populations: every state is recomputed
    (tmp_path / "flip.csv").write_text(
        f"user_id,kind,capital_usdc,created_at\n{human},agent,100,2026-01-01T00:00:00Z\n"
    )
    import_files(demo_store, users=tmp_path / "flip.csv")
    computed_afresh.clear()
    flipped = [engine.dashboard(f, p).to_wire() for f, p in PAIRS]
    assert computed_afresh == list(Period)
    assert flipped == every_dashboard(TradeIndex.load(demo_store), NOW)
    assert flipped != after
    engine.close()


def test_instants_outside_the_stored_range_never_borrow_another_users_trades(demo_store: SQLiteStore) -> None:
    index = TradeIndex.load(demo_store)
    for far in (-(2**35), 2**36):
        d = compute(index, Filter.ALL, Period.D30, far).to_wire()
        assert d["metrics"]["active_users"]["value"] == 0
        assert d["metrics"]["trading_volume"]["value"] == 0


@pytest.mark.parametrize("text", ["1481-10-22T10:06:56Z", "0001-01-02T00:00:00Z", "2600-01-01T00:00:00Z"])
def test_instants_outside_1970_to_2242_are_refused(text: str) -> None:
    from cymetica_mcp.windows import parse_instant

    with pytest.raises(ValueError, match="out of range"):
        parse_instant(text)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(
    pairs=st.lists(
        st.tuples(
            st.integers(1, 2**54),
            st.one_of(st.sampled_from(ROI_BOUNDS), st.integers(-200, 200)),
            st.integers(-3, 3),
            st.integers(-(2**54), 2**54),
        ),
        min_size=1,
        max_size=50,
    )
)
@example(  # odd positions take bound% of capital: their float ROI lands on the bound itself
    pairs=[
        (1, 0, 0, 0),
        (16_392_403_905_996_561, 50, 0, 0),
        (1, 0, 0, 0),
        (10_342_638_415_962_254, -20, 0, 0),
        (1, 0, 0, 0),
        (8_733_007_164_950_621, 5, 0, 0),
    ]
)
def test_roi_ranges_are_exact_at_every_bound(pairs: list[tuple[int, int, int, int]]) -> None:
    """ROI exactly on a bound, a micro-USDC either side of it, and anywhere: the integer rule decides."""
    capital = np.array([c for c, _, _, _ in pairs], dtype=np.int64)
    # pnl = bound% of capital (rounded) plus a nudge, or a free value
    pnl = np.array(
        [(b * c) // 100 + d if i % 2 else free for i, (c, b, d, free) in enumerate(pairs)], dtype=np.int64
    )
    expected = [
        sum(100 * p >= bound * c for bound in ROI_BOUNDS)
        for p, c in zip(pnl.tolist(), capital.tolist(), strict=True)
    ]
    assert _roi_slots(pnl, capital).tolist() == expected


def test_callers_that_miss_the_same_entry_together_share_one_computation(
    demo_store: SQLiteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cymetica_mcp.engine import _engine as engine_module
    from cymetica_mcp.engine import _metrics

    engine = Engine(demo_store, clock=lambda: NOW, max_age=3_600)
    engine.index()
    computed: list[Filter] = []
    first_inside, release = threading.Event(), threading.Event()
    real = _metrics.dashboard  # what the engine calls: `engine_module.dashboard` is this function

    def slow_dashboard(*args: Any) -> Any:
        computed.append(args[2])
        first_inside.set()
        assert release.wait(30)  # hold the first computation until every caller has asked
        return real(*args)

    monkeypatch.setattr(engine_module, "dashboard", slow_dashboard)
    misses: list[None] = []
    cached = engine._cached

    def counted(*args: Any) -> Any:
        hit = cached(*args)
        if hit is None:
            misses.append(None)
        return hit

    monkeypatch.setattr(engine, "_cached", counted)
    results: list[Any] = []
    asked = threading.Barrier(8)

    def ask() -> None:
        asked.wait(30)
        results.append(engine.result(Filter.HUMANS, Period.D7))

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for thread in threads:
        thread.start()
    assert first_inside.wait(30)
    # every caller has missed the cache (the first twice: outside and inside its lock) before the first
    # computation may end: one that came later would find the result cached and prove nothing
    deadline = time.monotonic() + 30
    while len(misses) < 9:
        assert time.monotonic() < deadline, f"only {len(misses)} misses"
        time.sleep(0.001)
    release.set()
    for thread in threads:
        thread.join(30)
    engine.close()
    assert computed == [Filter.HUMANS]
    assert len(results) == 8 and len({id(r.dashboard) for r in results}) == 1
    assert sum(not r.cached for r in results) == 1


def test_lookups_shared_with_the_helper_thread_give_the_same_dashboards(
    demo_store: SQLiteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A large run hands half of a dashboard's boundary lookups to a helper thread: the figures are
    those of the lookups done one after the other, at instants on and off every bucket edge."""
    index = TradeIndex.load(demo_store)
    instants = [NOW, NOW - NOW % HOUR, NOW - NOW % DAY - 1, NOW - 3 * DAY + 1_234]
    alone = [every_dashboard(index, now) for now in instants]
    monkeypatch.setattr(_runs, "PARALLEL_TRADES", 0)
    main = threading.get_ident()
    threads: set[int] = set()
    left = _runs.Run.left

    def noting(run: _runs.Run, users: np.ndarray[Any, Any], ts: int) -> Any:
        threads.add(threading.get_ident())
        if threading.get_ident() == main:
            threading.Event().wait(0.002)  # so that the helper surely takes some of the queue
        return left(run, users, ts)

    monkeypatch.setattr(_runs.Run, "left", noting)
    assert [every_dashboard(index, now) for now in instants] == alone
    assert len(threads) == 2


def test_running_sums_are_refused_exactly_at_the_engine_range() -> None:
    """Imports keep each total below 2^62 micro-USDC; the engine accepts exactly that (the float
    estimate of a total just below it rounds up to it)."""
    zeros = np.zeros(2, dtype=np.int64)
    below = np.array([2**61, 2**61 - 1], dtype=np.int64)
    assert int(_runs._prefix(below, zeros)[-1, 0]) == 2**62 - 1
    assert int(_runs._prefix(zeros, -below)[-1, 1]) == -(2**62) + 1
    with pytest.raises(OverflowError, match="beyond this engine's exact range"):
        _runs._prefix(below + np.array([0, 1]), zeros)


def test_exact_sums_of_64_bit_columns_never_wrap() -> None:
    big = np.array([2**62, 2**62, 2**62 - 1, -5], dtype=np.int64)
    assert exact_sum(big) == 3 * 2**62 - 6  # past int64: summed in Python integers
    assert exact_sum(big[2:]) == 2**62 - 6
    assert exact_sum(np.zeros(0, dtype=np.int64)) == 0
