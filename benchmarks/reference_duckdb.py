"""The reference: DuckDB computing the same nine dashboards in SQL, over the same rows held in memory.

Independent of the engine on purpose: DuckDB parses the CSV files itself, and the window, bucket and
rounding arithmetic of CONTRACT.md is written again here, in SQL. Amounts are integer micro-USDC and
every figure is computed exactly: sums and counts in BIGINT/HUGEINT, ratios rounded half away from
zero by integer division (`rhalf`). The one figure that is not a ratio of two integers, the mean ROI
(a mean of fractions with different denominators), is bounded instead: each term 100·pnl/capital is
truncated to 18 decimals in HUGEINT, so the mean lies within 1e-18 of the sum; when the bounds round
apart (an exact tie, in practice never) it is computed exactly from the per-user rows with Fractions.

Tables: users(id, kind, capital) and trades(user_ref, ts, volume, pnl), kind 0 human / 1 agent,
ts in UTC seconds; trades laid out by time by default (see `ORDERS`), later imports appended.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Final

import duckdb

MICRO: Final = 1_000_000
SCALE: Final = 10**18
"""Fixed-point scale of the ROI terms: truncating each to 1e-18 % leaves the mean within 1e-18 %."""
FILTERS: Final = ("all", "humans", "agents")
PERIODS: Final = ("24h", "7d", "30d")
PAIRS: Final = tuple((f, p) for f in FILTERS for p in PERIODS)
KINDS: Final = {"all": (0, 1), "humans": (0,), "agents": (1,)}
SHAPES: Final = {"24h": (86_400, 3_600, 24), "7d": (604_800, 21_600, 28), "30d": (2_592_000, 86_400, 30)}
"""period -> (length P, bucket b, bucket count n) in seconds, CONTRACT.md section 2."""
RANGES: Final = (
    "< -50%", "-50% to -20%", "-20% to -5%", "-5% to 0%", "0% to 5%", "5% to 20%", "20% to 50%", ">= 50%",
)  # fmt: skip

_SETUP: Final = """
CREATE MACRO rhalf(x, y) AS
    CASE WHEN x >= 0 THEN (2 * x + y) // (2 * y) ELSE -((2 * (-x) + y) // (2 * y)) END;
CREATE MACRO iso(t) AS strftime(make_timestamp(CAST(t AS BIGINT) * 1000000), '%Y-%m-%dT%H:%M:%SZ');
"""
"""rhalf(x, y): x / y (y > 0) rounded half away from zero, in integers (`//` truncates, on x >= 0 floors)."""

_LOAD_USERS: Final = """
CREATE TABLE users AS
SELECT CAST(row_number() OVER () AS INTEGER) AS id, user_id,
       CAST(CASE kind WHEN 'human' THEN 0 WHEN 'agent' THEN 1 END AS TINYINT) AS kind,
       CAST(CAST(capital_usdc AS DECIMAL(18, 6)) * 1000000 AS BIGINT) AS capital
