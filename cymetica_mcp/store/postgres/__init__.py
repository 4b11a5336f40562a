"""The PostgreSQL store: the `Store` protocol over one database that several replicas share.

Chosen by `CYMETICA_DB=postgresql://user[:password]@host:port/db` (`open_store`); the password is used to
connect and never shown (`location`, every message). psycopg 3 with a connection pool; imports `COPY`
into a staging table inside one transaction; commits `NOTIFY` every replica (`_listen`).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from cymetica_mcp.store.postgres._url import is_postgres

if TYPE_CHECKING:
    from cymetica_mcp.store.postgres._connect import Address
    from cymetica_mcp.store.postgres._moving import PostgresSource, PostgresTarget
    from cymetica_mcp.store.postgres._store import SCHEMA_VERSION, PostgresStore

__all__ = ["SCHEMA_VERSION", "Address", "PostgresSource", "PostgresStore", "PostgresTarget", "is_postgres"]

_HOME = {
    "SCHEMA_VERSION": "_store",
    "Address": "_connect",
    "PostgresSource": "_moving",
    "PostgresStore": "_store",
    "PostgresTarget": "_moving",
}


def __getattr__(name: str) -> Any:
    """Import an exported name from its module on first use: psycopg and its pool (~12 MB of a
    process) load only for a `postgresql://` store, never in a server or command on SQLite."""
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_HOME[name]}"), name)
