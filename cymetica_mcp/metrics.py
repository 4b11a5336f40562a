"""The metric definitions of CONTRACT.md sections 4 and 5, computed from a `TradeIndex`.

Pure functions: no clock, no I/O, no cache. The expensive part of a dashboard is each trader's
activity over the windows W, W', W'' and the last bucket; a `PeriodState` holds it for every trader
at one (period, now), so the three filters are masks of one state, and an import moves a state
forward by just the new trades (`PeriodState.advanced`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from fractions import Fraction
from typing import Final

import numpy as np

from cymetica_mcp.exact import Figure, change, mean_ratio, rounded
from cymetica_mcp.index import I64, SHIFT, TS_MASK, TradeIndex, group_sum
from cymetica_mcp.models import (
    ActivityPoint,
    Dashboard,
    Filter,
    MetricCard,
    Metrics,
    Period,
    ProfitabilityBucket,
    VolumePoint,
)
from cymetica_mcp.windows import Window, iso, windows

MICRO: Final = 1_000_000
ROI_BOUNDS: Final = (-50, -20, -5, 0, 5, 20, 50)
ROI_RANGES: Final = (
    "< -50%", "-50% to -20%", "-20% to -5%", "-5% to 0%", "0% to 5%", "5% to 20%", "20% to 50%", ">= 50%",
)  # fmt: skip
KINDS: Final[dict[Filter, tuple[int, ...]]] = {Filter.ALL: (0, 1), Filter.HUMANS: (0,), Filter.AGENTS: (1,)}
_INT64_ROI_SAFE: Final = 2**55
_ROI_BOUNDS_F: Final = np.array(ROI_BOUNDS, dtype=np.float64)


@dataclass(frozen=True, slots=True)
class Activity:
    """Each population user's trade count, volume and profit over one window."""

    users: I64
    trades: I64
    volume: I64
    pnl: I64

    @property
    def active(self) -> np.ndarray[tuple[int], np.dtype[np.bool_]]:
        """Which users traded in the window."""
        return self.trades > 0

    def part(self, users: slice) -> Activity:
        """The same figures for a contiguous range of the users (views: nothing is copied)."""
        return Activity(self.users[users], self.trades[users], self.volume[users], self.pnl[users])

    def plus(self, slot: I64, volume: I64, pnl: I64) -> Activity:
        """These figures with more trades added (`slot`: each trade's position in `users`)."""
        n = self.users.size
        return Activity(
            self.users,
            self.trades + np.bincount(slot, minlength=n),
            self.volume + group_sum(slot, volume, n),
            self.pnl + group_sum(slot, pnl, n),
        )


@dataclass(frozen=True, slots=True)
class PeriodState:
    """Every trader's activity over W, W', W'' and W's last bucket, for one period at one instant.

    The traders are held humans first, then agents (each in id order), so a population is a
    contiguous range of every array: `split` humans, then the agents.
    """

    version: int
    period: Period
    now: int
    traders: tuple[I64, I64, I64]
    """The index's `traders` this state was laid out from (a new tuple means a new layout)."""
    users: I64
    capital: I64
    """Each trader's capital at the state's version (a user's capital may change on any import)."""
    split: int
    spans: tuple[tuple[int, int], ...]
    acts: tuple[Activity, ...]

    @classmethod
    def of(cls, index: TradeIndex, period: Period, now: int) -> PeriodState:
        """Computed from scratch: a directory lookup per trader and span boundary."""
        w, w1, w2 = windows(period, now)
        tail = (w.start + (w.count - 1) * w.size, w.end)
        spans = ((w.start, w.end), (w1.start, w1.end), (w2.start, w2.end), tail)
        humans, agents, _ = index.traders
        users = np.concatenate([humans, agents])
        acts = tuple(Activity(users, *found) for found in index.totals(users, spans))
        return cls(
            index.version, period, now, index.traders, users, index.capital[users], humans.size, spans, acts
        )

    def population(self, filter: Filter) -> slice:
        """The range of the traders that `filter` keeps."""
        if filter is Filter.HUMANS:
            return slice(0, self.split)
        if filter is Filter.AGENTS:
            return slice(self.split, self.users.size)
        return slice(0, self.users.size)

    def advanced(self, index: TradeIndex) -> PeriodState | None:
        """This state moved to the index's version using only the newest trades; None if it cannot be."""
        if index.version == self.version:
            return self
        if index.previous_version != self.version or index.traders is not self.traders:
            return None  # more than one import behind, or new traders or a kind changed: recompute
        new = index.latest
        user, ts = new.key >> SHIFT, new.key & TS_MASK
        humans, agents, _ = self.traders
        slot = np.where(
            index.kind[user] == 0, np.searchsorted(humans, user), self.split + np.searchsorted(agents, user)
        )
        volume, pnl = new.volumes(), new.pnls()
        acts = []
        for act, (a, b) in zip(self.acts, self.spans, strict=True):
            inside = (ts >= a) & (ts <= b)
            acts.append(act.plus(slot[inside], volume[inside], pnl[inside]) if inside.any() else act)
        return replace(self, version=index.version, capital=index.capital[self.users], acts=tuple(acts))


