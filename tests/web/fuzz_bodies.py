"""Hypothesis strategies for ingest bodies that get past the header: CSV and JSON Lines rows of users
and trades, each value drawn from valid forms, edge cases and hostile text.

The published document only says "a string" (the columns are in prose: they may come in any order),
so schemathesis alone mostly sends text the importer refuses at its first line. These bodies reach the
row parser, the value parsers and the store with values a platform could really send, and worse.
"""

from __future__ import annotations

import json
from contextlib import suppress
from typing import Any, Final

from hypothesis import strategies as st

from cymetica_mcp.windows import iso
from tests.conftest import NOW

COLUMNS: Final = {
    "trades": ("trade_id", "user_id", "ts", "volume_usdc", "pnl_usdc"),
    "users": ("user_id", "kind", "capital_usdc", "created_at"),
}
HOSTILE: Final = st.text(max_size=24) | st.sampled_from(
    ["", " ", '"', '""', ",", "\n", "\r\n", "\x00", "\ufeff", "null", "NaN", "-inf", "1e308", "０", "٣"]
)
USERS: Final = st.sampled_from(["a0000000", "a0000001", "h0000002", "h0000003", "platform-u-1"])
"""Users of the demo store (and of the document's example), so that trades can name them."""
IDS: Final = st.from_regex(r"\A[A-Za-z0-9_.:-]{1,64}\Z")
INSTANTS: Final = st.integers(NOW - 90 * 86_400, NOW + 86_400).map(iso) | st.sampled_from(
    [
        "2026-02-30T00:00:00Z",
        "2026-03-20T11:00:00",
        "2026-03-20T11:00:00+14:00",
        "2026-03-20T11:00:00-23:59",
        "2026-03-20T11:00:00.123456789Z",
        "0001-01-01T00:00:00Z",
        "9999-12-31T23:59:59Z",
        "1970-01-01T00:00:00Z",
        "2026-03-20",
        "20260320T110000Z",
    ]
)
AMOUNTS: Final = st.decimals(min_value=-(10**9), max_value=10**9, places=6, allow_nan=False).map(str)
VOLUMES: Final = st.decimals(min_value="0.000001", max_value=10**9, places=6).map(str)
EDGES: Final = st.integers(-(2**70), 2**70).map(str) | st.sampled_from(
    ["0", "-0", "0.0000001", "1e3", "1,000", "+5", ".5", "5.", "00012", "9" * 40, "4611686018427.387904"]
)


def _mostly(valid: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """`valid` eight times in ten, an edge case or hostile text otherwise: whole rows often pass."""
    return st.integers(0, 9).flatmap(lambda n: HOSTILE if n == 0 else EDGES if n == 1 else valid)


VALUES: Final = {
    "trade_id": _mostly(IDS),
    "user_id": _mostly(USERS | IDS),
    "kind": _mostly(st.sampled_from(["human", "agent"])),
    "ts": _mostly(INSTANTS),
    "created_at": _mostly(INSTANTS),
    "volume_usdc": _mostly(VOLUMES),
    "pnl_usdc": _mostly(AMOUNTS),
    "capital_usdc": _mostly(VOLUMES | AMOUNTS),
}
JSON_ODDITIES: Final[st.SearchStrategy[Any]] = st.sampled_from(
    [None, True, 1.5e308, -(2**80), [], {}, {"a": [1]}, 0.1]
)


@st.composite
def _header(draw: st.DrawFn, what: str) -> list[str]:
    columns = list(draw(st.permutations(COLUMNS[what])))
    change = draw(st.sampled_from(["none"] * 6 + ["drop", "repeat", "extra"]))
    if change == "drop":
        columns.pop(draw(st.integers(0, len(columns) - 1)))
    elif change == "repeat":
        columns.append(draw(st.sampled_from(columns)))
    elif change == "extra":
        columns.append(draw(HOSTILE))
    return columns


def _csv_field(text: str) -> str:
    return '"' + text.replace('"', '""') + '"' if any(c in text for c in ',"\r\n') else text


@st.composite
def csv_body(draw: st.DrawFn, what: str) -> bytes:
    """A CSV body for `what` (users or trades)."""
    header = draw(_header(what))
    rows = draw(st.lists(st.tuples(*(VALUES.get(c, HOSTILE) for c in header)), max_size=3))
    lines = [",".join(_csv_field(c) for c in header)] + [",".join(_csv_field(v) for v in row) for row in rows]
    return ("\n".join(lines) + draw(st.sampled_from(["\n", "", "\r\n"]))).encode("utf-8")


@st.composite
def jsonl_body(draw: st.DrawFn, what: str) -> bytes:
    """A JSON Lines body for `what`: objects of those fields, values as strings, numbers or worse."""
    header = draw(_header(what))
    lines = []
    for _ in range(draw(st.integers(0, 5))):
        row: dict[str, Any] = {}
        for column in header:
            value: Any = draw(VALUES.get(column, HOSTILE))
            if draw(st.integers(0, 5)) == 0:
                value = draw(JSON_ODDITIES)
            elif column.endswith("_usdc") and draw(st.booleans()):
                with suppress(ValueError):
                    value = json.loads(value)  # an amount as a JSON number when it reads as one
            row[column] = value
        lines.append(json.dumps(row, ensure_ascii=draw(st.booleans())))
    if draw(st.integers(0, 9)) == 0:
        lines.append(draw(st.sampled_from(["[]", "1", '"x"', "{", "{}", "null"])))
    return ("\n".join(lines) + "\n").encode("utf-8")


def body_for(what: str, media_type: str) -> st.SearchStrategy[bytes]:
    """Bodies of `what` in the format `media_type` names."""
    return csv_body(what) if media_type == "text/csv" else jsonl_body(what)
