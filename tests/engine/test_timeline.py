"""The timeline counts each user's trades between two instants, and a run's positions found through it
equal a binary search over the sorted keys."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cymetica_mcp.engine import _runs
from cymetica_mcp.engine._directory import DAY, HOUR
from cymetica_mcp.engine._runs import SHIFT, TIMELINE_WIDTH, Run
from cymetica_mcp.engine._timeline import Timeline

T0 = 1_773_000_000
SIX_HOURS = 6 * HOUR


def keys_of(trades: list[tuple[int, int]]) -> np.ndarray:
    return np.sort(np.array([(u << SHIFT) + T0 + t for u, t in trades], dtype=np.int64))


@settings(max_examples=150, deadline=None, derandomize=True)
@given(
    trades=st.lists(st.tuples(st.integers(0, 12), st.integers(0, 20 * DAY)), min_size=1, max_size=200),
    first=st.integers(-2, 90),
    spans=st.lists(st.tuples(st.integers(0, 22 * DAY), st.integers(0, 2 * DAY)), min_size=1, max_size=10),
)
def test_counts_equal_a_count_of_the_trades(
    trades: list[tuple[int, int]], first: int, spans: list[tuple[int, int]]
) -> None:
    """Per user, the trades with start <= ts < end, for any start the timeline covers."""
    first += T0 // SIX_HOURS
    timeline = Timeline.build(keys_of(trades), SHIFT, SIX_HOURS, first)
    users = np.arange(0, 16, dtype=np.int64)
    for offset, length in spans:
        start = max(T0 + offset, first * SIX_HOURS)
        assert timeline.covers(start)
        expected = [
            sum(1 for u, t in trades if u == user and start <= T0 + t < start + length) for user in users
        ]
        assert timeline.counts(users, start, start + length, 16).tolist() == expected
    assert not timeline.covers(first * SIX_HOURS - 1)


def test_a_slot_width_beyond_its_offsets_is_refused() -> None:
    with pytest.raises(ValueError, match="offsets below 2\\^16"):
        Timeline.build(keys_of([(1, 0)]), SHIFT, DAY, T0 // DAY)


@settings(max_examples=150, deadline=None, derandomize=True)
@given(
    trades=st.lists(st.tuples(st.integers(0, 12), st.integers(0, 40 * DAY)), min_size=1, max_size=300),
    probes=st.lists(st.integers(-3 * DAY, 45 * DAY), min_size=1, max_size=12),
    budgets=st.sampled_from([(10_000_000, 10_000_000), (300, 600), (150, 200), (0, 300)]),
    held=st.sampled_from([_runs.TIMELINE_TRADES, 60, 0]),
)
def test_positions_and_whether_users_traded_equal_a_binary_search(
    trades: list[tuple[int, int]], probes: list[int], budgets: tuple[int, int], held: int
) -> None:
    """A main run's positions, inside slots the timeline holds and outside them, and whether each user
    traded between two instants: what `searchsorted` over the keys says."""
    key = keys_of(trades)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_runs, "DIRECTORIES", ((HOUR, budgets[0]), (TIMELINE_WIDTH, budgets[1])))
        patch.setattr(_runs, "TIMELINE_TRADES", held)  # the timeline holds the last slots' trades only
        ones = np.ones(key.size, dtype=np.int64)
        run = Run.of(key, ones, ones).with_directory()
    if run.timeline is not None:
        assert run.timeline.user.size <= held
    users = np.arange(0, 16, dtype=np.int64)
    for probe in probes:
        ts = T0 + probe
        expected = np.searchsorted(key, (users << SHIFT) + ts, side="left")
        assert run.left(users, ts).tolist() == expected.tolist()
        start = ts - DAY
        first = run.left(users, start)
        traded = expected > np.searchsorted(key, (users << SHIFT) + start, side="left")
        assert run._traded(users, first, ts - 1).tolist() == traded.tolist()
