"""The metrics engine: the only code that knows the figures of CONTRACT.md.

It keeps a columnar index of the store's trades (runs sorted by user and time with prefix sums,
directories and a timeline to find window boundaries, rollups per bucket), computes a `Dashboard`
for (filter, period, now) from it, and caches recent results and per-period states. It reads the
store only through the store's interface.
"""

from __future__ import annotations

from cymetica_mcp.engine._engine import Engine, Result, open_engine, system_clock
from cymetica_mcp.engine._index import TradeIndex
from cymetica_mcp.engine._metrics import ROI_RANGES, compute

__all__ = ["ROI_RANGES", "Engine", "Result", "TradeIndex", "compute", "open_engine", "system_clock"]
