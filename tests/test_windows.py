"""Window and bucket arithmetic (CONTRACT.md section 2)."""

from __future__ import annotations

import pytest

from cymetica_mcp.models import Period
from cymetica_mcp.windows import current_window, iso, parse_instant, windows

NOW = parse_instant("2026-03-20T12:34:56Z")


@pytest.mark.parametrize(
    ("period", "start", "size", "count"),
    [
        (Period.H24, "2026-03-19T13:00:00Z", 3_600, 24),
        (Period.D7, "2026-03-13T18:00:00Z", 21_600, 28),
        (Period.D30, "2026-02-19T00:00:00Z", 86_400, 30),
    ],
)
def test_windows_are_aligned_to_buckets_and_end_at_now(
    period: Period, start: str, size: int, count: int
) -> None:
    w = current_window(period, NOW)
    assert (iso(w.start), w.end, w.size, w.count) == (start, NOW, size, count)
    assert len(w.bucket_starts()) == count
    assert w.bucket_starts()[-1] <= NOW < w.bucket_starts()[-1] + size


def test_previous_windows_shift_back_by_whole_periods() -> None:
    w, w1, w2 = windows(Period.D7, NOW)
    assert (w.start - w1.start, w.end - w1.end) == (604_800, 604_800)
    assert (w.start - w2.start, w.end - w2.end) == (1_209_600, 1_209_600)


def test_a_now_exactly_on_a_bucket_start_opens_a_one_second_last_bucket() -> None:
    on_hour = parse_instant("2026-03-20T12:00:00Z")
    w = current_window(Period.H24, on_hour)
    assert iso(w.bucket_starts()[-1]) == "2026-03-20T12:00:00Z"
    assert iso(w.start) == "2026-03-19T13:00:00Z"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-03-20T12:34:56Z", "2026-03-20T12:34:56Z"),
        ("2026-03-20T14:34:56.75+02:00", "2026-03-20T12:34:56Z"),
    ],
)
def test_instants_are_read_as_utc_seconds(text: str, expected: str) -> None:
    assert iso(parse_instant(text)) == expected


@pytest.mark.parametrize("text", ["2026-03-20T12:34:56", "tomorrow", ""])
def test_instants_without_offset_or_unreadable_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match=r"expected e\.g\.|add Z"):
        parse_instant(text)
