"""The store's total trade volume and total |pnl|, kept in `meta` by every import that adds trades.

The engine sums volumes and profits over every trade in 64-bit integers (running sums across the
whole store), so it holds them exactly only while each total stays below `LIMIT` micro-USDC
(4.6e12 USDC). An import that would take either total to the limit is refused whole, so no import
can leave a store whose dashboards the engine cannot compute.

A store written before the totals were kept gets them on its next import: summed once from its
trades (about 1 s at 10M trades), then carried forward by each import.
"""

from __future__ import annotations

import sqlite3
from typing import Final

from cymetica_mcp.errors import AnalyticsError

LIMIT: Final = 2**62
"""Each total must stay below this many micro-USDC: a running sum of int64 values then cannot wrap."""
KEYS: Final = ("trade_volume_micro", "trade_abs_pnl_micro")


def add(conn: sqlite3.Connection, volume: int, abs_pnl: int, before_id: int) -> None:
    """Record trades of `volume` and `abs_pnl` (sum of |pnl|) micro-USDC just added in this
    transaction (every trade with id > `before_id`); refuse them if either total would reach LIMIT."""
    if volume == 0 and abs_pnl == 0:
        return
    kept = dict(conn.execute("SELECT key, value FROM meta WHERE key IN (?, ?)", KEYS).fetchall())
    old = (kept[KEYS[0]], kept[KEYS[1]]) if len(kept) == len(KEYS) else _summed(conn, before_id)
    conn.executemany(
        "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        zip(KEYS, checked(old, volume, abs_pnl), strict=True),
    )


def checked(old: tuple[int, int], volume: int, abs_pnl: int) -> tuple[int, int]:
    """The totals (volume, |pnl|) once `volume` and `abs_pnl` are added to `old`; `import_refused` if
    either would reach LIMIT (the rule of every backend)."""
    new = (old[0] + volume, old[1] + abs_pnl)
    if max(new) >= LIMIT:
        raise AnalyticsError(
            "import_refused",
            "import refused: the store's trades would total "
            f"{_usdc(new[0])} USDC of volume and {_usdc(new[1])} USDC of |pnl|; each must stay below "
            f"{_usdc(LIMIT)} USDC (2^62 micro-USDC), the range the engine sums exactly; the store is unchanged",
        )
    return new


def _summed(conn: sqlite3.Connection, upto_id: int) -> tuple[int, int]:
    """The totals of the trades with id <= upto_id, from the rows (a store that did not keep them)."""
    try:
        volume, abs_pnl = conn.execute(
            "SELECT coalesce(sum(volume_micro), 0), coalesce(sum(abs(pnl_micro)), 0) FROM trades WHERE id <= ?",
            (upto_id,),
        ).fetchone()
    except sqlite3.OperationalError as exc:  # "integer overflow": already past any 64-bit total
        if "overflow" not in str(exc):
            raise
        return LIMIT, LIMIT
    return int(volume), int(abs_pnl)


def _usdc(micro: int) -> str:
    """Micro-USDC as exact USDC with thousands separators: 4,611,686,018,427.387904."""
    whole, fraction = divmod(micro, 1_000_000)
    return f"{whole:,}.{fraction:06d}"
