"""The WebSocket protocol of `/ws/analytics`: what clients send and what the server answers.

Client -> server (JSON text frames):
    {"type": "set_preferences", "filter": "humans", "period": "7d"}   either field may be left out
    {"type": "ping"}

Server -> client:
    connected         {type, session_id, filter, period, push_interval, heartbeat_interval}
    analytics_update  {type, data: <the REST dashboard object>}
    preferences_ack   {type, filter, period}
    pong / heartbeat  {type, timestamp}
    error             {type, error: {code, message}}   the connection stays open
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Final

from cymetica_mcp.errors import AnalyticsError
from cymetica_mcp.models import Filter, Period
from cymetica_mcp.web._envelope import dumps
from cymetica_mcp.windows import iso

ACCEPTED: Final = (
    'accepted: {"type":"set_preferences","filter":"all|humans|agents","period":"24h|7d|30d"} '
    'or {"type":"ping"}'
)
PREFERENCE_FIELDS: Final = frozenset({"type", "filter", "period"})
MAX_REASON_BYTES: Final = 123


@dataclass(frozen=True, slots=True)
class Ping:
    """`{"type": "ping"}`: answered with `pong`."""


@dataclass(frozen=True, slots=True)
class SetPreferences:
    """`set_preferences`: the new filter and/or period (None keeps the current one)."""

    filter: Filter | None
    period: Period | None


ClientMessage = Ping | SetPreferences


def _bad(message: str) -> AnalyticsError:
    return AnalyticsError("bad_message", f"{message}; {ACCEPTED}")


def parse_client_message(text: str) -> ClientMessage:
    """A client's text frame as a message, or `bad_message` / `invalid_filter` / `invalid_period`."""
    try:
        value = json.loads(text)
    except RecursionError:  # valid JSON, but deeper than the parser goes ([[[[...]]]] in 4 KiB)
        raise _bad("the message is nested too deeply") from None
    except ValueError:
        raise _bad("the message is not valid JSON") from None
    if not isinstance(value, dict):
        raise _bad(f"the message must be a JSON object, not {json_type(value)}")
    kind = value.get("type")
    if kind == "ping":
        return Ping()
    if kind == "set_preferences":
        unknown = sorted(set(value) - PREFERENCE_FIELDS)
        if unknown:
            raise _bad(f"unknown field {', '.join(map(repr, unknown))} in set_preferences")
        filter = Filter.parse(value["filter"]) if "filter" in value else None
        period = Period.parse(value["period"]) if "period" in value else None
        return SetPreferences(filter, period)
    if kind is None:
        raise _bad('the message has no "type"')
    raise _bad(f"unknown message type {str(kind)[:40]!r}")


def json_type(value: object) -> str:
    """The JSON name of a decoded value's type (`null`, `boolean`, `number`, `string`, `array`, `object`)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _seconds(value: float) -> int | float:
    """Whole seconds as an int (30, not 30.0), anything else as given."""
    return int(value) if value == int(value) else value


def _now() -> str:
    return iso(int(time.time()))


def connected(session_id: int, filter: Filter, period: Period, push: float, heartbeat: float) -> str:
    """The first message of a session."""
    return dumps(
        {
            "type": "connected",
            "session_id": session_id,
            "filter": filter.value,
            "period": period.value,
            "push_interval": _seconds(push),
            "heartbeat_interval": _seconds(heartbeat),
        }
    ).decode()


def analytics_update(dashboard_json: bytes, data_version: int) -> str:
    """An update around an already serialised dashboard (serialised once per tick and group), with the
    store's data version it was computed from (a client can tell that versions never go backwards)."""
    return (
        f'{{"type":"analytics_update","data_version":{data_version},"data":' + dashboard_json.decode() + "}"
    )


def preferences_ack(filter: Filter, period: Period) -> str:
    """The answer to `set_preferences`: the session's filter and period from now on."""
    return dumps({"type": "preferences_ack", "filter": filter.value, "period": period.value}).decode()


def pong() -> str:
    """The answer to `ping`."""
    return dumps({"type": "pong", "timestamp": _now()}).decode()


def heartbeat() -> str:
    """The periodic keep-alive."""
    return dumps({"type": "heartbeat", "timestamp": _now()}).decode()


def error(exc: AnalyticsError) -> str:
    """An error message; the connection stays open."""
    return dumps({"type": "error", "error": {"code": exc.code, "message": exc.message}}).decode()


def close_reason(text: str) -> str:
    """`text` cut to fit a close frame's reason (at most 123 bytes of UTF-8)."""
    data = text.encode("utf-8")
    if len(data) <= MAX_REASON_BYTES:
        return text
    return data[: MAX_REASON_BYTES - 3].decode("utf-8", "ignore") + "..."
