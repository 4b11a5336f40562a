"""An import's one transaction in PostgreSQL: user rows, trade rows in file order and the store's
totals, committed together or not at all (`PostgresStore.importing`).

Imports take turns on the `data_version` row of `meta` (`SELECT ... FOR UPDATE`, waiting at most
`LOCK_SECONDS`), so each sees every earlier import whole and numbers its rows after theirs: users and
trades get their ids from the import, densely, in the order they were stored, as in SQLite.

Users are kept in memory and written in bulk (`COPY`) before the first trade and at the end, so a
file of 200,000 users costs a few statements, not 200,000. Trades are written by `_trades`.
"""

from __future__ import annotations

from typing import Final

from cymetica_mcp.store._imports import KnownUsers
from cymetica_mcp.store.postgres._connect import LOCK_SECONDS, Connection, one
from cymetica_mcp.store.postgres._copy import copy_in, lines, texts
from cymetica_mcp.store.postgres._schema import IMPORT_CHANNEL
from cymetica_mcp.store.postgres._trades import PostgresTrades

BEGIN: Final = (
    f"SET LOCAL lock_timeout = '{LOCK_SECONDS}s'",
    # every trade_id is looked up in the unique index: never a hash join over the whole table
    "SET LOCAL enable_hashjoin = off",
    "SET LOCAL enable_mergejoin = off",
)


class PostgresImport:
    """The writes of one import, inside its transaction (the `ImportTransaction` protocol)."""

    def __init__(self, conn: Connection, known: KnownUsers) -> None:
        self.conn = conn
        self.known = known
        for statement in BEGIN:
            conn.execute(statement)
        row = conn.execute("SELECT value FROM meta WHERE key = 'data_version' FOR UPDATE").fetchone()
        assert row is not None
        self._version = int(row[0])
        self._next_ref = int(one(conn, "SELECT coalesce(max(id), 0) FROM users")) + 1
        self._new: dict[int, list[object]] = {}  # ref -> [user_id, kind, capital, created_at, changed_in]
        self._changed: dict[int, tuple[int, int, int]] = {}  # ref -> (kind, capital, changed_in)
        self._writer: PostgresTrades | None = None

    def data_version(self) -> int:
        """The data version before this import."""
        return self._version

    def set_data_version(self, version: int) -> None:
        """Record the version this import makes, and tell every replica when it commits."""
        self.conn.execute("UPDATE meta SET value = %s WHERE key = 'data_version'", (version,))
        self.conn.execute("SELECT pg_notify(%s, %s)", (IMPORT_CHANNEL, f"import {version}"))

    def user_refs(self) -> dict[str, int]:
        """Every stored user_id and its ref."""
        return self.known.update(
            lambda last: self.conn.execute(
                "SELECT user_id, id FROM users WHERE id > %s ORDER BY id", (last,)
            ).fetchall()
        )

    def insert_user(self, user_id: str, kind: int, capital: int, created_at: int, version: int) -> int:
        """A new user (written with the others before the first trade or at the end); returns its ref."""
        ref = self._next_ref
        self._next_ref += 1
        self._new[ref] = [user_id, kind, capital, created_at, version]
        return ref

    def update_user(self, ref: int, kind: int, capital: int, version: int) -> None:
        """A stored user's new kind and capital (the last row of the import wins)."""
        self._changed[ref] = (kind, capital, version)

    def rewrite_user(self, ref: int, kind: int, capital: int, created_at: int) -> None:
        """A user this import inserted, rewritten whole."""
        if ref in self._new:
            self._new[ref][1:4] = [kind, capital, created_at]
        else:  # already written (users then trades then users again): rewrite the row itself
            self.conn.execute(
                "UPDATE users SET kind = %s, capital_micro = %s, created_at = %s WHERE id = %s",
                (kind, capital, created_at, ref),
            )

    def abandon(self, error: BaseException) -> None:
        """The import is being rolled back because of `error`: end what would keep the rollback from
        running (the bulk load's COPY, if open)."""
        if self._writer is not None:
            self._writer.abandon(error)

    def trades(self) -> PostgresTrades:
        """The writer of this import's trades (the users so far are written first)."""
        self.write_users()
        # after a bulk load that met a repeated trade_id, rows are checked as they come
        self._writer = PostgresTrades(self.conn, bulk=self._writer is None or not self._writer.repeated)
        return self._writer

    def write_users(self) -> None:
        """Write the users kept so far: new ones by `COPY`, changed ones by one `UPDATE` (and the
        trades' primary key and unique trade_id index, if their build was deferred: this runs last in every import that commits)."""
        if self._writer is not None:
            self._writer.restore_keys()
        if self._new:
            refs = list(self._new)
            rows = list(self._new.values())
            columns = [
                refs,
                texts([str(r[0]) for r in rows], "user_id"),
                *([r[i] for r in rows] for i in range(1, 5)),
            ]
            copy_in(
                self.conn,
                "COPY users (id, user_id, kind, capital_micro, created_at, changed_in) FROM STDIN",
                lines(columns),
            )
            self._new.clear()
        if self._changed:
            self.conn.execute(
                "CREATE TEMP TABLE import_users (id bigint, kind smallint, capital_micro bigint, changed_in bigint)"
                " ON COMMIT DROP"
            )
            refs = list(self._changed)
            values = list(self._changed.values())
            copy_in(
                self.conn,
                "COPY import_users FROM STDIN",
                lines([refs, *([v[i] for v in values] for i in range(3))]),
            )
            self.conn.execute(
                "UPDATE users u SET kind = c.kind, capital_micro = c.capital_micro, changed_in = c.changed_in"
                " FROM import_users c WHERE u.id = c.id"
            )
            self.conn.execute("DROP TABLE import_users")
            self._changed.clear()