FROM read_csv(?, header = true, all_varchar = true)
"""

_INSERT_TRADES: Final = """
INSERT INTO trades
SELECT user_ref, ts, volume, pnl FROM (
    SELECT u.id AS user_ref,
           epoch_us(CAST(t.ts AS TIMESTAMPTZ)) // 1000000 AS ts,
           CAST(CAST(t.volume_usdc AS DECIMAL(18, 6)) * 1000000 AS BIGINT) AS volume,
           CAST(CAST(t.pnl_usdc AS DECIMAL(18, 6)) * 1000000 AS BIGINT) AS pnl,
           t.trade_id
    FROM read_csv(?, header = true, all_varchar = true) AS t
    JOIN users AS u ON u.user_id = t.user_id
)
ORDER BY {order}
"""
ORDERS: Final = {"ts": "ts, trade_id", "file": "trade_id"}
"""How the trades table is laid out: by time (as trades arrive on a live platform, so DuckDB's zone maps
skip the row groups outside a window: the strong reference, the default) or in file order (the demo
generator writes trades in random time order; its trade ids count up in file order)."""

_DASHBOARD: Final = """
WITH
pop AS (SELECT id, kind, capital FROM users WHERE kind IN ({kinds})),
dated AS (
    SELECT user_ref, volume, pnl,
           CASE WHEN ts >= {s0} THEN 0 WHEN ts BETWEEN {s1} AND {e1} THEN 1
                WHEN ts BETWEEN {s2} AND {e2} THEN 2 END AS w
    FROM trades WHERE ts BETWEEN {s2} AND {e0}
),
per_user AS MATERIALIZED (
    SELECT d.w, d.user_ref AS id, p.capital AS cap, d.vol, d.pnl
    FROM (SELECT w, user_ref, sum(volume) AS vol, sum(pnl) AS pnl
          FROM dated WHERE w IS NOT NULL GROUP BY w, user_ref) AS d
    JOIN pop AS p ON p.id = d.user_ref
),
masks AS (SELECT id, bit_or(1 << w) AS m FROM per_user GROUP BY id),
ret AS (
    SELECT count(*) FILTER (WHERE m & 2 = 2) AS a1, count(*) FILTER (WHERE m & 4 = 4) AS a2,
           count(*) FILTER (WHERE m & 3 = 3) AS a01, count(*) FILTER (WHERE m & 6 = 6) AS a12
    FROM masks
),
cards AS (
    SELECT
        count(*) FILTER (WHERE w = 0) AS n0,
        count(*) FILTER (WHERE w = 1) AS n1,
        coalesce(sum(vol) FILTER (WHERE w = 0), 0)::HUGEINT AS vol0,
        coalesce(sum(vol) FILTER (WHERE w = 1), 0)::HUGEINT AS vol1,
        coalesce(sum(cap) FILTER (WHERE w = 0), 0)::HUGEINT AS cap0,
        coalesce(sum(cap) FILTER (WHERE w = 1), 0)::HUGEINT AS cap1,
        count(*) FILTER (WHERE w = 0 AND cap > 0) AS nc0,
        count(*) FILTER (WHERE w = 1 AND cap > 0) AS nc1,
        coalesce(sum(pnl::HUGEINT * CAST('{roi_scale}' AS HUGEINT) // greatest(cap, 1)) FILTER (WHERE w = 0 AND cap > 0), 0) AS roi0,
        coalesce(sum(pnl::HUGEINT * CAST('{roi_scale}' AS HUGEINT) // greatest(cap, 1)) FILTER (WHERE w = 1 AND cap > 0), 0) AS roi1
    FROM per_user WHERE w < 2
),
dist AS (
    SELECT CASE WHEN 100 * pnl::HUGEINT < -50 * cap THEN 0 WHEN 100 * pnl::HUGEINT < -20 * cap THEN 1
                WHEN 100 * pnl::HUGEINT < -5 * cap THEN 2 WHEN pnl < 0 THEN 3
                WHEN 100 * pnl::HUGEINT < 5 * cap THEN 4 WHEN 100 * pnl::HUGEINT < 20 * cap THEN 5
                WHEN 100 * pnl::HUGEINT < 50 * cap THEN 6 ELSE 7 END AS slot,
           count(*) AS c
    FROM per_user WHERE w = 0 AND cap > 0 GROUP BY slot
),
per_bucket AS (
    SELECT (ts - {s0}) // {b} AS i, user_ref, count(*) AS trades, sum(volume) AS vol
    FROM trades WHERE ts BETWEEN {s0} AND {e0} GROUP BY ALL
),
buckets AS (
    SELECT u.i,
           coalesce(sum(u.trades) FILTER (WHERE p.kind = 0), 0) AS th,
           coalesce(sum(u.trades) FILTER (WHERE p.kind = 1), 0) AS ta,
           coalesce(sum(u.vol) FILTER (WHERE p.kind = 0), 0)::HUGEINT AS vh,
           coalesce(sum(u.vol) FILTER (WHERE p.kind = 1), 0)::HUGEINT AS va,
           count(*) FILTER (WHERE p.kind = 0) AS uh,
           count(*) FILTER (WHERE p.kind = 1) AS ua
    FROM per_bucket AS u JOIN pop AS p ON p.id = u.user_ref
    GROUP BY u.i
)
SELECT
    c.n0,
    CASE WHEN c.n1 > 0 THEN rhalf(1000 * (c.n0 - c.n1), c.n1) END AS active_change,
    (c.vol0 + 5000) // 10000 AS volume_cents,
    CASE WHEN c.vol1 > 0 THEN rhalf(1000 * (c.vol0 - c.vol1), c.vol1) END AS volume_change,
    CASE WHEN r.a1 > 0 THEN rhalf(1000 * r.a01, r.a1) END AS retention_tenths,
    CASE WHEN r.a1 > 0 AND r.a12 > 0
         THEN rhalf(1000 * (r.a01::HUGEINT * r.a2 - r.a12::HUGEINT * r.a1), r.a1::HUGEINT * r.a12) END
         AS retention_change,
    CASE WHEN c.n0 > 0 THEN rhalf(c.cap0, c.n0 * 10000) END AS capital_cents,
    CASE WHEN c.n0 > 0 AND c.n1 > 0 AND c.cap1 > 0
         THEN rhalf(1000 * (c.cap0 * c.n1 - c.cap1 * c.n0), c.n0 * c.cap1) END AS capital_change,
    c.nc0, c.nc1, c.roi0, c.roi1,
    (SELECT list(coalesce(d.c, 0) ORDER BY s.slot)
     FROM range(8) AS s(slot) LEFT JOIN dist AS d ON d.slot = s.slot) AS distribution,
    (SELECT list([coalesce(vh + va, 0), coalesce(va, 0), coalesce(vh, 0), coalesce(th + ta, 0),
                  coalesce(uh + ua, 0), coalesce(ua, 0), coalesce(uh, 0)] ORDER BY k.i)
     FROM range({n}) AS k(i) LEFT JOIN buckets AS bk ON bk.i = k.i) AS series,
    (SELECT list(iso({s0} + i * {b}) ORDER BY i) FROM range({n}) AS r(i)) AS stamps,
    iso({now}) AS stamp
FROM cards AS c, ret AS r
"""


@dataclass(frozen=True, slots=True)
class Windows:
    """W, W' and W'' of a period at `now` (CONTRACT.md section 2), and the bucket grid of W."""

    now: int
    start: int
    length: int
    bucket: int
    count: int

    @classmethod
    def of(cls, period: str, now: int) -> Windows:
        """start = floor(now / b) * b - (n - 1) * b."""
        length, bucket, count = SHAPES[period]
        return cls(now, (now // bucket) * bucket - (count - 1) * bucket, length, bucket, count)

    def bounds(self, back: int) -> tuple[int, int]:
        """[start, now] shifted back by `back` periods."""
        return self.start - back * self.length, self.now - back * self.length


class Reference:
    """An in-memory DuckDB database holding the users and trades, answering dashboards in SQL."""

    def __init__(self, con: duckdb.DuckDBPyConnection, order: str = "ts") -> None:
        self.con = con
        self.order = order

    @classmethod
    def load(
        cls, users_csv: Path, trades_csv: Path, order: str = "ts", threads: int | None = None
    ) -> Reference:
        """Read both CSV files into in-memory tables (parsed by DuckDB itself), trades in `order`."""
        if order not in ORDERS:
            raise ValueError(f"order must be one of {', '.join(ORDERS)}, got {order!r}")
        con = duckdb.connect(":memory:")
        if threads is not None:
            con.execute(f"SET threads = {int(threads)}")
        con.execute("SET preserve_insertion_order = true")
        for statement in _SETUP.split(";"):
            if statement.strip():
                con.execute(statement)
        con.execute(_LOAD_USERS, [str(users_csv)])
        con.execute(
            "CREATE TABLE trades (user_ref INTEGER NOT NULL, ts BIGINT NOT NULL, "
            "volume BIGINT NOT NULL, pnl BIGINT NOT NULL)"
        )
        reference = cls(con, order)
        reference.add_trades(trades_csv)
        return reference

    def add_trades(self, trades_csv: Path) -> None:
        """Append the trades of a CSV file (every trade_id new, every user known: checked)."""
        before = self.trade_count()
        self.con.execute(_INSERT_TRADES.format(order=ORDERS[self.order]), [str(trades_csv)])
        rows = self.con.execute("SELECT count(*) FROM read_csv(?, header = true)", [str(trades_csv)])
        expected = _one(rows.fetchone())
        if self.trade_count() - before != expected:
            raise ValueError(f"{trades_csv}: some trades name unknown users")

    def trade_count(self) -> int:
        """How many trades the reference holds."""
        return _one(self.con.execute("SELECT count(*) FROM trades").fetchone())

    def close(self) -> None:
        """Release the database."""
        self.con.close()

    def dashboard(self, filter: str, period: str, now: int) -> dict[str, Any]:
        """The dashboard object of (filter, period) at `now`, as the REST door sends it."""
        win = Windows.of(period, now)
        (s0, e0), (s1, e1), (s2, e2) = (win.bounds(k) for k in range(3))
        sql = _DASHBOARD.format(
            kinds=", ".join(str(k) for k in KINDS[filter]),
            s0=s0, e0=e0, s1=s1, e1=e1, s2=s2, e2=e2,
            b=win.bucket, n=win.count, now=now, roi_scale=100 * SCALE,
        )  # fmt: skip
        row = self.con.execute(sql).fetchone()
        if row is None:
            raise RuntimeError("the dashboard query returned no row")
        (n0, active_change, volume_cents, volume_change, retention_tenths, retention_change,
         capital_cents, capital_change, nc0, nc1, roi0, roi1, dist, series, stamps, stamp) = row  # fmt: skip
        roi_value, roi_change = self._roi(filter, win, int(nc0), int(nc1), int(roi0), int(roi1))
        metrics = {
            "active_users": _card("Active Users", "", int(n0), _tenths(active_change)),
            "trading_volume": _card("Trading Volume", "USDC", int(volume_cents) / 100, _tenths(volume_change)),
            "retention_rate": _card("Retention Rate", "%", _value(retention_tenths, 10), _tenths(retention_change)),
            "avg_capital": _card("Avg Capital", "USDC", _value(capital_cents, 100), _tenths(capital_change)),
            "avg_roi": _card("Avg ROI", "%", roi_value, roi_change),
            "filter": filter,
            "period": period,
            "timestamp": stamp,
        }  # fmt: skip
        volume_points, user_points = [], []
        for at, (total, bot, human, trades, users, bot_users, human_users) in zip(
            stamps, series, strict=True
        ):
            volume_points.append(
                {
                    "timestamp": at,
                    "total_volume": _cents(total),
                    "bot_volume": _cents(bot),
                    "human_volume": _cents(human),
                    "trade_count": int(trades),
                }
            )
            user_points.append(
                {
                    "timestamp": at,
                    "total_users": int(users),
                    "bot_users": int(bot_users),
                    "human_users": int(human_users),
                }
            )
        return {
            "metrics": metrics,
            "volume_over_time": volume_points,
            "user_activity": user_points,
            "profitability_distribution": [
                {"range": label, "count": int(count)} for label, count in zip(RANGES, dist, strict=True)
            ],
        }

    def _roi(
        self, filter: str, win: Windows, nc0: int, nc1: int, roi0: int, roi1: int
    ) -> tuple[float, float | None]:
        """Avg ROI value and change from the SQL's bounded sums; exact from per-user rows on a tie."""
        cur, prev = _bounds(roi0, nc0), _bounds(roi1, nc1)
        value = 0.0 if cur is None else _agree([_round(x, 1) for x in cur])
        change = None if cur is None or prev is None else _change_bounds(cur, prev)
        if value is not None and not isinstance(change, _Tie):
            return value, change
        exact_cur, exact_prev = self._exact_roi(filter, win, 0), self._exact_roi(filter, win, 1)
        value = 0.0 if exact_cur is None else _round(exact_cur, 1)
        if exact_cur is None or exact_prev is None or exact_prev == 0:
            return value, None
        return value, _round(100 * (exact_cur - exact_prev) / abs(exact_prev), 1)

    def _exact_roi(self, filter: str, win: Windows, back: int) -> Fraction | None:
        """Mean of 100·pnl/capital over the window's active users with capital, as an exact Fraction."""
        start, end = win.bounds(back)
        rows = self.con.execute(
            f"SELECT sum(t.pnl)::HUGEINT, any_value(u.capital) FROM trades AS t JOIN users AS u "
            f"ON u.id = t.user_ref WHERE u.kind IN ({', '.join(str(k) for k in KINDS[filter])}) "
            f"AND u.capital > 0 AND t.ts BETWEEN {start} AND {end} GROUP BY t.user_ref"
        ).fetchall()
        if not rows:
            return None
        return 100 * sum((Fraction(int(p), int(c)) for p, c in rows), Fraction(0)) / len(rows)


class _Tie:
    """Marker: interval bounds that round to different figures."""


_TIE: Final = _Tie()


def _one(row: tuple[Any, ...] | None) -> int:
    if row is None:
        raise RuntimeError("query returned no row")
    return int(row[0])


def _card(label: str, suffix: str, value: int | float, change: float | None) -> dict[str, Any]:
    return {"label": label, "value": value, "change": change, "suffix": suffix}


def _tenths(units: int | None) -> float | None:
    return None if units is None else _nozero(int(units) / 10)


def _value(units: int | None, scale: int) -> float:
    return 0.0 if units is None else _nozero(int(units) / scale)


def _cents(micro: int) -> float:
    return _nozero(((int(micro) + 5_000) // 10_000) / 100)


def _nozero(x: float) -> float:
    return 0.0 if x == 0 else x


def _round(x: Fraction, places: int) -> float:
    """x rounded half away from zero to `places` decimals, as the nearest float."""
    scale = 10**places
    units = (2 * abs(x) * scale + 1) // 2
    return _nozero(float(Fraction(units if x >= 0 else -units, scale)))


def _bounds(total: int, count: int) -> tuple[Fraction, Fraction] | None:
    """The exact mean lies in the open interval around total / (count · SCALE) of half-width 1/SCALE."""
    if count == 0:
        return None
    return Fraction(total - count, count * SCALE), Fraction(total + count, count * SCALE)


def _agree(values: list[float]) -> float | None:
    return values[0] if all(v == values[0] for v in values) else None


def _change_bounds(cur: tuple[Fraction, Fraction], prev: tuple[Fraction, Fraction]) -> float | _Tie | None:
    """round(100 (v - v') / |v'|, 1) over the intervals, or _TIE when the corners disagree."""
    if prev[0] <= 0 <= prev[1]:
        return _TIE  # v' might be 0: only the exact value can say
    corners = [_round(100 * (c - p) / abs(p), 1) for c in cur for p in prev]
    agreed = _agree(corners)
    return _TIE if agreed is None else agreed


def differences(engine: Any, reference: Any, path: str = "") -> Iterator[str]:
    """Every field where two JSON values differ (numbers by value: 84250 == 84250.0), as 'path: a != b'."""
    if isinstance(engine, dict) and isinstance(reference, dict):
        for key in sorted(set(engine) | set(reference)):
            if key not in engine or key not in reference:
                yield f"{path}.{key}: present only in {'reference' if key in reference else 'engine'}"
            else:
                yield from differences(engine[key], reference[key], f"{path}.{key}")
    elif isinstance(engine, list) and isinstance(reference, list):
        if len(engine) != len(reference):
            yield f"{path}: {len(engine)} items != {len(reference)} items"
        for i, (a, b) in enumerate(zip(engine, reference, strict=False)):
            yield from differences(a, b, f"{path}[{i}]")
    elif _number(engine) and _number(reference):
        if engine != reference:
            yield f"{path}: engine {engine!r} != reference {reference!r}"
    elif type(engine) is not type(reference) or engine != reference:
        yield f"{path}: engine {engine!r} != reference {reference!r}"


def _number(x: object) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)
