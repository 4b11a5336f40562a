"""`copy_store` on a SQLite file: read in one read transaction, written in one `BEGIN IMMEDIATE`.

The target's trades go in many rows a statement (as imports write them), with their ids; each block's
columns are packed into a chunk in the same transaction (`_chunks`), so the copy loads as fast as a
store its imports wrote. A copy into a file that did not exist leaves no file behind when it fails.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Final

import numpy as np

from cymetica_mcp.errors import AnalyticsError
from cymetica_mcp.store import _chunks, _totals
from cymetica_mcp.store._connection import connect, data_version, transaction
from cymetica_mcp.store._faults import translated
from cymetica_mcp.store._moving import Held, KeyRow, SettingRow, TradeBlock, UserRow
from cymetica_mcp.store._sqlite import SQLiteStore

ROWS_PER_STATEMENT: Final = 128
"""Trades inserted a statement (6 values each), fewer if SQLite allows fewer variables."""
INSERT: Final = (
    "INSERT INTO trades (id, trade_id, user_ref, ts, volume_micro, pnl_micro) VALUES (?, ?, ?, ?, ?, ?)"
)
KEY_COLUMNS: Final = "id, name, prefix, secret_hash, created_at, last_used_at, revoked_at, scopes, expires_at"
USER_COLUMNS: Final = "id, user_id, kind, capital_micro, created_at, changed_in"


def _held(conn: sqlite3.Connection) -> Held:
    counts = [
        int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
        for table in ("users", "trades", "api_keys", "settings")
    ]
    users, trades, keys, settings = counts
    return Held(users, trades, keys, settings, data_version(conn))


class SQLiteReading:
    """The source's rows, inside one read transaction (the `Reading` protocol)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def held(self) -> Held:
        """What the source holds."""
        return _held(self.conn)

    def users(self) -> list[UserRow]:
        """Every user, by id."""
        return self.conn.execute(f"SELECT {USER_COLUMNS} FROM users ORDER BY id").fetchall()

    def keys(self) -> list[KeyRow]:
        """Every API key, by id."""
        rows = self.conn.execute(f"SELECT {KEY_COLUMNS} FROM api_keys ORDER BY id").fetchall()
        return [(*row[:3], bytes(row[3]), *row[4:]) for row in rows]

    def settings(self) -> list[SettingRow]:
        """Every setting, by key."""
        return [(k, bytes(v)) for k, v in self.conn.execute("SELECT key, value FROM settings ORDER BY key")]

    def trades(self, block_rows: int) -> Iterator[TradeBlock]:
        """Every trade in id order, `block_rows` at a time: ids and trade_ids from the rows, the other
        columns from the packed chunks wherever they cover (`_chunks.read_columns`: about four times
        faster than taking every column from the rows)."""
        cursor = self.conn.execute("SELECT id, trade_id FROM trades ORDER BY id")
        after = 0
        while rows := cursor.fetchmany(block_rows):
            numbers, trade_ids = zip(*rows, strict=True)
            ids = np.array(numbers, dtype=np.int64)
            parts = list(_chunks.read_columns(self.conn, after, int(ids[-1])))
            user, ts, volume, pnl = (np.concatenate([part[at] for part in parts]) for at in range(4))
            yield TradeBlock(ids, list(trade_ids), user, ts, volume, pnl)
            after = int(ids[-1])


