"""The SQLite store: the durable truth of users, trades and API keys."""

from __future__ import annotations

from cymetica_mcp.store.sqlite import SCHEMA_VERSION, Store

__all__ = ["SCHEMA_VERSION", "Store"]
