"""One field at a time: the import's value rules (CONTRACT.md section 1), each refusal a message
that says what was wrong and what is accepted."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Final

KINDS: Final = {"human": 0, "agent": 1}
MAX_WHOLE_DIGITS: Final = 12
"""Amounts below 10^12 USDC: integer micro-USDC then fit 64-bit arithmetic with room for sums."""
MIN_TS: Final = 0  # 1970-01-01T00:00:00Z
MAX_TS: Final = 2**33 - 1  # 2242-03-16: the engine packs (user, ts) into one 64-bit key
_SCALE: Final = (1, 100_000, 10_000, 1_000, 100, 10, 1)


class BadValue(ValueError):
    """A field failed validation; the message is the row's reason."""


class JsonNumber(str):
    """The exact source text of a JSON number (never read through a binary float)."""


def parse_micro(text: object, name: str) -> int:
    """A plain decimal with at most 6 places -> integer micro-USDC."""
    if isinstance(text, str):
        whole, dot, frac = text.partition(".")
        digits = whole[1:] if whole.startswith("-") else whole
        if digits.isascii() and digits.isdigit() and (not dot or (frac.isascii() and frac.isdigit())):
            if len(frac) > 6:
                raise BadValue(f"{name} has more than 6 decimals: {short(text)}")
            if len(digits.lstrip("0")) > MAX_WHOLE_DIGITS:
                raise BadValue(
                    f"{name} is out of range (at most {MAX_WHOLE_DIGITS} digits before the point): {short(text)}"
                )
            value = int(digits) * 1_000_000 + (int(frac) * _SCALE[len(frac)] if frac else 0)
            return -value if whole.startswith("-") else value
    if isinstance(text, str):
        raise BadValue(
            f"{name} must be a plain decimal such as 100, -12.5 or 0.000001 "
            f"(no exponent, sign only '-', no separators), got {short(text)}"
        )
    raise BadValue(f"{name} must be a decimal number, got {short(text)}")


def parse_ts(text: object, name: str) -> int:
    """ISO 8601 with an offset -> whole UTC seconds (fractions dropped)."""
    if not isinstance(text, str):
        raise BadValue(f"{name} must be an ISO 8601 UTC time string, got {short(text)}")
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise BadValue(
            f"{name} is not an ISO 8601 time (expected e.g. 2026-03-20T12:34:56Z): {short(text)}"
        ) from None
    if parsed.tzinfo is None:
        raise BadValue(f"{name} has no UTC offset (add Z or +00:00): {short(text)}")
    seconds = math.floor(parsed.timestamp())  # drops the fraction of a second
    if not MIN_TS <= seconds <= MAX_TS:
        raise BadValue(f"{name} must be between 1970 and 2242: {short(text)}")
    return seconds


def text_id(value: object, name: str) -> str:
    if isinstance(value, JsonNumber):
        raise BadValue(f'{name} must be text, a JSON string such as "{value}", got the number {value}')
    if not isinstance(value, str) or not 1 <= len(value) <= 64:
        raise BadValue(f"{name} must be text of 1 to 64 characters, got {short(value)}")
    return value


def short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 48 else text[:45] + "..."


def parse_user(row: tuple[object, ...]) -> tuple[str, int, int, int]:
    user_id = text_id(row[0], "user_id")
    kind = row[1]
    if not isinstance(kind, str) or kind not in KINDS:
        raise BadValue(f"kind must be 'human' or 'agent', got {short(kind)}")
    capital = parse_micro(row[2], "capital_usdc")
    if capital < 0:
        raise BadValue(f"capital_usdc must be >= 0, got {short(row[2])}")
    return user_id, KINDS[kind], capital, parse_ts(row[3], "created_at")


def parse_trade(row: tuple[object, ...]) -> tuple[str, str, int, int, int]:
    trade_id = text_id(row[0], "trade_id")
    user_id = text_id(row[1], "user_id")
    ts = parse_ts(row[2], "ts")
    volume = parse_micro(row[3], "volume_usdc")
    if volume <= 0:
        raise BadValue(f"volume_usdc must be > 0, got {short(row[3])}")
    return trade_id, user_id, ts, volume, parse_micro(row[4], "pnl_usdc")
