"""Exact figures and their rounding (half away from zero), with a float fast path that is proven safe.

A figure is either an exact `Fraction` or an `Approx`: a float with a rigorous error bound and a way to
compute the exact value. Rounding an `Approx` uses the float only when no rounding boundary lies within
its error bound, so the rounded result is always the one the exact value gives (CONTRACT.md section 4).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from typing import Final

import numpy as np
from numpy.typing import NDArray

_REL: Final = 1e-12  # generous relative bound on float error (actual: < 64 ulps for < 2^30 terms)


def exact_sum(values: NDArray[np.int64]) -> int:
    """The exact sum of a 64-bit column (in Python integers where an int64 sum could wrap)."""
    if values.size == 0:
        return 0
    largest = max(abs(int(values.min())), abs(int(values.max())))
    return int(values.sum()) if largest * values.size < 2**63 else sum(values.tolist())


@dataclass(frozen=True, slots=True)
class Approx:
    """A float `value` within `err` of an exact value that `exact()` computes."""

    value: float
    err: float
    exact: Callable[[], Fraction]


Figure = Fraction | Approx


def round_half_away(x: Fraction, places: int) -> Fraction:
    """x rounded to `places` decimals, ties away from zero (6.25 -> 6.3, -2.25 -> -2.3)."""
    scale = 10**places
    scaled = abs(x) * scale
    units = math.floor(scaled + Fraction(1, 2))
    return Fraction(units if x >= 0 else -units, scale)


def rounded(x: Figure, places: int) -> float:
    """The figure rounded half away from zero to `places` decimals, as the nearest float (never -0.0)."""
    if isinstance(x, Fraction):
        return _as_float(round_half_away(x, places))
    scale = 10**places
    lo, hi = (x.value - x.err) * scale, (x.value + x.err) * scale
    a, b = _half_away_units(lo), _half_away_units(hi)
    if a == b and math.isfinite(lo) and math.isfinite(hi):
        return _as_float(Fraction(a, scale))
    return _as_float(round_half_away(x.exact(), places))


def _half_away_units(scaled: float) -> int:
    units = math.floor(abs(scaled) + 0.5)
    return units if scaled >= 0 else -units


def _as_float(x: Fraction) -> float:
    value = float(x)
    return 0.0 if value == 0 else value


def mean_ratio(
    numerators: NDArray[np.int64],
    denominators: NDArray[np.int64],
    scale: int,
    terms: NDArray[np.float64] | None = None,
) -> Approx:
    """mean of scale * n_i / d_i (every d_i > 0), as an Approx whose exact value is a Fraction
    (`terms`: those ratios in floating point, `(float(scale) * n) / d`, when the caller has them)."""
    count = len(numerators)
    if terms is None:
        terms = (float(scale) * numerators) / denominators
    value = float(terms.sum()) / count
    magnitude = float(np.abs(terms).sum()) / count
    err = (magnitude + abs(value)) * _REL + 1e-300

    def exact() -> Fraction:
        pairs = zip(numerators.tolist(), denominators.tolist(), strict=True)
        return Fraction(scale) * _tree_sum([Fraction(n, d) for n, d in pairs]) / count

    return Approx(value, err, exact)


def _tree_sum(parts: list[Fraction]) -> Fraction:
    """Sum fractions pairwise, keeping the intermediate denominators small."""
    if not parts:
        return Fraction(0)
    while len(parts) > 1:
        parts = [parts[i] + parts[i + 1] if i + 1 < len(parts) else parts[i] for i in range(0, len(parts), 2)]
    return parts[0]


def change(current: Figure | None, previous: Figure | None) -> float | None:
    """round(100 * (v - v') / |v'|, 1); None when v' is 0 or either value is undefined."""
    if current is None or previous is None:
        return None
    if isinstance(current, Fraction) and isinstance(previous, Fraction):
        if previous == 0:
            return None
        return rounded(100 * (current - previous) / abs(previous), 1)
    cur = _approx(current)
    prev = _approx(previous)
    if abs(prev.value) > 2 * prev.err:
        corners = [
            100 * (c - p) / abs(p)
            for c in (cur.value - cur.err, cur.value + cur.err)
            for p in (prev.value - prev.err, prev.value + prev.err)
        ]
        # the change is monotonic in each value, so the corners bound it; pad for their own rounding
        lo, hi = min(corners), max(corners)
        pad = max(abs(lo), abs(hi)) * _REL
        if math.isfinite(lo) and math.isfinite(hi):
            a, b = _half_away_units((lo - pad) * 10), _half_away_units((hi + pad) * 10)
            if a == b:
                return _as_float(Fraction(a, 10))
    return change(cur.exact(), prev.exact())


def _approx(x: Figure) -> Approx:
    if isinstance(x, Approx):
        return x
    return Approx(float(x), abs(float(x)) * _REL + 1e-300, lambda: x)
