"""A deliberately simple reference implementation of CONTRACT.md sections 2-5, for cross-checking the engine.

It imports nothing from `cymetica_mcp`: it reads the contract's definitions straight over raw rows, one
loop per figure, with integers (micro-USDC, seconds) and `fractions.Fraction` for every ratio, and rounds
each figure half away from zero from its exact value. Speed is irrelevant; obviousness is the point.

Rows are plain dicts, as stored after import:

- user:  ``{"user_id": str, "kind": "human" | "agent", "capital": int micro-USDC, "created_at": int s}``
- trade: ``{"trade_id": str, "user_id": str, "ts": int s, "volume": int micro-USDC, "pnl": int micro-USDC}``

`dashboard(users, trades, filter, period, now)` returns the REST object of CONTRACT.md section 6.
`write_users_csv` / `write_trades_csv` write rows in the import format of section 1.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from fractions import Fraction
from pathlib import Path
from typing import Any

MICRO = 1_000_000
HOUR = 3_600
DAY = 86_400

# period -> (P seconds, bucket seconds, number of buckets): CONTRACT.md section 2
PERIODS: dict[str, tuple[int, int, int]] = {
    "24h": (DAY, HOUR, 24),
    "7d": (7 * DAY, 6 * HOUR, 28),
    "30d": (30 * DAY, DAY, 30),
}
FILTERS = ("all", "humans", "agents")
PAIRS: list[tuple[str, str]] = [(f, p) for f in FILTERS for p in PERIODS]

# (label, lower bound included or None, upper bound excluded or None), in the contract's order
RANGES: list[tuple[str, int | None, int | None]] = [
    ("< -50%", None, -50),
    ("-50% to -20%", -50, -20),
    ("-20% to -5%", -20, -5),
    ("-5% to 0%", -5, 0),
    ("0% to 5%", 0, 5),
    ("5% to 20%", 5, 20),
    ("20% to 50%", 20, 50),
    (">= 50%", 50, None),
]

User = Mapping[str, Any]
Trade = Mapping[str, Any]


# --------------------------------------------------------------------------- small helpers


def iso(ts: int) -> str:
    """Whole UTC seconds -> '2026-03-20T12:34:56Z'."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def round_half_away(x: Fraction, places: int) -> float:
    """Round an exact value half away from zero to `places` decimals; return the nearest float."""
    scale = 10**places
    scaled = abs(x) * scale
    # floor(scaled + 1/2) with integers only
    n = (2 * scaled.numerator + scaled.denominator) // (2 * scaled.denominator)
    sign = -1 if x < 0 else 1
    return float(Fraction(sign * n, scale))


def change(v: Fraction | None, v_prev: Fraction | None) -> float | None:
    """round(100 * (v - v') / |v'|, 1); None when v' is 0 or either value is undefined (None)."""
    if v is None or v_prev is None or v_prev == 0:
        return None
    return round_half_away(100 * (v - v_prev) / abs(v_prev), 1)


def shown(v: Fraction | None, places: int) -> float:
    """An undefined value is shown as 0.0; a defined one rounded to `places` decimals."""
    return 0.0 if v is None else round_half_away(v, places)


