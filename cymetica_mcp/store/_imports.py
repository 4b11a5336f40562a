"""An import's one transaction in SQLite: user rows, trade rows in file order, their packed chunks
and the store's totals, committed together or not at all (`SQLiteStore.importing`)."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np

from cymetica_mcp.exact import exact_sum
from cymetica_mcp.store import _chunks, _totals
from cymetica_mcp.store._connection import data_version
from cymetica_mcp.store._interface import PreparedTrades, TradeColumns, TradeRow

ROWS_PER_STATEMENT: Final = 256
"""Prepared rows go in this many a statement (fewer if SQLite allows fewer variables)."""
FOREIGN_KEYS_AT_ONCE: Final = 500
INSERT: Final = (
    "INSERT OR IGNORE INTO trades (trade_id, user_ref, ts, volume_micro, pnl_micro) VALUES (?, ?, ?, ?, ?)"
)


class KnownUsers:
    """Every committed user_id and its ref, kept between imports by one store: each import reads only
    the users added since (refs grow, and a user is never deleted nor renumbered), not all of them."""

    def __init__(self) -> None:
        self.refs: dict[str, int] = {}
        self.last = 0
        self._lock = threading.Lock()

    def read(self, conn: sqlite3.Connection) -> dict[str, int]:
        """A copy of every user_id and ref that `conn` sees, brought up to date first (call it inside
        the import's transaction, before it writes a user: what it returns is then all committed)."""
        return self.update(
            lambda last: conn.execute("SELECT user_id, id FROM users WHERE id > ? ORDER BY id", (last,))
        )

    def update(self, newer: Callable[[int], Iterable[tuple[str, int]]]) -> dict[str, int]:
        """A copy of every user_id and ref, after adding `newer(last)`: the (user_id, ref) of the users
        with a ref above `last`, in order (any backend's query)."""
        with self._lock:
            for user_id, ref in newer(self.last):
                self.refs[user_id] = ref
                self.last = ref
            return dict(self.refs)


class SQLiteImport:
    """The writes of one import, inside its `BEGIN IMMEDIATE` transaction (the `ImportTransaction`
    protocol)."""

    def __init__(self, conn: sqlite3.Connection, known: KnownUsers) -> None:
        self.conn = conn
        self.known = known

    def data_version(self) -> int:
        """The data version before this import."""
        return data_version(self.conn)

    def set_data_version(self, version: int) -> None:
        """Record the version this import makes."""
        self.conn.execute("UPDATE meta SET value = ? WHERE key = 'data_version'", (version,))

    def user_refs(self) -> dict[str, int]:
        """Every stored user_id and its ref."""
        return self.known.read(self.conn)

    def insert_user(self, user_id: str, kind: int, capital: int, created_at: int, version: int) -> int:
        """A new user; returns its ref."""
        cursor = self.conn.execute(
            "INSERT INTO users (user_id, kind, capital_micro, created_at, changed_in) VALUES (?, ?, ?, ?, ?)",
            (user_id, kind, capital, created_at, version),
        )
        return int(cursor.lastrowid or 0)

    def update_user(self, ref: int, kind: int, capital: int, version: int) -> None:
        """A stored user's new kind and capital."""
        self.conn.execute(
            "UPDATE users SET kind = ?, capital_micro = ?, changed_in = ? WHERE id = ?",
            (kind, capital, version, ref),
        )

    def rewrite_user(self, ref: int, kind: int, capital: int, created_at: int) -> None:
        """A user this import inserted, rewritten whole."""
        self.conn.execute(
            "UPDATE users SET kind = ?, capital_micro = ?, created_at = ? WHERE id = ?",
            (kind, capital, created_at, ref),
        )

    def trades(self) -> SQLiteTrades:
        """The writer of this import's trades."""
        return SQLiteTrades(self.conn)


@dataclass(frozen=True, slots=True)
class Prepared:
    """Rows, and the parameters of the statements that insert them (`per` rows each, then the rest)."""

    rows: TradeColumns
    statements: list[list[object]]
    rest: list[list[object]]
    users: list[int]  # the users its rows name

    @classmethod
    def of(cls, rows: TradeColumns, per: int) -> Prepared:
        """`rows` as parameters of statements of `per` rows."""
        flat: list[object] = [None] * (5 * rows.lines)
        flat[0::5] = rows.trade_ids
        for at, column in enumerate((rows.user_ref, rows.ts, rows.volume, rows.pnl), start=1):
            flat[at::5] = column.tolist()
        width = 5 * per
        whole = len(flat) // width * width
        return cls(
            rows,
            [flat[i : i + width] for i in range(0, whole, width)],
            [flat[i : i + 5] for i in range(whole, len(flat), 5)],
            np.flatnonzero(np.bincount(rows.user_ref)).tolist(),
        )


class SQLiteTrades:
    """Trade rows written in order with `INSERT OR IGNORE` (the first row of a trade_id wins); each
    write's new rows also packed into a chunk while their ids are consecutive (the `TradeWriter`
    protocol)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.last_id = self._newest()
        self.before_id = self.last_id
        self.inserted = 0
        self.volume_added = self.abs_pnl_added = 0  # micro-USDC, over the trades inserted so far
        users = int(conn.execute("SELECT coalesce(max(id), 0) FROM users").fetchone()[0])
        self.users_named = np.zeros(users + 1, dtype=np.bool_)
        # whole blocks go in many rows a statement: far fewer steps than one statement a row
        self.per = max(1, min(ROWS_PER_STATEMENT, conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) // 5))
        self.insert_many = INSERT + ", (?, ?, ?, ?, ?)" * (self.per - 1)

    def prepare(self, rows: TradeColumns) -> Prepared:
        """The rows as statement parameters (pure: runs on the import's parsing thread)."""
        return Prepared.of(rows, self.per)

    def write(self, rows: Sequence[TradeRow]) -> int:
        """Write rows one statement each; return how many were new."""
        before = self.conn.total_changes
        self.conn.executemany(INSERT, rows)
        self._name([row[1] for row in rows])
        return self._chunk(self.conn.total_changes - before, None, rows)

    def write_prepared(self, prepared: PreparedTrades) -> int:
        """Write prepared rows, many a statement; return how many were new."""
        if not isinstance(prepared, Prepared):  # made by another backend's writer: made again here
            prepared = self.prepare(prepared.rows)
        before = self.conn.total_changes
        self.conn.executemany(self.insert_many, prepared.statements)
        self.conn.executemany(INSERT, prepared.rest)
        self._name(prepared.users)
        return self._chunk(self.conn.total_changes - before, prepared.rows, ())

    def finish(self) -> None:
        """Check the foreign key trades.user_ref -> users.id once for each user named, merge the small
        packed chunks (`_chunks.compact`), then add the new trades to the store's totals (refused past
        the engine's exact range). All in the import's transaction: refused, it leaves no trace."""
        if not self.inserted:
            return
        named = np.flatnonzero(self.users_named).tolist()
        found = 0
        for at in range(0, len(named), FOREIGN_KEYS_AT_ONCE):
            part = named[at : at + FOREIGN_KEYS_AT_ONCE]
            marks = ", ".join("?" * len(part))
            found += self.conn.execute(f"SELECT count(*) FROM users WHERE id IN ({marks})", part).fetchone()[
                0
            ]
        if found != len(named):
            raise sqlite3.IntegrityError("FOREIGN KEY constraint failed")
        _chunks.compact(self.conn, self.before_id)
        _totals.add(self.conn, self.volume_added, self.abs_pnl_added, self.before_id)

    def _name(self, refs: list[int]) -> None:
        """Remember the users that written trades name, for the check in `finish`."""
        top = max(refs, default=0)
        if top >= len(self.users_named):
            self.users_named = np.append(
                self.users_named, np.zeros(top + 1 - len(self.users_named), np.bool_)
            )
        self.users_named[refs] = True

    def _chunk(self, inserted: int, columns: TradeColumns | None, rows: Sequence[TradeRow]) -> int:
        """Pack the columns of the rows just inserted (not those already present) into a chunk, add
        their volume and |pnl| to the import's totals; return `inserted`."""
        self.inserted += inserted
        newest = self._newest()
        contiguous = newest == self.last_id + inserted  # the new rows hold ids last_id+1 .. newest
        if columns is not None and inserted == columns.lines:
            volume, pnl = columns.volume, columns.pnl
            if contiguous:
                _chunks.append_columns(self.conn, self.last_id + 1, columns.user_ref, columns.ts, volume, pnl)
        else:
            every = columns is None and inserted == len(rows)
            written = [row[1:] for row in rows] if every else _chunks.inserted_rows(self.conn, self.last_id)
            if contiguous:
                _chunks.append(self.conn, self.last_id + 1, written)
            # otherwise no chunk: readers then take these rows from `trades` itself
            table = np.array(written, dtype=np.int64).reshape(-1, 4)
            volume, pnl = table[:, 2], table[:, 3]
        self.volume_added += exact_sum(volume)
        self.abs_pnl_added += exact_sum(np.abs(pnl))
        self.last_id = newest
        return inserted

    def _newest(self) -> int:
        return int(self.conn.execute("SELECT coalesce(max(id), 0) FROM trades").fetchone()[0])
