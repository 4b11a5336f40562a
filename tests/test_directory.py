"""A directory, hourly or daily, answers exactly what a binary search over the sorted keys answers."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from cymetica_mcp.directory import DAY, HOUR, Directory
from cymetica_mcp.index import SHIFT

T0 = 1_773_000_000


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
)
def test_positions_equal_a_binary_search(
    trades: list[tuple[int, int]], probes: list[int], max_cells: int, width: int
) -> None:
    key = np.sort(np.array([(u << SHIFT) + T0 + t for u, t in trades], dtype=np.int64))
    directory = Directory.build(key, SHIFT, width, max_cells)
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
