"""The engine against the independent reference (tests/reference.py) on random small stores.

Hypothesis builds stores of a few to ~40 users and up to ~300 trades whose times crowd the edges that
the contract defines: window starts, `now`, `now + 1`, `now - P` (the previous window's end), the gap
between `now - P` and `start`, W'' and every bucket boundary, for all three periods at once. Amounts are
drawn so that rounding ties (x.xx5 volumes, 1/16 retention) and ROI exactly on a range bound occur.
Every dashboard of the 9 (filter, period) pairs must equal the reference's as a JSON value.
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from cymetica_mcp.engine import Engine
from cymetica_mcp.ingest import import_files
from cymetica_mcp.models import Filter, Period
from cymetica_mcp.store import Store
from tests import reference as ref
from tests.backends import BACKENDS
from tests.reference import DAY, HOUR, MICRO, PAIRS, PERIODS

MIDNIGHT = 1_773_964_800  # 2026-03-20T00:00:00Z
PROFILE = settings(
    deadline=None,
    derandomize=True,
    database=None,
    print_blob=False,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
)

Row = dict[str, Any]
NewStore = Callable[[str], AbstractContextManager[Store]]


@dataclass
class Dataset:
    """Users and trades, plus an optional second import (user updates and more trades)."""

    now: int
    users: list[Row]
    trades: list[Row]
    updates: list[Row] = field(default_factory=list)
    more_trades: list[Row] = field(default_factory=list)

    def all_users(self) -> list[Row]:
        return self.users + self.updates

    def all_trades(self) -> list[Row]:
        return self.trades + self.more_trades


# --------------------------------------------------------------------------- strategies


def edges(now: int) -> list[int]:
    """The instants where an off-by-one would show, for every period at `now`."""
    points = {now - 1, now, now + 1}
    for period in PERIODS:
        start, p, b, n = ref.windows(period, now)
        for k in (0, 1, 2, 3):
            for t in (start - k * p, now - k * p):
                points.update((t - 1, t, t + 1))
        for i in range(n + 1):
            points.update((start + i * b - 1, start + i * b))
    return sorted(points)


NOW_TIME_OF_DAY = st.one_of(
    st.sampled_from([0, 1, HOUR - 1, HOUR, 6 * HOUR - 1, 6 * HOUR, 12 * HOUR + 1, DAY - 1]),
    st.integers(0, DAY - 1),
)
CAPITAL = st.one_of(
    st.just(0),
    st.sampled_from([100, 200, 400, 1000, 1600, 3]).map(lambda usdc: usdc * MICRO),
    st.integers(1, 5_000 * MICRO),  # up to 6 decimals
    st.integers(1, 1_000),  # dust: 0.000001 .. 0.001
)
VOLUME = st.one_of(
    st.integers(1, 2_000 * MICRO),
    st.integers(0, 99_999).map(lambda cents: cents * 10_000 + 5_000),  # x.xx5: a rounding tie alone
    st.sampled_from([1, 5_000, 125_000, 1_005_000]),
)
ROI_BOUNDS = [-100, -50, -20, -5, 0, 5, 20, 50, 100]


@st.composite
def datasets(
    draw: st.DrawFn, max_users: int = 40, max_trades: int = 300, second_import: bool = False
) -> Dataset:
    now = MIDNIGHT + draw(st.integers(0, 40)) * DAY + draw(NOW_TIME_OF_DAY)
    n_users = draw(st.integers(1, max_users))
    users: list[Row] = [
        {
            "user_id": f"u{i:02d}",
            "kind": draw(st.sampled_from(["human", "agent"])),
            "capital": draw(CAPITAL),
            "created_at": now - 90 * DAY,
        }
        for i in range(n_users)
    ]
    # the times: an edge of any period, anywhere in the reach of one period's W, W' and W'', or the last days
    period = draw(st.sampled_from(list(PERIODS)))
    start, p, b, _ = ref.windows(period, now)
    reach = st.integers(start - 2 * p - b, now + b)
    last_days = st.integers(now - 2 * DAY - HOUR, now + HOUR)  # dense enough for the 24h windows too
    times = st.one_of(st.sampled_from(edges(now)), reach, last_days)

    def trade(i: int, who: list[Row]) -> Row:
        user = draw(st.sampled_from(who))
        capital = user["capital"]
        pnl_choices = [st.just(0), st.integers(-2_000 * MICRO, 2_000 * MICRO), st.integers(-3, 3)]
        if capital:
            # a pnl that puts a one-trade user exactly on a range bound
            pnl_choices.append(st.sampled_from(ROI_BOUNDS).map(lambda k: capital * k // 100))
        return {
            "trade_id": f"t{i:04d}",
            "user_id": user["user_id"],
            "ts": draw(times),
            "volume": draw(VOLUME),
            "pnl": draw(st.one_of(*pnl_choices)),
        }

    n_trades = draw(st.integers(0, max_trades))
    trades = [trade(i, users) for i in range(n_trades)]
    if draw(st.booleans()) and trades:
        # a repeated trade_id with other figures: the first row counts
        twin = dict(draw(st.sampled_from(trades)))
        twin["volume"] += 1
        twin["ts"] -= 7
        trades.append(twin)
    if not second_import:
        return Dataset(now, users, trades)

    # second import: some users change kind and/or capital, a few new users, more trades
    changed = draw(st.lists(st.sampled_from(users), max_size=8, unique_by=lambda u: u["user_id"]))
    updates: list[Row] = [
        {**u, "kind": draw(st.sampled_from(["human", "agent"])), "capital": draw(CAPITAL)} for u in changed
    ]
    updates += [
        {
            "user_id": f"n{i}",
            "kind": draw(st.sampled_from(["human", "agent"])),
            "capital": draw(CAPITAL),
            "created_at": now,
        }
        for i in range(draw(st.integers(0, 3)))
    ]
    everyone = users + [u for u in updates if u["user_id"].startswith("n")]
    more = [trade(n_trades + 10 + i, everyone) for i in range(draw(st.integers(0, max_trades // 3)))]
    if draw(st.booleans()) and trades:
        more.append(dict(trades[0], volume=trades[0]["volume"] + 3))  # re-import of a present trade_id
    return Dataset(now, users, trades, updates, more)


# --------------------------------------------------------------------------- explicit examples


def _u(uid: str, kind: str, capital_usdc: int | str, now: int) -> Row:
    return {"user_id": uid, "kind": kind, "capital": ref.micro_of(str(capital_usdc)), "created_at": now - DAY}


def _t(tid: str, uid: str, ts: int, volume_usdc: str, pnl_usdc: str) -> Row:
    return {
        "trade_id": tid,
        "user_id": uid,
        "ts": ts,
        "volume": ref.micro_of(volume_usdc),
        "pnl": ref.micro_of(pnl_usdc),
    }


def tie_dataset() -> Dataset:
    """Retention 1/16 (6.25), a 0.125 volume and an ROI on every range bound, in one 24h store."""
    now = MIDNIGHT + 12 * HOUR + 30 * 60  # 12:30, so the 24h W starts 13:00 the day before
    start, p, _, _ = ref.windows("24h", now)
    users = [_u(f"h{i:02d}", "human", 100, now) for i in range(16)]
    trades = [_t(f"prev{i:02d}", f"h{i:02d}", now - p - 60, "1", "0") for i in range(16)]  # A(W') = 16 users
    # in W: h00 only of the 16 (retention 100/16 = 6.25) plus 7 one-trade users on the ROI bounds
    trades.append(_t("cur00", "h00", now, "0.125", "-50"))
    for i, k in enumerate(ROI_BOUNDS[1:-1]):  # -50 .. 50
        users.append(_u(f"b{i}", "agent", 100, now))
        trades.append(_t(f"bound{i}", f"b{i}", start + i * HOUR, "0.005", str(k)))
    return Dataset(now, users, trades)


def change_tie_dataset() -> Dataset:
    """Volume 97.75 now against 100 before: change exactly -2.25 -> -2.3; agents trade only where nothing counts."""
    now = MIDNIGHT + 5 * HOUR
    start, p, _, _ = ref.windows("24h", now)
    users = [_u("h", "human", "1.5", now), _u("a", "agent", "0", now)]
    trades = [
        _t("h1", "h", now - p, "100", "1"),
        _t("h2", "h", now, "97.75", "-0.015"),
        _t("a1", "a", now - p + 1, "100", "0"),  # the gap between now - P and start: in neither window
        _t("a2", "a", start - 1, "100", "0"),  # the gap too
        _t("a3", "a", now + 1, "7", "0"),  # after now: nowhere
    ]
    return Dataset(now, users, trades)


# --------------------------------------------------------------------------- comparing


def check(engine: Engine, data_users: Sequence[Row], data_trades: Sequence[Row], now: int) -> None:
    for f, p in PAIRS:
        got = json.loads(json.dumps(engine.dashboard(Filter(f), Period(p), now).to_wire()))
        want = ref.dashboard(data_users, data_trades, f, p, now)
        problems = ref.differences(got, want)
        assert not problems, f"filter={f} period={p} now={ref.iso(now)}:\n" + "\n".join(problems[:20])


def load(store: Store, folder: Path, users: Sequence[Row], trades: Sequence[Row], tag: str) -> None:
    u = ref.write_users_csv(folder / f"users{tag}.csv", users) if users else None
    t = ref.write_trades_csv(folder / f"trades{tag}.csv", trades) if trades else None
    if u is not None or t is not None:
        import_files(store, users=u, trades=t)


# --------------------------------------------------------------------------- the properties


@pytest.mark.parametrize("backend", BACKENDS)
@settings(PROFILE, max_examples=120)
@example(data=tie_dataset())
@example(data=change_tie_dataset())
@given(data=datasets())
def test_engine_equals_reference_for_every_filter_and_period(
    new_store: NewStore, backend: str, data: Dataset
) -> None:
    with tempfile.TemporaryDirectory() as tmp, new_store(backend) as store:
        folder = Path(tmp)
        load(store, folder, data.users, data.trades, "")
        engine = Engine(store)
        try:
            check(engine, data.users, data.trades, data.now)
        finally:
            engine.close()


@pytest.mark.parametrize("backend", BACKENDS)
@settings(PROFILE, max_examples=35)
@given(data=datasets(max_users=25, max_trades=200, second_import=True))
def test_engine_after_a_second_import_equals_reference(
    new_store: NewStore, backend: str, data: Dataset
) -> None:
    """One engine across two imports (updated kinds and capitals, new users, repeated trade_ids)."""
    with tempfile.TemporaryDirectory() as tmp, new_store(backend) as store:
        folder = Path(tmp)
        load(store, folder, data.users, data.trades, "1")
        engine = Engine(store, max_age=0.0)
        try:
            check(engine, data.users, data.trades, data.now)
            load(store, folder, data.updates, data.more_trades, "2")
            check(engine, data.all_users(), data.all_trades(), data.now)
            check(engine, data.all_users(), data.all_trades(), data.now + HOUR)
        finally:
            engine.close()


def test_the_tie_examples_really_are_ties() -> None:
    """The hand-built examples above exercise what they claim (guards the reference's rounding too)."""
    data = tie_dataset()
    board = ref.dashboard(data.users, data.trades, "all", "24h", data.now)
    m = board["metrics"]
    assert m["retention_rate"]["value"] == 6.3  # 100 * 1/16 = 6.25
    assert m["active_users"]["value"] == 8  # h00 + b0..b6
    assert [r["count"] for r in board["profitability_distribution"]] == [0, 2, 1, 1, 1, 1, 1, 1]
    assert board["volume_over_time"][-1]["total_volume"] == 0.13  # 0.125 at now, in the last bucket
    changed = change_tie_dataset()
    humans = ref.dashboard(changed.users, changed.trades, "humans", "24h", changed.now)["metrics"]
    assert humans["trading_volume"]["change"] == -2.3  # (97.75 - 100) / 100 = -2.25%
    agents = ref.dashboard(changed.users, changed.trades, "agents", "24h", changed.now)["metrics"]
    assert agents["trading_volume"] == {
        "label": "Trading Volume",
        "value": 0.0,
        "change": None,
        "suffix": "USDC",
    }


# --------------------------------------------------------------------------- the command line


def cli_path() -> str:
    beside = Path(sys.executable).parent / "cymetica-mcp"
    found = str(beside) if beside.exists() else shutil.which("cymetica-mcp")
    assert found, "the cymetica-mcp console script is not installed"
    return found


def seeded_dataset(seed: int) -> Dataset:
    rng = random.Random(seed)
    now = MIDNIGHT + 13 * HOUR + 34 * 60 + 56  # 2026-03-20T13:34:56Z
    users = [
        {
            "user_id": f"user-{i}",
            "kind": rng.choice(["human", "agent"]),
            "capital": rng.choice([0, 250 * MICRO, rng.randrange(1, 3_000 * MICRO)]),
            "created_at": now - rng.randrange(100 * DAY),
        }
        for i in range(40)
    ]
    points = edges(now)
    trades = [
        {
            "trade_id": f"trade-{i}",
            "user_id": rng.choice(users)["user_id"],
            "ts": rng.choice(points) if rng.random() < 0.3 else now - rng.randrange(-HOUR, 91 * DAY),
            "volume": rng.choice([125_000, rng.randrange(1, 500 * MICRO)]),
            "pnl": rng.randrange(-50 * MICRO, 50 * MICRO),
        }
        for i in range(600)
    ]
    return Dataset(now, users, trades)


def test_cli_dashboard_json_equals_reference(
    tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    data = seeded_dataset(20260320)
    exe = cli_path()
    db = str(tmp_path / "cli.db") if backend == "sqlite" else str(request.getfixturevalue("pg_url"))
    users = ref.write_users_csv(tmp_path / "users.csv", data.users)
    trades = ref.write_trades_csv(tmp_path / "trades.csv", data.trades)
    done = subprocess.run(
        [exe, "--db", db, "import", "--users", str(users), "--trades", str(trades)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    for f, p in PAIRS:
        shown = subprocess.run(
            [
                exe,
                "--db",
                db,
                "dashboard",
                "--filter",
                f,
                "--period",
                p,
                "--now",
                ref.iso(data.now),
                "--json",
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert shown.returncode == 0, shown.stderr
        problems = ref.differences(
            json.loads(shown.stdout), ref.dashboard(data.users, data.trades, f, p, data.now)
        )
        assert not problems, f"cli filter={f} period={p}:\n" + "\n".join(problems[:20])


def test_the_comparison_is_strict_where_the_contract_is() -> None:
    """Counts must be JSON integers, null is not 0.0, and 84250 equals 84250.0 for an amount."""
    assert ref.differences(3.0, 3) != []
    assert ref.differences(0.0, None) != [] and ref.differences(None, 0.0) != []
    assert ref.differences(True, 1) != []
    assert (
        ref.differences({"a": 1}, {"a": 1, "b": 2}) != []
        and ref.differences({"a": 1, "b": 2}, {"a": 1}) != []
    )
    assert ref.differences(84250, 84250.0) == []
    assert ref.differences([{"x": 0.13}], [{"x": 0.13}]) == []
