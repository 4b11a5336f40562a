"""The metric definitions of CONTRACT.md sections 4 and 5, computed from a `TradeIndex`.

Pure functions: no clock, no I/O, no cache. The expensive part of a dashboard is each trader's
activity over the windows W, W', W'' and the last bucket; a `PeriodState` holds it for the traders of
one population at one (period, now). A state of everyone serves the three filters as slices of it;
a dashboard of humans or agents alone needs only that population's state (about half the work), and
the two join into everyone's. An import moves a state forward by just the new trades
(`PeriodState.advanced`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from fractions import Fraction
from typing import Final

import numpy as np
from numpy.typing import NDArray

from cymetica_mcp.engine._index import TradeIndex
from cymetica_mcp.engine._runs import I64, SHIFT, TS_MASK, Flags, group_sum
from cymetica_mcp.exact import Figure, change, exact_sum, mean_ratio, rounded
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
_ROI_FLOORS: Final = (ROI_BOUNDS[0] - 1, ROI_BOUNDS[-1])
_ROI_SLOT_OF_FLOOR: Final = np.array(
    [sum(bound <= k for bound in ROI_BOUNDS) for k in range(_ROI_FLOORS[0], _ROI_FLOORS[1] + 1)],
    dtype=np.int64,
)
"""Entry k - _ROI_FLOORS[0]: how many bounds are <= k (the range of any ROI whose floor is k; the
bounds are whole numbers)."""


COUNTS: Final = np.int32
"""Per-trader trade counts of a window are held in 32 bits (an index of 2^31 trades or more: 64)."""


@dataclass(frozen=True, slots=True)
class Activity:
    """Each trader's trade count, volume and profit over one window (in the state's trader order)."""

    trades: NDArray[np.signedinteger]
    volume: I64
    pnl: I64

    def part(self, users: slice) -> Activity:
        """The same figures for a contiguous range of the traders (views: nothing is copied)."""
        return Activity(self.trades[users], self.volume[users], self.pnl[users])

    def joined(self, other: Activity) -> Activity:
        """These traders' figures followed by the other's."""
        return Activity(*(np.concatenate(pair) for pair in zip(self.figures(), other.figures(), strict=True)))

    def figures(self) -> tuple[NDArray[np.signedinteger], I64, I64]:
        """Trade counts, volumes and profits."""
        return self.trades, self.volume, self.pnl

    def plus(self, slot: I64, volume: I64, pnl: I64) -> Activity:
        """These figures with more trades added (`slot`: each trade's trader position)."""
        n = self.trades.size
        return Activity(
            (self.trades + np.bincount(slot, minlength=n)).astype(self.trades.dtype),
            self.volume + group_sum(slot, volume, n),
            self.pnl + group_sum(slot, pnl, n),
        )


@dataclass(frozen=True, slots=True)
class PeriodState:
    """The activity of every trader of a population for one period at one instant: trade count,
    volume and profit over W and W', and only whether they traded over W'' (for the previous
    retention) and W's last bucket (for its distinct users). Only W and W' need the prefix sums,
    which is where the memory traffic is.

    The traders are held humans first, then agents (each in id order), so a population is a
    contiguous range of every array: `split` humans, then the agents.
    """

    version: int
    period: Period
    now: int
    held: Filter
    """The population whose traders the state holds (ALL: both kinds)."""
    traders: tuple[I64, I64, I64]
    """The index's `traders` this state was laid out from (a new tuple means a new layout)."""
    users: I64
    """The traders, in the state's order (each one's capital is read from the index at the state's
    version: a user's capital may change on any import)."""
    split: int
    spans: tuple[tuple[int, int], ...]
    """W and W' (summed), then W'' and W's last bucket (marked)."""
    acts: tuple[Activity, Activity]
    """Over W and W'."""
    traded: tuple[Flags, Flags]
    """Who traded in W'' and in W's last bucket."""

    @classmethod
    def of(cls, index: TradeIndex, period: Period, now: int, held: Filter = Filter.ALL) -> PeriodState:
        """Computed from scratch for the traders of `held`: a directory lookup per trader and span
        boundary."""
        w, w1, w2 = windows(period, now)
        tail = (w.start + (w.count - 1) * w.size, w.end)
        summed, marked = ((w.start, w.end), (w1.start, w1.end)), ((w2.start, w2.end), tail)
        humans = index.traders[0]
        kept = [index.traders[kind] for kind in KINDS[held]]
        users = kept[0] if len(kept) == 1 else np.concatenate(kept)
        sums, traded = index.totals(users, summed, marked)
        counts = COUNTS if index.trade_count < 2**31 else np.int64
        cur, prev = (Activity(trades.astype(counts), volume, pnl) for trades, volume, pnl in sums)
        return cls(
            index.version,
            period,
            now,
            held,
            index.traders,
            users,
            humans.size if 0 in KINDS[held] else 0,
            (*summed, *marked),
            (cur, prev),
            (traded[0], traded[1]),
        )

    @classmethod
    def joined(cls, humans: PeriodState, agents: PeriodState) -> PeriodState:
        """The state of everyone, from the states of the humans and of the agents (same version,
        period, instant and layout)."""
        if (humans.held, agents.held) != (Filter.HUMANS, Filter.AGENTS) or (
            humans.version,
            humans.period,
            humans.now,
            humans.traders,
        ) != (agents.version, agents.period, agents.now, agents.traders):
            raise ValueError("only a humans state and an agents state of one version and instant join")

        flags: list[Flags] = [np.concatenate(pair) for pair in zip(humans.traded, agents.traded, strict=True)]
        return replace(
            humans,
            held=Filter.ALL,
            users=np.concatenate([humans.users, agents.users]),
            acts=(humans.acts[0].joined(agents.acts[0]), humans.acts[1].joined(agents.acts[1])),
            traded=(flags[0], flags[1]),
        )

    def covers(self, filter: Filter) -> bool:
        """Does the state hold every trader of `filter`?"""
        return self.held is Filter.ALL or filter is self.held

    def population(self, filter: Filter) -> slice:
        """The range of the traders that `filter` keeps."""
        if not self.covers(filter):
            raise ValueError(f"a state of {self.held.value} does not hold the {filter.value}")
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
        kind = index.kind[user]
        slot = np.where(kind == 0, np.searchsorted(humans, user), self.split + np.searchsorted(agents, user))
        volume, pnl = new.volumes(), new.pnls()
        held = np.isin(kind, KINDS[self.held])
        inside = [held & (ts >= a) & (ts <= b) for a, b in self.spans]
        acts = [
            act.plus(slot[mine], volume[mine], pnl[mine]) if mine.any() else act
            for act, mine in zip(self.acts, inside[:2], strict=True)
        ]
        traded = [flags.copy() for flags in self.traded]
        for flags, mine in zip(traded, inside[2:], strict=True):
            flags[slot[mine]] = True
        return replace(
            self,
            version=index.version,
            acts=(acts[0], acts[1]),
            traded=(traded[0], traded[1]),
        )


@dataclass(frozen=True, slots=True)
class Traders:
    """The active users of one window and population: how many, their volume and capital, and the
    profit, capital and floating-point ROI (%) of those with capital (the ROI figures are over them)."""

    count: int
    volume: int
    capital: int
    pnl: I64
    with_capital: I64
    roi: NDArray[np.float64]

    @classmethod
    def of(cls, act: Activity, capital: I64) -> Traders:
        """From the window's activity and each of its users' capital (same order).

        Users are picked by index (`flatnonzero`, then `take`): with a mask as irregular as who traded,
        a boolean selection costs several times more."""
        active = np.flatnonzero(act.trades > 0)
        count = int(active.size)
        mine = capital.take(active)
        total = exact_sum(mine)
        keep = active[mine > 0]
        # users without a trade in the window have volume 0: the sum over everyone is the active users'
        pnl, with_capital = act.pnl.take(keep), capital.take(keep)
        return cls(count, int(act.volume.sum()), total, pnl, with_capital, (100.0 * pnl) / with_capital)


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
    avg_roi = mean_ratio(traders.pnl, traders.with_capital, 100, traders.roi) if traders.pnl.size else None
    return CardValues(Fraction(traders.count), volume, avg_capital, avg_roi)


def retention(now: Flags, before: Flags) -> Fraction | None:
    """100 · |A(now) ∩ A(before)| / |A(before)|, undefined when A(before) is empty (from whether each
    user traded in the two windows)."""
    earlier = int(np.count_nonzero(before))
    if earlier == 0:
        return None
    return Fraction(100 * int(np.count_nonzero(before & now)), earlier)


def distribution(traders: Traders) -> list[ProfitabilityBucket]:
    """Active users with capital counted by exact window ROI into the eight ranges."""
    pnl, capital = traders.pnl, traders.with_capital
    counts = [0] * len(ROI_RANGES)
    if pnl.size:
        if int(np.abs(pnl).max()) < _INT64_ROI_SAFE and int(capital.max()) < _INT64_ROI_SAFE:
            counts = np.bincount(_roi_slots(pnl, capital, traders.roi), minlength=len(ROI_RANGES)).tolist()
        else:
            for p, c in zip(pnl.tolist(), capital.tolist(), strict=True):
                counts[sum(100 * p >= bound * c for bound in ROI_BOUNDS)] += 1
    return [
        ProfitabilityBucket(range=label, count=count) for label, count in zip(ROI_RANGES, counts, strict=True)
    ]


def _roi_slots(pnl: I64, capital: I64, roi: NDArray[np.float64] | None = None) -> I64:
    """Per user: how many ROI bounds b have 100·pnl >= b·capital (the range index), exactly.

    Placed by the floor of the floating-point ROI (`roi`, computed here when not given), then checked
    in integers wherever the ROI lies so near a whole number that the float could fall on the wrong
    side of it (values below 2^55 keep the products exact). The float is within a few ulps of the
    ROI; a user is in doubt when moving it by a billionth (relative, at least 1e-9 absolute) changes
    its floor. The bounds are whole numbers, so a table indexed by the floor gives the range: a few
    passes over the users, where a binary search or a comparison with each bound takes several times
    longer."""
    if roi is None:
        roi = (100.0 * pnl) / capital
    tolerance = np.abs(roi)
    np.maximum(tolerance, 1.0, out=tolerance)
    tolerance *= 1e-9
    low = np.floor(roi - tolerance)
    high = np.floor(roi + tolerance)
    doubt = np.flatnonzero(low != high)
    np.clip(low, *_ROI_FLOORS, out=low)
    slots: I64 = _ROI_SLOT_OF_FLOOR.take(low.astype(np.int64) - _ROI_FLOORS[0])
    if doubt.size:
        p, c = pnl[doubt], capital[doubt]
        slots[doubt] = sum(((100 * p) >= (bound * c)).astype(np.int64) for bound in ROI_BOUNDS)
    return slots


def usdc(micro: int) -> float:
    """Non-negative micro-USDC rounded half away from zero to cents."""
    return ((micro + 5_000) // 10_000) / 100


def series(
    index: TradeIndex, state: PeriodState, filter: Filter, window: Window
) -> tuple[list[VolumePoint], list[ActivityPoint]]:
    """The per-bucket volume and activity series: full buckets from the rollup, the last one exact.

    The last bucket's volume and trade count are W's less its full buckets; its distinct users are
    the traders with a trade in it."""
    full = window.count - 1
    volume, trades, distinct = index.rollups[window.size].window(window.start // window.size, full)
    volume = np.concatenate([volume, np.zeros((2, 1), dtype=np.int64)], axis=1)
    trades = np.concatenate([trades, np.zeros((2, 1), dtype=np.int64)], axis=1)
    distinct = np.concatenate([distinct, np.zeros((2, 1), dtype=np.int64)], axis=1)
    for k, population in ((0, Filter.HUMANS), (1, Filter.AGENTS)):
        if k not in KINDS[filter]:
            volume[k] = trades[k] = distinct[k] = 0
            continue
        mine = state.population(population)
        current = state.acts[0].part(mine)
        volume[k, -1] = int(current.volume.sum()) - int(volume[k, :-1].sum())
        trades[k, -1] = int(current.trades.sum()) - int(trades[k, :-1].sum())
        distinct[k, -1] = int(np.count_nonzero(state.traded[1][mine]))
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
    """The dashboard for (filter, period) evaluated at `now`, exactly as CONTRACT.md defines it
    (from the state of that population alone)."""
    return dashboard(index, PeriodState.of(index, period, now, filter), filter)


def dashboard(index: TradeIndex, state: PeriodState, filter: Filter) -> Dashboard:
    """The dashboard of one population, from a state at the index's version."""
    population = state.population(filter)
    cur, prev = (act.part(population) for act in state.acts)
    prev2 = state.traded[0][population]
    traded, traded1 = cur.trades > 0, prev.trades > 0
    capital = index.capital[state.users[population]]
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
        retention_rate=_card("Retention Rate", "%", retention(traded, traded1), retention(traded1, prev2), 1),
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
