"""The metrics engine: the only code that knows the figures of CONTRACT.md.

It keeps a columnar index of the store's trades (runs sorted by user and time with prefix sums,
directories and a timeline to find window boundaries, rollups per bucket), computes a `Dashboard`
for (filter, period, now) from it, and caches recent results and per-period states. It reads the
store only through the store's interface.
"""

from __future__ import annotations

from cymetica_mcp.engine._engine import (
    HORIZON_DAYS,
    Engine,
    Result,
    keep_index,
    kept_info,
    open_engine,
    prepare_index,
    rebuild_index,
    refresh_index,
    system_clock,
)
from cymetica_mcp.engine._index import TradeIndex
from cymetica_mcp.engine._kept import KeptInfo
from cymetica_mcp.engine._metrics import ROI_RANGES, compute

__all__ = [
    "HORIZON_DAYS",
    "ROI_RANGES",
    "Engine",
    "KeptInfo",
    "Result",
    "TradeIndex",
    "compute",
    "keep_index",
    "kept_info",
    "open_engine",
    "prepare_index",
    "rebuild_index",
    "refresh_index",
    "system_clock",
]