def windows(period: str, now: int) -> tuple[int, int, int, int]:
    """(start, P, bucket, n) for a period at `now`."""
    p, b, n = PERIODS[period]
    start = (now // b) * b - (n - 1) * b
    return start, p, b, n


def stored(users: Iterable[User], trades: Iterable[Trade]) -> tuple[dict[str, User], list[Trade]]:
    """The rows as the store keeps them: last user row per user_id wins, first trade row per trade_id."""
    by_id: dict[str, User] = {}
    for u in users:
        by_id[u["user_id"]] = u
    kept: list[Trade] = []
    seen: set[str] = set()
    for t in trades:
        if t["trade_id"] not in seen:
            seen.add(t["trade_id"])
            kept.append(t)
    return by_id, kept


def in_population(user: User, filter: str) -> bool:
    if filter == "all":
        return True
    if filter == "humans":
        return bool(user["kind"] == "human")
    if filter == "agents":
        return bool(user["kind"] == "agent")
    raise ValueError(f"unknown filter {filter!r}")


# --------------------------------------------------------------------------- the figures


def trades_between(trades: Sequence[Trade], lo: int, hi: int) -> list[Trade]:
    """Trades with lo <= ts <= hi (both ends included)."""
    return [t for t in trades if lo <= t["ts"] <= hi]


def active(trades: Sequence[Trade]) -> set[str]:
    return {t["user_id"] for t in trades}


def volume(trades: Sequence[Trade]) -> Fraction:
    return Fraction(sum(t["volume"] for t in trades), MICRO)


def retention(now_active: set[str], before_active: set[str]) -> Fraction | None:
    if not before_active:
        return None
    return Fraction(100 * len(now_active & before_active), len(before_active))


def avg_capital(users: Mapping[str, User], act: set[str]) -> Fraction | None:
    if not act:
        return None
    return Fraction(sum(users[u]["capital"] for u in act), MICRO * len(act))


def rois(users: Mapping[str, User], trades: Sequence[Trade]) -> dict[str, Fraction]:
    """roi_u = 100 * sum(pnl) / capital for each trader of `trades` with capital > 0."""
    pnl: dict[str, int] = {}
    for t in trades:
        pnl[t["user_id"]] = pnl.get(t["user_id"], 0) + t["pnl"]
    return {u: Fraction(100 * s, users[u]["capital"]) for u, s in pnl.items() if users[u]["capital"] > 0}


def avg_roi(users: Mapping[str, User], trades: Sequence[Trade]) -> Fraction | None:
    r = rois(users, trades)
    if not r:
        return None
    return sum(r.values(), Fraction(0)) / len(r)


def card(label: str, suffix: str, value: Any, change_: float | None) -> dict[str, Any]:
    return {"label": label, "value": value, "change": change_, "suffix": suffix}


def dashboard(
    users: Iterable[User], trades: Iterable[Trade], filter: str, period: str, now: int
) -> dict[str, Any]:
    """The dashboard REST object for (filter, period) at `now`, straight from the contract."""
    by_id, all_trades = stored(users, trades)
    pop = [t for t in all_trades if in_population(by_id[t["user_id"]], filter)]
    start, p, b, n = windows(period, now)

    w = trades_between(pop, start, now)
    w1 = trades_between(pop, start - p, now - p)
    w2 = trades_between(pop, start - 2 * p, now - 2 * p)
    a, a1, a2 = active(w), active(w1), active(w2)

    n_users, n_users1 = Fraction(len(a)), Fraction(len(a1))
    vol, vol1 = volume(w), volume(w1)
    ret, ret1 = retention(a, a1), retention(a1, a2)
    cap, cap1 = avg_capital(by_id, a), avg_capital(by_id, a1)
    roi, roi1 = avg_roi(by_id, w), avg_roi(by_id, w1)

    metrics = {
        "active_users": card("Active Users", "", len(a), change(n_users, n_users1)),
        "trading_volume": card("Trading Volume", "USDC", shown(vol, 2), change(vol, vol1)),
        "retention_rate": card("Retention Rate", "%", shown(ret, 1), change(ret, ret1)),
        "avg_capital": card("Avg Capital", "USDC", shown(cap, 2), change(cap, cap1)),
        "avg_roi": card("Avg ROI", "%", shown(roi, 1), change(roi, roi1)),
        "filter": filter,
        "period": period,
        "timestamp": iso(now),
    }

    volume_over_time: list[dict[str, Any]] = []
    user_activity: list[dict[str, Any]] = []
    for i in range(n):
        lo = start + i * b
        in_bucket = [t for t in w if lo <= t["ts"] < lo + b]  # w already has ts <= now
        bots = [t for t in in_bucket if by_id[t["user_id"]]["kind"] == "agent"]
        humans = [t for t in in_bucket if by_id[t["user_id"]]["kind"] == "human"]
        volume_over_time.append(
            {
                "timestamp": iso(lo),
                "total_volume": round_half_away(volume(in_bucket), 2),
                "bot_volume": round_half_away(volume(bots), 2),
                "human_volume": round_half_away(volume(humans), 2),
                "trade_count": len(in_bucket),
            }
        )
        user_activity.append(
            {
                "timestamp": iso(lo),
                "total_users": len(active(in_bucket)),
                "bot_users": len(active(bots)),
                "human_users": len(active(humans)),
            }
        )

    counts = dict.fromkeys((label for label, _, _ in RANGES), 0)
    for r in rois(by_id, w).values():
        for label, lo_b, hi_b in RANGES:
            if (lo_b is None or r >= lo_b) and (hi_b is None or r < hi_b):
                counts[label] += 1
                break
    distribution = [{"range": label, "count": counts[label]} for label, _, _ in RANGES]

    return {
        "metrics": metrics,
        "volume_over_time": volume_over_time,
        "user_activity": user_activity,
        "profitability_distribution": distribution,
    }


# --------------------------------------------------------------------------- comparing JSON values


def differences(got: Any, want: Any, path: str = "") -> list[str]:
    """Where JSON value `got` differs from `want`, one 'path: got != want' line each.

    Numbers compare by value (84250 == 84250.0, as the contract says), except that where `want` is an
    integer (a count) `got` must be an integer too; null, booleans and strings must match exactly.
    """
    if isinstance(want, dict):
        if not isinstance(got, dict):
            return [f"{path}: got {got!r}, want an object"]
        out = [f"{path}.{k}: missing" for k in want if k not in got]
        out += [f"{path}.{k}: unexpected" for k in got if k not in want]
        for k in want:
            if k in got:
                out += differences(got[k], want[k], f"{path}.{k}")
        return out
    if isinstance(want, list):
        if not isinstance(got, list) or len(got) != len(want):
            return [f"{path}: got {got!r}, want {len(want)} items"]
        return [
            d
            for i, (g, w) in enumerate(zip(got, want, strict=True))
            for d in differences(g, w, f"{path}[{i}]")
        ]
    same_kind = (
        (want is None) == (got is None)
        and isinstance(want, bool) == isinstance(got, bool)
        and isinstance(want, str) == isinstance(got, str)
        and (not isinstance(want, int) or isinstance(got, int))
    )
    if not same_kind or got != want:
        return [f"{path}: got {got!r}, want {want!r}"]
    return []


# --------------------------------------------------------------------------- import-format writers


def decimal_text(micro: int) -> str:
    """Integer micro-USDC -> a plain decimal with at most 6 places ('100', '-12.5', '0.000001')."""
    sign = "-" if micro < 0 else ""
    whole, frac = divmod(abs(micro), MICRO)
    if frac == 0:
        return f"{sign}{whole}"
    return f"{sign}{whole}.{frac:06d}".rstrip("0")


def write_users_csv(path: Path, users: Iterable[User]) -> Path:
    """Write user rows as `user_id,kind,capital_usdc,created_at`."""
    with path.open("w", newline="") as f:
        out = csv.writer(f, lineterminator="\n")
        out.writerow(["user_id", "kind", "capital_usdc", "created_at"])
        for u in users:
            out.writerow([u["user_id"], u["kind"], decimal_text(u["capital"]), iso(u.get("created_at", 0))])
    return path


def write_trades_csv(path: Path, trades: Iterable[Trade]) -> Path:
    """Write trade rows as `trade_id,user_id,ts,volume_usdc,pnl_usdc`."""
    with path.open("w", newline="") as f:
        out = csv.writer(f, lineterminator="\n")
        out.writerow(["trade_id", "user_id", "ts", "volume_usdc", "pnl_usdc"])
        for t in trades:
            out.writerow(
                [t["trade_id"], t["user_id"], iso(t["ts"]), decimal_text(t["volume"]), decimal_text(t["pnl"])]
            )
    return path


def read_users_csv(path: Path) -> list[dict[str, Any]]:
    """Read a users CSV in the import format (plain decimals, ISO Z times) into reference rows."""
    with path.open(newline="") as f:
        return [
            {
                "user_id": row["user_id"],
                "kind": row["kind"],
                "capital": micro_of(row["capital_usdc"]),
                "created_at": seconds_of(row["created_at"]),
            }
            for row in csv.DictReader(f)
        ]


def read_trades_csv(path: Path) -> list[dict[str, Any]]:
    """Read a trades CSV in the import format into reference rows."""
    with path.open(newline="") as f:
        return [
            {
                "trade_id": row["trade_id"],
                "user_id": row["user_id"],
                "ts": seconds_of(row["ts"]),
                "volume": micro_of(row["volume_usdc"]),
                "pnl": micro_of(row["pnl_usdc"]),
            }
            for row in csv.DictReader(f)
        ]


def micro_of(text: str) -> int:
    """'-12.5' -> -12_500_000 (plain decimals only, exactly)."""
    value = Fraction(text) * MICRO
    if value.denominator != 1:
        raise ValueError(f"more than 6 decimals: {text!r}")
    return int(value)


def seconds_of(text: str) -> int:
    """'2026-03-20T12:34:56Z' -> whole UTC seconds (this helper only reads the Z form the writers use)."""
    if not text.endswith("Z"):
        raise ValueError(f"expected a trailing Z: {text!r}")
    parsed = datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    return int(parsed.timestamp())