@dataclass(frozen=True, slots=True)
class Traders:
    """The active users of one window and population: how many, their volume and capital, and the
    profit and capital of those with capital (the ROI figures are over them)."""

    count: int
    volume: int
    capital: int
    pnl: I64
    with_capital: I64

    @classmethod
    def of(cls, act: Activity, capital: I64) -> Traders:
        """From the window's activity and each of its users' capital (same order)."""
        active = act.trades > 0
        count = int(np.count_nonzero(active))
        mine = capital[active]
        wraps = count and int(mine.max()) * count >= 2**62  # an int64 sum could wrap
        total = sum(mine.tolist()) if wraps else int(mine.sum())
        keep = active & (capital > 0)
        # users without a trade in the window have volume 0: the sum over everyone is the active users'
        return cls(count, int(act.volume.sum()), total, act.pnl[keep], capital[keep])


@dataclass(frozen=True, slots=True)
class CardValues:
    """The unrounded card values over one window (None where undefined)."""

    active_users: Fraction
    trading_volume: Fraction
    avg_capital: Figure | None
    avg_roi: Figure | None


def card_values(traders: Traders) -> CardValues:
    """Active users, volume (USDC), mean capital (USDC) and mean ROI (%) over the active users."""
    volume = Fraction(traders.volume, MICRO)
    if traders.count == 0:
        return CardValues(Fraction(0), volume, None, None)
    avg_capital = Fraction(traders.capital, traders.count * MICRO)
    avg_roi = mean_ratio(traders.pnl, traders.with_capital, 100) if traders.pnl.size else None
    return CardValues(Fraction(traders.count), volume, avg_capital, avg_roi)


def retention(now: Activity, before: Activity) -> Fraction | None:
    """100 · |A(now) ∩ A(before)| / |A(before)|, undefined when A(before) is empty."""
    earlier = int(before.active.sum())
    if earlier == 0:
        return None
    return Fraction(100 * int((now.active & before.active).sum()), earlier)


def distribution(traders: Traders) -> list[ProfitabilityBucket]:
    """Active users with capital counted by exact window ROI into the eight ranges."""
    pnl, capital = traders.pnl, traders.with_capital
    counts = [0] * len(ROI_RANGES)
    if pnl.size:
        if int(np.abs(pnl).max()) < _INT64_ROI_SAFE and int(capital.max()) < _INT64_ROI_SAFE:
            counts = np.bincount(_roi_slots(pnl, capital), minlength=len(ROI_RANGES)).tolist()
        else:
            for p, c in zip(pnl.tolist(), capital.tolist(), strict=True):
                counts[sum(100 * p >= bound * c for bound in ROI_BOUNDS)] += 1
    return [
        ProfitabilityBucket(range=label, count=count) for label, count in zip(ROI_RANGES, counts, strict=True)
    ]


def _roi_slots(pnl: I64, capital: I64) -> I64:
    """Per user: how many ROI bounds b have 100·pnl >= b·capital (the range index), exactly.

    Placed by the floating-point ROI, then checked in integers wherever the ROI lies so near a bound
    that the float could fall on the wrong side of it (values below 2^55 keep the products exact)."""
    roi = (100 * pnl) / capital
    slots = np.searchsorted(_ROI_BOUNDS_F, roi, side="right")
    below = _ROI_BOUNDS_F[np.maximum(slots - 1, 0)]
    above = _ROI_BOUNDS_F[np.minimum(slots, len(ROI_BOUNDS) - 1)]
    gap = np.minimum(np.abs(roi - below), np.abs(roi - above))
    doubt = np.flatnonzero(gap <= 1e-9 * np.maximum(np.abs(roi), 1.0))
    if doubt.size:
        p, c = pnl[doubt], capital[doubt]
        slots[doubt] = sum(((100 * p) >= (bound * c)).astype(np.int64) for bound in ROI_BOUNDS)
    found: I64 = slots.astype(np.int64)
    return found


