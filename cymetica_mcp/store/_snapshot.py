"""One read transaction over the SQLite store: what the engine's index loads, all at one version."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator

import numpy as np

from cymetica_mcp.store import _chunks
from cymetica_mcp.store._connection import data_version
from cymetica_mcp.store._interface import I64


class SQLiteSnapshot:
    """Queries inside one read transaction (the `Snapshot` protocol)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def data_version(self) -> int:
        """The data version this snapshot sees."""
        return data_version(self.conn)

    def users_changed_since(self, version: int) -> I64:
        """Rows (ref, kind, capital) of the users changed after `version`."""
        rows = self.conn.execute("SELECT id, kind, capital_micro FROM users WHERE changed_in > ?", (version,))
        return np.array(rows.fetchall(), dtype=np.int64).reshape(-1, 3)

    def last_trade_id(self) -> int:
        """The highest trade ref; 0 if none."""
        return int(self.conn.execute("SELECT coalesce(max(id), 0) FROM trades").fetchone()[0])

    def trade_fingerprint(self, ref: int) -> str:
        """Trade `ref`'s row as text ('' if there is none): a stored trade never changes, so an index
        built up to `ref` belongs to this store's history only while that row is the same."""
        row = self.conn.execute(
            "SELECT trade_id, user_ref, ts, volume_micro, pnl_micro FROM trades WHERE id = ?", (ref,)
        ).fetchone()
        return "" if row is None else "\x1f".join(map(str, row))

    def trade_columns(self, after: int, upto: int) -> Iterator[tuple[I64, I64, I64, I64]]:
        """Blocks of (user ref, ts, volume, pnl) with after < ref <= upto, from the packed chunks
        wherever they cover."""
        return _chunks.read_columns(self.conn, after, upto)