class SQLiteFilling:
    """The target's one transaction (the `Filling` protocol)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.per = max(1, min(ROWS_PER_STATEMENT, conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) // 6))
        self.insert_many = INSERT + ", (?, ?, ?, ?, ?, ?)" * (self.per - 1)

    def held(self) -> Held:
        """What the target holds now."""
        return _held(self.conn)

    def empty(self) -> None:
        """Delete every row but the data version (set again by `finish`)."""
        for table in ("trade_chunks", "trades", "users", "api_keys", "settings"):
            self.conn.execute(f"DELETE FROM {table}")
        self.conn.execute("DELETE FROM meta WHERE key <> 'data_version'")

    def write_users(self, rows: list[UserRow]) -> None:
        """Store the users with their ids."""
        self.conn.executemany(f"INSERT INTO users ({USER_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)", rows)

    def write_keys(self, rows: list[KeyRow]) -> None:
        """Store the API keys with their ids."""
        self.conn.executemany(
            f"INSERT INTO api_keys ({KEY_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows
        )

    def write_settings(self, rows: list[SettingRow]) -> None:
        """Store the settings."""
        self.conn.executemany("INSERT INTO settings (key, value) VALUES (?, ?)", rows)

    def write_trades(self, block: TradeBlock) -> None:
        """Store trades with their ids, many a statement, and their packed chunk when the ids are
        consecutive (else readers take those rows from `trades` itself, as `_chunks` allows)."""
        count = len(block)
        if not count:
            return
        flat: list[object] = [None] * (6 * count)
        flat[0::6] = block.ids.tolist()
        flat[1::6] = block.trade_ids
        for at, column in enumerate((block.user_ref, block.ts, block.volume, block.pnl), start=2):
            flat[at::6] = column.tolist()
        width = 6 * self.per
        whole = len(flat) // width * width
        self.conn.executemany(self.insert_many, (flat[i : i + width] for i in range(0, whole, width)))
        self.conn.executemany(INSERT, (flat[i : i + 6] for i in range(whole, len(flat), 6)))
        first, last = int(block.ids[0]), int(block.ids[-1])
        if last - first + 1 == count:
            _chunks.append_columns(self.conn, first, block.user_ref, block.ts, block.volume, block.pnl)

    def finish(self, data_version: int, totals: tuple[int, int] | None) -> None:
        """Record the data version and the kept totals."""
        self.conn.execute("UPDATE meta SET value = ? WHERE key = 'data_version'", (data_version,))
        if totals is not None:
            self.conn.executemany(
                "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                zip(_totals.KEYS, totals, strict=True),
            )


class SQLiteSource:
    """A SQLite file to copy from (the `Source` protocol); it must exist."""

    def __init__(self, path: Path) -> None:
        if not path.is_file():
            raise AnalyticsError(
                "invalid_argument", f"--from {path}: no such file (a SQLite store to copy from)"
            )
        self.store = SQLiteStore(path)  # an older schema is migrated first, as every command does

    @property
    def location(self) -> str:
        """The file's absolute path."""
        return self.store.location

    @contextmanager
    def reading(self) -> Iterator[SQLiteReading]:
        """One read transaction: every query inside sees the same committed state."""
        with translated(self.store.path, writing=False):
            conn = connect(self.store.path)
            try:
                conn.execute("BEGIN")
                conn.execute(
                    "SELECT 1 FROM meta"
                ).fetchall()  # the snapshot starts here, not at the first trade
                yield SQLiteReading(conn)
            finally:
                conn.close()

    def close(self) -> None:
        """Nothing kept open."""


class SQLiteTarget:
    """A SQLite file to copy into (the `Target` protocol): created when missing."""

    def __init__(self, path: Path) -> None:
        self.created = not path.exists()
        self.store = SQLiteStore(path)

    @property
    def location(self) -> str:
        """The file's absolute path."""
        return self.store.location

    @contextmanager
    def filling(self) -> Iterator[SQLiteFilling]:
        """One `BEGIN IMMEDIATE` transaction, foreign keys checked by the copy itself (every trade's user
        is among the users copied); a kept index beside the file is removed once it commits, since it
        is of the rows replaced."""
        with transaction(self.store.path, foreign_keys=False) as conn:
            yield SQLiteFilling(conn)
        self.store.index_path.unlink(missing_ok=True)

    def discard(self) -> None:
        """Remove the file (and its -wal and -shm) if this copy created it."""
        if self.created:
            for suffix in ("", "-wal", "-shm"):
                self.store.path.with_name(self.store.path.name + suffix).unlink(missing_ok=True)

    def close(self) -> None:
        """Nothing kept open."""