def usdc(micro: int) -> float:
    """Non-negative micro-USDC rounded half away from zero to cents."""
    return ((micro + 5_000) // 10_000) / 100


def series(
    index: TradeIndex, state: PeriodState, filter: Filter, window: Window
) -> tuple[list[VolumePoint], list[ActivityPoint]]:
    """The per-bucket volume and activity series: full buckets from the rollup, the last one exact."""
    full = window.count - 1
    volume, trades, distinct = index.rollups[window.size].window(window.start // window.size, full)
    volume = np.concatenate([volume, np.zeros((2, 1), dtype=np.int64)], axis=1)
    trades = np.concatenate([trades, np.zeros((2, 1), dtype=np.int64)], axis=1)
    distinct = np.concatenate([distinct, np.zeros((2, 1), dtype=np.int64)], axis=1)
    for k, population in ((0, Filter.HUMANS), (1, Filter.AGENTS)):
        tail = state.acts[3].part(state.population(population))
        volume[k, -1] = int(tail.volume.sum())
        trades[k, -1] = int(tail.trades.sum())
        distinct[k, -1] = int(np.count_nonzero(tail.trades))
    for k in (0, 1):
        if k not in KINDS[filter]:
            volume[k] = trades[k] = distinct[k] = 0
    vol_points, user_points = [], []
    for i, ts in enumerate(window.bucket_starts()):
        stamp = iso(ts)
        human, bot = int(volume[0, i]), int(volume[1, i])
        vol_points.append(
            VolumePoint(
                timestamp=stamp,
                total_volume=usdc(human + bot),
                bot_volume=usdc(bot),
                human_volume=usdc(human),
                trade_count=int(trades[0, i] + trades[1, i]),
            )
        )
        user_points.append(
            ActivityPoint(
                timestamp=stamp,
                total_users=int(distinct[0, i] + distinct[1, i]),
                bot_users=int(distinct[1, i]),
                human_users=int(distinct[0, i]),
            )
        )
    return vol_points, user_points


def _card(label: str, suffix: str, value: Figure | None, previous: Figure | None, places: int) -> MetricCard:
    shown: int | float = 0.0 if value is None else rounded(value, places)
    return MetricCard.model_validate(
        {"label": label, "value": shown, "change": change(value, previous), "suffix": suffix}
    )


def compute(index: TradeIndex, filter: Filter, period: Period, now: int) -> Dashboard:
    """The dashboard for (filter, period) evaluated at `now`, exactly as CONTRACT.md defines it."""
    return dashboard(index, PeriodState.of(index, period, now), filter)


def dashboard(index: TradeIndex, state: PeriodState, filter: Filter) -> Dashboard:
    """The dashboard of one population, from a state at the index's version."""
    population = state.population(filter)
    cur, prev, prev2 = (act.part(population) for act in state.acts[:3])
    capital = state.capital[population]
    traders = Traders.of(cur, capital)
    v, v1 = card_values(traders), card_values(Traders.of(prev, capital))
    active = MetricCard(
        label="Active Users",
        value=int(v.active_users),
        change=change(v.active_users, v1.active_users),
        suffix="",
    )
    metrics = Metrics(
        active_users=active,
        trading_volume=_card("Trading Volume", "USDC", v.trading_volume, v1.trading_volume, 2),
        retention_rate=_card("Retention Rate", "%", retention(cur, prev), retention(prev, prev2), 1),
        avg_capital=_card("Avg Capital", "USDC", v.avg_capital, v1.avg_capital, 2),
        avg_roi=_card("Avg ROI", "%", v.avg_roi, v1.avg_roi, 1),
        filter=filter,
        period=state.period,
        timestamp=iso(state.now),
    )
    vol_points, user_points = series(index, state, filter, windows(state.period, state.now)[0])
    return Dashboard(
        metrics=metrics,
        volume_over_time=vol_points,
        user_activity=user_points,
        profitability_distribution=distribution(traders),
    )
