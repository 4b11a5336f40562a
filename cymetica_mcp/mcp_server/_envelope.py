"""What `et_analytics_dashboard` accepts and returns: its arguments and the contract's envelopes.

Success: `{success: true, data: <Dashboard>, description, meta}` where `data` is exactly the REST
object and `meta` says what was computed (windows, instant, store version). Failure:
`{success: false, error: {code, message}}` on a result with `isError` set. Both are sent as
structured content and as the same JSON in a text block for clients without structured content.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

from mcp.types import CallToolResult, TextContent
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from cymetica_mcp.config import parse_now
from cymetica_mcp.engine import ROI_RANGES, Result
from cymetica_mcp.errors import AnalyticsError
from cymetica_mcp.models import Dashboard, Filter, Period
from cymetica_mcp.windows import SPECS, Window, iso, windows

ARGUMENTS: Final = ("filter", "period", "as_of")
MAX_AS_OF: Final = 64
RESULT_ENTRIES: Final = 64
"""Encoded success results kept (9 live pairs, each cached and not, plus historical `as_of` ones)."""


class DashboardArguments(BaseModel):
    """Which users, which window, at which instant."""

    # The published input schema only: `parse_arguments` validates, so every refusal has our code.

    model_config = ConfigDict(extra="forbid", title="et_analytics_dashboard arguments")

    filter: Literal["all", "humans", "agents"] = Field(
        default="all",
        description="Which users count: all (default), humans, or agents (trading bots).",
    )
    period: Literal["24h", "7d", "30d"] = Field(
        default="24h",
        description="Window length ending at as_of: 24h (24 hourly buckets, default), "
        "7d (28 six-hour buckets) or 30d (30 daily buckets).",
    )
    as_of: str | None = Field(
        default=None,
        description="Optional evaluation instant, ISO 8601 with offset such as 2026-03-20T12:00:00Z, "
        "not in the future: ask about a past moment reproducibly. Omit for now.",
    )


INPUT_SCHEMA: Final[dict[str, Any]] = DashboardArguments.model_json_schema()


@dataclass(frozen=True, slots=True)
class Query:
    """Validated tool arguments: which dashboard, at which instant (None: the server's now)."""

    filter: Filter
    period: Period
    as_of: int | None


def parse_arguments(arguments: Mapping[str, object], now: int) -> Query:
    """Validate raw tool arguments against the schema, or raise the contract's error for the first fault."""
    unknown = sorted(set(arguments) - set(ARGUMENTS))
    if unknown:
        named = ", ".join(repr(name[:40]) for name in unknown[:5]) + (", ..." if len(unknown) > 5 else "")
        raise AnalyticsError(
            "invalid_argument",
            f"unknown argument {named}; accepted: filter (all, humans, agents), "
            "period (24h, 7d, 30d), as_of (ISO 8601 UTC time)",
        )
    filter = Filter.parse(arguments.get("filter", Filter.ALL.value))
    period = Period.parse(arguments.get("period", Period.H24.value))
    return Query(filter, period, parse_as_of(arguments.get("as_of"), now))


def parse_as_of(value: object, now: int) -> int | None:
    """An optional ISO 8601 instant that is not after `now`, or `invalid_as_of`."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise AnalyticsError(
            "invalid_as_of",
            f"as_of must be a string, an ISO 8601 UTC time such as 2026-03-20T12:34:56Z; got {type(value).__name__}",
        )
    if len(value) > MAX_AS_OF:
        raise AnalyticsError(
            "invalid_as_of",
            f"as_of is {len(value)} characters long; accepted: an ISO 8601 UTC time such as 2026-03-20T12:34:56Z",
        )
    instant = parse_now(value)
    if instant > now:
        raise AnalyticsError(
            "invalid_as_of",
            f"as_of {iso(instant)} is in the future (the server's now is {iso(now)}); "
            "accepted: an ISO 8601 UTC time not after now, or no as_of for now",
        )
    return instant


class Span(BaseModel):
    """A closed interval of time, both ends included (ISO 8601 UTC)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    start: str
    end: str


class Meta(BaseModel):
    """What the dashboard was computed from, so an agent can cite exactly what it saw."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    as_of: str = Field(description="The evaluation instant (= data.metrics.timestamp).")
    window: Span = Field(description="The current window W: oldest bucket start to as_of.")
    previous_window: Span = Field(description="W shifted back by one period: what `change` compares with.")
    bucket_seconds: int = Field(description="Length of one series bucket in seconds.")
    buckets: int = Field(description="Number of points in each series.")
    data_version: int = Field(description="The store's import counter the figures were computed from.")
    computed_at: str = Field(description="When the server computed these figures (ISO 8601 UTC).")
    cached: bool = Field(description="Whether this result was served from the server's short-lived cache.")


class Success(BaseModel):
    """The tool's successful result (CONTRACT.md section 6) plus `meta`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    success: Literal[True] = True
    data: Dashboard = Field(description="The dashboard: exactly the REST object.")
    description: str = Field(description="One-line summary of the headline figures.")
    meta: Meta


class ErrorBody(BaseModel):
    """What went wrong, in words that say what is accepted."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    code: str = Field(
        description="Stable, lower-case code: invalid_filter, invalid_period, invalid_as_of, "
        "invalid_argument, unauthorized or internal."
    )
    message: str = Field(description="What was wrong and what is accepted.")


class Failure(BaseModel):
    """The tool's failed result (sent with `isError: true`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    success: Literal[False] = False
    error: ErrorBody


_BUCKETS: Final = sorted(spec.buckets for spec in SPECS.values())
SERIES: Final[dict[str, tuple[int, int, str]]] = {
    "volume_over_time": (_BUCKETS[0], _BUCKETS[-1], "One point per bucket of the window, oldest first"),
    "user_activity": (_BUCKETS[0], _BUCKETS[-1], "One point per bucket of the window, oldest first"),
    "profitability_distribution": (
        len(ROI_RANGES),
        len(ROI_RANGES),
        f"All eight ranges of window ROI, in this order: {', '.join(ROI_RANGES)}",
    ),
}
"""The dashboard's series: the fewest and most points (24h: 24, 7d: 28, 30d: 30; ROI: 8), what they are."""
CARDS: Final = ("active_users", "trading_volume", "retention_rate", "avg_capital", "avg_roi")


def _output_schema() -> dict[str, Any]:
    """Success or failure, every object with exactly its keys; the figures' types in words.

    Strict clients validate error results' structured content too, hence the union. Derived from
    the models, then made cheap to validate for clients that interpret it on every call (the Python
    SDK's client runs `jsonschema`, which spends ~5 us on each instance value a subschema is
    applied to, twice that through a `$ref`, and almost nothing on a `true` subschema):
    - no `$ref`, no generated titles, `type: [number, null]` rather than an `anyOf` of types;
    - the success/failure discriminator, every object's exact keys (`required` plus
      `additionalProperties: false`), the `filter`/`period` enums and the series lengths are
      validated: ~20 subschema applications a call instead of ~470;
    - a metric card's, `meta`'s and a series point's fields are `true` or not listed, their types
      and meanings written in the description: the series points alone are ~300 values.
    docs/mcp.md explains the trade; the tests validate real results against this schema and
    against the models themselves.
    """
    union = TypeAdapter(Success | Failure).json_schema()
    flat: dict[str, Any] = _flatten(union, union.pop("$defs"))
    success, failure = flat["anyOf"]
    for branch in (success, failure):
        branch["required"] = ["success", *(name for name in branch["required"] if name != "success")]
        branch["properties"]["success"].pop("default")
    envelope = success["properties"]
    envelope["meta"] = _keys_only(envelope["meta"], f"{envelope['meta']['description']} Keys: ")
    data = envelope["data"]["properties"]
    metrics = data["metrics"]
    card = metrics["properties"][CARDS[0]]
    metrics["description"] += f" Each of the five cards: {_words(card)}."
    for name in CARDS:
        metrics["properties"][name] = _keys_only(card)
    for name, (fewest, most, about) in SERIES.items():
        point = data[name]["items"]
        data[name] = {
            "type": "array",
            "minItems": fewest,
            "maxItems": most,
            "description": f"{about}. {point['description']} Each point: {_words(point)}.",
        }
    return {"type": "object", **flat}


def _flatten(schema: Any, defs: dict[str, Any]) -> Any:
    """`schema` with every `#/$defs/` reference inlined, titles dropped and `anyOf` of types as `type`."""
    if isinstance(schema, list):
        return [_flatten(item, defs) for item in schema]
    if not isinstance(schema, dict):
        return schema
    ref = schema.get("$ref")
    if isinstance(ref, str):
        schema = {**defs[ref.removeprefix("#/$defs/")], **{k: v for k, v in schema.items() if k != "$ref"}}
    out = {
        key: _flatten(value, defs)
        for key, value in schema.items()
        if not (key == "title" and isinstance(value, str))
    }
    options = out.get("anyOf")
    if isinstance(options, list) and all(isinstance(o, dict) and list(o) == ["type"] for o in options):
        types = [o["type"] for o in options if not (o["type"] == "integer" and {"type": "number"} in options)]
        del out["anyOf"]
        out["type"] = types[0] if len(types) == 1 else types
    return out


def _keys_only(schema: dict[str, Any], words: str | None = None) -> dict[str, Any]:
    """An object schema that checks its exact keys but not their values (`words`: described instead)."""
    keys: dict[str, Any] = {
        "type": "object",
        "properties": dict.fromkeys(schema["properties"], True),
        "required": schema["required"],
        "additionalProperties": False,
    }
    if words is not None:
        keys = {"description": f"{words}{_words(schema)}.", **keys}
    return keys


def _words(schema: dict[str, Any]) -> str:
    """An object schema's fields in words: `{name: type (what it is), ...}`."""
    parts = []
    for name, field in schema["properties"].items():
        about = field.get("description", "").rstrip(".")
        if about[1:2].islower():  # "The figure ..." -> "the figure ...", but "W shifted ..." stays
            about = about[:1].lower() + about[1:]
        about = f" ({about})" if about else ""
        parts.append(f"{name}: {_type_words(field)}{about}")
    return "{" + ", ".join(parts) + "}"


def _type_words(field: dict[str, Any]) -> str:
    if "enum" in field:
        return " or ".join(json.dumps(value) for value in field["enum"])
    if field.get("type") == "object" and "properties" in field:
        return "{" + ", ".join(f"{k}: {_type_words(v)}" for k, v in field["properties"].items()) + "}"
    kind = field.get("type", "any")
    return " or ".join(kind) if isinstance(kind, list) else str(kind)


OUTPUT_SCHEMA: Final[dict[str, Any]] = _output_schema()


def _span(window: Window) -> Span:
    return Span(start=iso(window.start), end=iso(window.end))


def success(result: Result) -> Success:
    """The success envelope for an engine result."""
    period = result.dashboard.metrics.period
    current, previous, _ = windows(period, result.now)
    meta = Meta(
        as_of=iso(result.now),
        window=_span(current),
        previous_window=_span(previous),
        bucket_seconds=current.size,
        buckets=current.count,
        data_version=result.data_version,
        computed_at=result.computed_at,
        cached=result.cached,
    )
    return Success(data=result.dashboard, description=result.dashboard.describe(), meta=meta)


def to_json(envelope: Mapping[str, object]) -> str:
    """Compact JSON for a text block."""
    return json.dumps(envelope, separators=(",", ":"), ensure_ascii=False)


def success_result(envelope: Success) -> CallToolResult:
    """A tool result carrying the success envelope as structured content and as JSON text."""
    body = envelope.model_dump(mode="json")
    return CallToolResult(content=[TextContent(type="text", text=to_json(body))], structured_content=body)


@dataclass(frozen=True, slots=True)
class Encoded:
    """One engine result as the tool sends it: the finished `CallToolResult` and its JSON text."""

    dashboard: Dashboard
    result: CallToolResult
    text: str


class SuccessResults:
    """The success result of each recent engine result, built once and then served as is.

    While the engine's cache holds a dashboard it returns the same `Dashboard` object with the same
    instant, version and computation time (hits differ only in `cached`), so the envelope, its dump
    and its JSON text are built once per (dashboard, cached) rather than on every call. Entries keep
    their dashboard alive, so an `id` in the table always names the object it was built from. Used
    from the event loop only (no lock); at most `size` entries, least recently used dropped first.
    """

    def __init__(self, size: int = RESULT_ENTRIES) -> None:
        self.size = size
        self._entries: OrderedDict[tuple[int, int, int, str, bool], Encoded] = OrderedDict()

    def get(self, result: Result) -> Encoded:
        """The encoded success envelope of `result`, from the table or built now."""
        key = (id(result.dashboard), result.now, result.data_version, result.computed_at, result.cached)
        entry = self._entries.get(key)
        if entry is not None and entry.dashboard is result.dashboard:
            self._entries.move_to_end(key)
            return entry
        call_result = success_result(success(result))
        text = call_result.content[0].text  # type: ignore[union-attr]
        entry = Encoded(result.dashboard, call_result, text)
        self._entries[key] = entry
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)
        return entry


def failure_result(error: AnalyticsError) -> CallToolResult:
    """An `isError` tool result carrying `{success: false, error: {code, message}}`."""
    body = Failure(error=ErrorBody(code=error.code, message=error.message)).model_dump(mode="json")
    return CallToolResult(
        content=[TextContent(type="text", text=to_json(body))], structured_content=body, is_error=True
    )
