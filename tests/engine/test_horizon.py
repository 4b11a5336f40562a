"""The horizon: the index holds the trades its dashboards can need, older ones stay in the store, a
question beyond it is refused with what is accepted, and its size follows the trading rate."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

from cymetica_mcp.engine import Engine, TradeIndex, compute
from cymetica_mcp.engine import _index as index_module
from cymetica_mcp.errors import AnalyticsError
from cymetica_mcp.ingest import import_files
from cymetica_mcp.models import Filter, Period
from cymetica_mcp.store import SQLiteStore
from cymetica_mcp.windows import DAY, HOUR, iso, windows
from tests.conftest import NOW

PAIRS = [(f, p) for f in Filter for p in Period]
HORIZON = 100 * DAY
USERS = 40


def a_store(folder: Path) -> SQLiteStore:
    store = SQLiteStore(folder / "s.db")
    users = folder / "users.csv"
    users.write_text(
        "user_id,kind,capital_usdc,created_at\n"
        + "".join(
            f"u{i},{'agent' if i % 3 == 0 else 'human'},{100 * (i % 7)},2024-01-01T00:00:00Z\n"
            for i in range(USERS)
        )
    )
    import_files(store, users)
    return store


def trade_days(store: SQLiteStore, folder: Path, first: int, last: int, per_day: int, seed: int) -> int:
    """`per_day` trades a day of random users, over days [first, last) before NOW; how many."""
    rng = random.Random(seed)
    rows = []
    for day in range(first, last):
        for i in range(per_day):
            ts = NOW - day * DAY - rng.randrange(DAY)
            rows.append(
                f"t{seed}-{day}-{i},u{rng.randrange(USERS)},{iso(ts)},{rng.randrange(1, 900)}.5,{rng.randrange(-90, 90)}\n"
            )
    path = folder / f"trades-{seed}.csv"
    path.write_text("trade_id,user_id,ts,volume_usdc,pnl_usdc\n" + "".join(rows))
    import_files(store, trades=path)
    return len(rows)


def test_the_index_keeps_the_horizon_and_answers_within_it_as_without_one(tmp_path: Path) -> None:
    store = a_store(tmp_path)
    trade_days(store, tmp_path, 0, 400, 15, seed=1)  # 400 days of history
    everything = TradeIndex.load(store)
    bounded = Engine(store, clock=lambda: NOW, horizon=HORIZON)
    index = bounded.index()
    assert index.cutoff == (NOW - HORIZON) // DAY * DAY
    assert int((index.main.key & ((1 << 34) - 1)).min()) >= index.cutoff
    assert index.trade_count < everything.trade_count * 0.27
    # every dashboard the horizon allows is the same as from the whole history
    for period in Period:
        spec_need = NOW - windows(period, NOW)[2].start
        latest_refused = index.cutoff + spec_need - DAY - 1
        for at in (NOW, NOW - 9 * DAY - 7 * HOUR, index.cutoff + spec_need):
            if windows(period, at)[2].start < index.cutoff:
                continue
            for filter in Filter:
                assert bounded.dashboard(filter, period, at) == compute(everything, filter, period, at)
        with pytest.raises(AnalyticsError) as refused:
            bounded.dashboard(Filter.ALL, period, latest_refused)
        assert refused.value.code == "invalid_as_of"
        assert "beyond this server's horizon" in refused.value.message
        assert "--horizon-days" in refused.value.message
        # the earliest instant the message accepts is answered
        earliest = refused.value.message.split("as_of from ")[1].split(" on")[0]
        at = next(t for t in range(latest_refused, NOW) if iso(t) == earliest)
        assert bounded.dashboard(Filter.ALL, period, at) == compute(everything, Filter.ALL, period, at)
    bounded.close()


def test_a_horizon_shorter_than_the_longest_dashboard_is_refused(store: SQLiteStore) -> None:
    with pytest.raises(ValueError, match="at least"):
        Engine(store, horizon=80 * DAY)


def test_memory_follows_the_trading_rate_not_the_history(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A simulator running for 400 days at a steady rate: the index holds at most the horizon plus
    one merge's worth of trades (an eighth more), and stays exact."""
    monkeypatch.setattr(index_module, "DELTA_MIN", 200)
    store = a_store(tmp_path)
    per_day = 20
    clock = [NOW - 400 * DAY]
    engine = Engine(store, clock=lambda: clock[0], horizon=90 * DAY, max_age=0)
    sizes = []
    for step in range(80):  # five days at a time
        day = 400 - 5 * step
        clock[0] = NOW - (day - 5) * DAY
        trade_days(store, tmp_path, day - 5, day, per_day, seed=100 + step)
        index = engine.index()
        sizes.append(index.trade_count)
        assert index.trade_count <= per_day * (90 + 2) * 9 // 8 + 5 * per_day
    assert max(sizes[40:]) <= max(sizes[20:40]) * 1.05  # flat once the horizon is full
    index = engine.index()
    everything = TradeIndex.load(store)
    assert everything.trade_count == 400 * per_day
    for filter, period in PAIRS:
        assert engine.dashboard(filter, period) == compute(everything, filter, period, clock[0])
    assert int(np.count_nonzero(index.rollups[3_600].volume)) > 0
    engine.close()
