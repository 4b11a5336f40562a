"""The store: the durable truth of users, trades, API keys and settings, and the only code that
speaks SQL.

Every other layer works through the protocols of `_interface` (`Store` and the objects it hands
out); `SQLiteStore` implements them over one SQLite file, and `open_store` picks the backend for a
location.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from cymetica_mcp.store._copy import CopyReport, copy_store
from cymetica_mcp.store._interface import (
    AsciiIds,
    CommitStamp,
    ImportTransaction,
    KeyInfo,
    KeyLookup,
    KeyRows,
    PreparedTrades,
    RepeatedTradeIds,
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
from cymetica_mcp.store.postgres import is_postgres

if TYPE_CHECKING:
    from cymetica_mcp.store.postgres import PostgresStore

__all__ = [
    "SCHEMA_VERSION",
    "TOTAL_LIMIT",
    "AsciiIds",
    "CommitStamp",
    "CopyReport",
    "ImportTransaction",
    "KeyInfo",
    "KeyLookup",
    "KeyRows",
    "PostgresStore",
    "PreparedTrades",
    "RepeatedTradeIds",
    "SQLiteStore",
    "Snapshot",
    "Stamp",
    "Store",
    "TradeColumns",
    "TradeRow",
    "TradeWriter",
    "VersionReader",
    "copy_store",
    "is_postgres",
    "open_store",
]


SQLITE_SCHEME = "sqlite:///"


def __getattr__(name: str) -> Any:
    """`PostgresStore`, imported on first use (with psycopg) rather than by every SQLite process."""
    if name == "PostgresStore":
        from cymetica_mcp.store.postgres import PostgresStore

        return PostgresStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def open_store(location: str | Path) -> Store:
    """The store at `location`, created and migrated on first use: a PostgreSQL database for a
    `postgresql://` URL, else a SQLite file (a path, or a `sqlite:///path` URL)."""
    text = str(location)
    if is_postgres(text):
        from cymetica_mcp.store.postgres import PostgresStore  # psycopg loads only for PostgreSQL

        return PostgresStore(text)
    return SQLiteStore(text.removeprefix(SQLITE_SCHEME) if text.startswith(SQLITE_SCHEME) else location)
