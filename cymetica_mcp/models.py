"""The one pydantic model of the dashboard, shared by every door, and the enums that select it."""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field

from cymetica_mcp.errors import AnalyticsError, ErrorCode

_REFUSALS: dict[str, ErrorCode] = {
    "filter": "invalid_filter",
    "period": "invalid_period",
    "scope": "invalid_argument",
}


class _Choice(StrEnum):
    """A closed set of values read from users: parse() refuses anything else with the contract's code."""

    @classmethod
    def parse(cls, value: object) -> Self:
        """Parse a user-supplied value or raise an error naming every accepted value."""
        if isinstance(value, str) and value in cls._value2member_map_:
            return cls(value)
        name = cls.__name__.lower()
        accepted = ", ".join(member.value for member in cls)
        raise AnalyticsError(_REFUSALS[name], f"{name} must be one of {accepted}; got {_show(value)}")


class Filter(_Choice):
    """The population: every user, humans only, or agents (bots) only."""

    ALL = "all"
    HUMANS = "humans"
    AGENTS = "agents"


class Period(_Choice):
    """The window length: 24 hours, 7 days or 30 days ending now."""

    H24 = "24h"
    D7 = "7d"
    D30 = "30d"


class Scope(_Choice):
    """What an API key may do: `read` dashboards on every door, `ingest` (write) users and trades."""

    READ = "read"
    INGEST = "ingest"

    @classmethod
    def parse_list(cls, text: str) -> tuple[Scope, ...]:
        """Comma-separated scopes ("read,ingest"), each known, at least one; in declaration order."""
        wanted = {cls.parse(part.strip()) for part in text.split(",") if part.strip()}
        if not wanted:
            accepted = ", ".join(member.value for member in cls)
            raise AnalyticsError("invalid_argument", f"give at least one scope ({accepted}), comma-separated")
        return tuple(member for member in cls if member in wanted)


def _show(value: object) -> str:
    """A short, safe rendering of a rejected value for an error message."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class MetricCard(_Frozen):
    """One headline figure: its label, rounded value, change against the previous window and unit."""

    label: str = Field(description="Human-readable name of the figure.")
    value: int | float = Field(
        description="The figure over the current window, rounded (0.0 when undefined)."
    )
    change: float | None = Field(
        description="Percent change against the same figure one period earlier (1 decimal); "
        "null when the earlier figure is 0 or either is undefined."
    )
    suffix: Literal["", "USDC", "%"] = Field(
        description='Unit: "" for counts, "USDC" for amounts, "%" for rates.'
    )


class Metrics(_Frozen):
    """The five metric cards plus the request's filter, period and evaluation instant."""

    active_users: MetricCard
    trading_volume: MetricCard
    retention_rate: MetricCard
    avg_capital: MetricCard
    avg_roi: MetricCard
    filter: Filter
    period: Period
    timestamp: str = Field(description="The evaluation instant (ISO 8601 UTC, trailing Z).")


class VolumePoint(_Frozen):
    """Traded volume in one bucket of the window (USDC, 2 decimals) and its trade count."""

    timestamp: str = Field(description="Bucket start (ISO 8601 UTC).")
    total_volume: float
    bot_volume: float
    human_volume: float
    trade_count: int


class ActivityPoint(_Frozen):
    """Distinct users of the population with at least one trade in one bucket."""

    timestamp: str = Field(description="Bucket start (ISO 8601 UTC).")
    total_users: int
    bot_users: int
    human_users: int


class ProfitabilityBucket(_Frozen):
    """How many active users with capital have a window ROI in one range."""

    range: str
    count: int


class Dashboard(_Frozen):
    """The analytics dashboard: the REST object, the MCP `data`, the WebSocket `data`."""

    metrics: Metrics
    volume_over_time: list[VolumePoint]
    user_activity: list[ActivityPoint]
    profitability_distribution: list[ProfitabilityBucket]

    def to_wire(self) -> dict[str, Any]:
        """The JSON-ready dict every door sends."""
        return self.model_dump(mode="json")

    def describe(self) -> str:
        """The MCP description line, exactly in the contract's form."""
        m = self.metrics
        return (
            f"Analytics ({m.filter.value}, {m.period.value}): "
            f"{m.active_users.value} active users, "
            f"${m.trading_volume.value:,.2f} volume, "
            f"{m.retention_rate.value:.1f}% retention, "
            f"{m.avg_roi.value:.1f}% avg ROI"
        )
