"""The store: the durable truth of users, trades, API keys and settings, and the only code that
speaks SQL.

Every other layer works through the protocols of `_interface` (`Store` and the objects it hands
out); `SQLiteStore` implements them over one SQLite file, and `open_store` picks the backend for a
location.
"""

from __future__ import annotations

from pathlib import Path

from cymetica_mcp.store._interface import (
    CommitStamp,
    ImportTransaction,
    KeyInfo,
    KeyLookup,
    KeyRows,
    PreparedTrades,
    Snapshot,
    Stamp,
    Store,
    TradeColumns,
    TradeRow,
    TradeWriter,
    VersionReader,
)
from cymetica_mcp.store._sqlite import SCHEMA_VERSION, SQLiteStore
from cymetica_mcp.store._totals import LIMIT as TOTAL_LIMIT

__all__ = [
    "SCHEMA_VERSION",
    "TOTAL_LIMIT",
    "CommitStamp",
    "ImportTransaction",
    "KeyInfo",
    "KeyLookup",
    "KeyRows",
    "PreparedTrades",
    "SQLiteStore",
    "Snapshot",
    "Stamp",
    "Store",
    "TradeColumns",
    "TradeRow",
    "TradeWriter",
    "VersionReader",
    "open_store",
]


def open_store(location: str | Path) -> Store:
    """The store at `location`: a SQLite file's path (created and migrated on first use)."""
    return SQLiteStore(location)
