"""A directory, hourly or daily, answers exactly what a binary search over the sorted keys answers."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from cymetica_mcp.engine import _directory as directory_module
from cymetica_mcp.engine import _runs
from cymetica_mcp.engine._directory import DAY, HOUR, SCAN_LIMIT, Directory
from cymetica_mcp.engine._rollups import Presence
from cymetica_mcp.engine._runs import I64, SHIFT, TS_MASK, Run

T0 = 1_773_000_000
LIMITS = [directory_module.OFFSET_LIMIT, 4, 1]
"""Offset limits: the real one (offsets of 16 bits), one that leaves only narrow anchor spacings,
and one that no offset meets (full positions in every row)."""


def built(key: I64, width: int, max_cells: int, limit: int) -> Directory | None:
    """A directory built with offsets below `limit` (its rows compacted only where they fit)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(directory_module, "OFFSET_LIMIT", limit)
        directory = Directory.build(key, SHIFT, width, max_cells)
    if directory is not None and directory.offsets is not None:
        assert int(directory.offsets.max()) < limit
    return directory


def test_rows_are_kept_as_16_bit_offsets_from_anchors_where_they_fit() -> None:
    """Six users trading every hour of 40 days: a daily directory keeps one row in 16 as full
    positions and every row as 16-bit offsets; a user with 2^16 trades in each of two days in a row
    forces full rows (any anchor spacing would hold one of those days in an offset)."""
    hours = T0 + np.arange(0, 40 * DAY, HOUR)
    key = np.sort(np.concatenate([(u << SHIFT) + hours for u in range(6)]))
    directory = Directory.build(key, SHIFT, DAY, 10_000_000)
    assert directory is not None
    assert (directory.every, directory.table.shape[0]) == (16, directory.slots // 16 + 1)
    assert directory.offsets is not None and directory.offsets.dtype == np.uint16
    assert directory.nbytes < 4 * (directory.slots + 1) * directory.rows
    day = (T0 // DAY + 20) * DAY
    busy = (
        (9 << SHIFT)
        + day
        + np.arange(2 * directory_module.OFFSET_LIMIT) // directory_module.OFFSET_LIMIT * DAY
    )
    crowded_key = np.sort(np.concatenate([key, busy]))
    crowded = Directory.build(crowded_key, SHIFT, DAY, 10_000_000)
    assert crowded is not None and (crowded.every, crowded.offsets) == (1, None)
    users = np.arange(0, 12, dtype=np.int64)
    for ts in (day, day + 7, day + DAY, day + 2 * DAY, day + 13 * DAY + HOUR):
        expected = np.searchsorted(crowded_key, (users << SHIFT) + ts)
        found = crowded.left(crowded_key, users, ts)
        assert found is not None and found.tolist() == expected.tolist()


@settings(max_examples=150, deadline=None, derandomize=True)
@given(
    trades=st.lists(
        st.tuples(st.integers(0, 12), st.integers(0, 40 * DAY)),
        min_size=1,
        max_size=200,
    ),
    probes=st.lists(st.integers(-3 * DAY, 45 * DAY), min_size=1, max_size=12),
    max_cells=st.sampled_from([10_000_000, 300, 150]),
    width=st.sampled_from([HOUR, DAY]),
    limit=st.sampled_from(LIMITS),
)
def test_positions_equal_a_binary_search(
    trades: list[tuple[int, int]], probes: list[int], max_cells: int, width: int, limit: int
) -> None:
    key = np.sort(np.array([(u << SHIFT) + T0 + t for u, t in trades], dtype=np.int64))
    directory = built(key, width, max_cells, limit)
    users = np.arange(0, 16, dtype=np.int64)  # includes users with no trades and beyond the last
    answered = 0
    for probe in probes + [(p // width) * width for p in probes]:
        ts = T0 + probe
        expected = np.searchsorted(key, (users << SHIFT) + ts, side="left")
        found = None if directory is None else directory.left(key, users, ts)
        if found is not None:
            answered += 1
            assert found.tolist() == expected.tolist()
    if max_cells == 10_000_000:
        assert directory is not None
        assert answered == 2 * len(probes)  # it covers every day of the data and all times around it


@settings(max_examples=150, deadline=None, derandomize=True)
@given(
    trades=st.lists(st.tuples(st.integers(0, 12), st.integers(0, 40 * DAY)), min_size=1, max_size=200),
    queries=st.lists(st.tuples(st.integers(0, 15), st.integers(-3 * DAY, 45 * DAY)), min_size=1, max_size=30),
    max_cells=st.sampled_from([10_000_000, 300, 150]),
    width=st.sampled_from([HOUR, DAY]),
    limit=st.sampled_from(LIMITS),
)
def test_bounded_searches_equal_a_binary_search(
    trades: list[tuple[int, int]], queries: list[tuple[int, int]], max_cells: int, width: int, limit: int
) -> None:
    """Each key's place among the run's keys, from one user's trades of one slot (or, before a
    directory that does not reach back far enough, a binary search): what `searchsorted` says."""
    key = np.sort(np.array([(u << SHIFT) + T0 + t for u, t in trades], dtype=np.int64))
    directory = built(key, width, max_cells, limit)
    assume(directory is not None)  # a budget too small for one slot builds none (counted as rejected)
    assert directory is not None
    asked = np.array([(u << SHIFT) + T0 + t for u, t in queries], dtype=np.int64)
    asked = np.concatenate([asked, key, key - 1])  # every stored key and the instant before it
    expected = np.searchsorted(key, asked, side="right")
    assert directory.right(key, asked).tolist() == expected.tolist()


def test_a_busy_users_slot_is_searched_not_scanned_per_query(monkeypatch: pytest.MonkeyPatch) -> None:
    """A bot with thousands of trades in one hour, asked about each of them: the answers are the
    binary search's, and the work stays bounded (no array of queries x trades is ever built)."""
    busy = T0 + np.arange(0, 3_600, 0.25).astype(np.int64)  # 14,400 trades within one hour
    key = np.sort(np.concatenate([(1 << SHIFT) + busy, (2 << SHIFT) + T0 + np.arange(0, 40 * DAY, HOUR)]))
    directory = Directory.build(key, SHIFT, DAY, 10_000_000)
    assert directory is not None
    asked = np.concatenate([key, key - 1, key + 1])
    scanned: list[int] = []
    scan = directory_module.count_below

    def counting(key: I64, lo: I64, length: I64, bound: I64) -> I64:
        scanned.append(int(length.sum()))
        assert scanned[-1] <= SCAN_LIMIT * asked.size
        return scan(key, lo, length, bound)

    monkeypatch.setattr(directory_module, "count_below", counting)
    expected = np.searchsorted(key, asked, side="right")
    assert directory.right(key, asked).tolist() == expected.tolist()
    assert scanned


@settings(max_examples=150, deadline=None, derandomize=True)
@given(
    trades=st.lists(
        st.tuples(st.integers(0, 12), st.integers(0, 12 * DAY)), min_size=1, max_size=200, unique=True
    ),
    new=st.lists(st.tuples(st.integers(0, 14), st.integers(-DAY, 13 * DAY)), min_size=1, max_size=40),
    budgets=st.sampled_from([(10_000_000, 10_000_000), (200, 10_000_000), (150, 150), (0, 0)]),
)
def test_presence_equals_a_scan(
    trades: list[tuple[int, int]], new: list[tuple[int, int]], budgets: tuple[int, int]
) -> None:
    """What the rollups ask when new trades arrive: did this user already trade in this bucket?"""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_runs, "DIRECTORIES", ((HOUR, budgets[0]), (DAY, budgets[1])))
        ones = np.ones(len(trades), dtype=np.int64)
        run = Run.of(np.array([(u << SHIFT) + T0 + t for u, t in trades], dtype=np.int64), ones, ones)
        run = run.with_directory()
    key = np.array([(u << SHIFT) + T0 + t for u, t in new], dtype=np.int64)
    presence = Presence(run, key)
    for size in (HOUR, 6 * HOUR, DAY):  # as the rollups ask: one bucket size after the other
        which = np.arange(0, key.size, 2 if size == HOUR else 1, dtype=np.int64)
        start = ((key[which] & TS_MASK) // size) * size
        expected = [
            any(user == u and a <= T0 + t < a + size for user, t in trades)
            for u, a in zip((key[which] >> SHIFT).tolist(), start.tolist(), strict=True)
        ]
        assert presence.any_in(which, start, start + size).tolist() == expected
