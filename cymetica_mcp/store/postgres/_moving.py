"""`copy_store` on a PostgreSQL database: read in one `REPEATABLE READ, READ ONLY` transaction, written
in one transaction that holds the store's import lock.

Trades are read through a server-side cursor (blocks of rows, never the whole table in memory) and
written with `COPY`, ids included; the identity sequences of `trades` and `api_keys` are then moved
past the copied ids, so the next key or trade numbered by the database never meets one. `--replace`
empties the target with `TRUNCATE` inside the same transaction: until the copy commits, other
sessions wait for those tables (stop the servers on the target first), and a failed copy leaves them
as they were.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final

import numpy as np
import psycopg

from cymetica_mcp.errors import AnalyticsError
from cymetica_mcp.store import _totals
from cymetica_mcp.store._moving import Held, KeyRow, SettingRow, TradeBlock, UserRow
from cymetica_mcp.store.postgres._connect import LOCK_SECONDS, Connection
from cymetica_mcp.store.postgres._copy import copy_in, lines
from cymetica_mcp.store.postgres._schema import IMPORT_CHANNEL
from cymetica_mcp.store.postgres._store import PostgresStore

KEY_COLUMNS: Final = "id, name, prefix, secret_hash, created_at, last_used_at, revoked_at, scopes, expires_at"
USER_COLUMNS: Final = "id, user_id, kind, capital_micro, created_at, changed_in"
_SPECIAL: Final = ("\\", "\t", "\n", "\r")
_ESCAPES: Final = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _held(conn: Connection) -> Held:
    row = conn.execute(
        "SELECT (SELECT count(*) FROM users), (SELECT count(*) FROM trades), (SELECT count(*) FROM api_keys),"
        " (SELECT count(*) FROM settings), (SELECT value FROM meta WHERE key = 'data_version')"
    ).fetchone()
    assert row is not None
    return Held(*(int(value or 0) for value in row))


def _texts(values: list[str], what: str) -> list[str]:
    """`values` escaped for a COPY text line; a value holding NUL (which no PostgreSQL text holds) is
    refused, naming it by position."""
    joined = "".join(values)
    if "\x00" in joined:
        value = next(value for value in values if "\x00" in value)
        raise AnalyticsError(
            "invalid_argument",
            f"cannot copy: the {what} {value!r} holds the character NUL (U+0000), which a PostgreSQL store "
            "cannot keep; the target is unchanged",
        )
    if not any(special in joined for special in _SPECIAL):
        return values
    return [value.translate(_ESCAPES) for value in values]


class PostgresReading:
    """The source's rows, inside one read transaction (the `Reading` protocol)."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def held(self) -> Held:
        """What the source holds."""
        return _held(self.conn)

    def users(self) -> list[UserRow]:
        """Every user, by id."""
        rows = self.conn.execute(f"SELECT {USER_COLUMNS} FROM users ORDER BY id").fetchall()
        return [(int(r[0]), str(r[1]), int(r[2]), int(r[3]), int(r[4]), int(r[5])) for r in rows]

    def keys(self) -> list[KeyRow]:
        """Every API key, by id."""
        rows = self.conn.execute(f"SELECT {KEY_COLUMNS} FROM api_keys ORDER BY id").fetchall()
        return [(*row[:3], bytes(row[3]), *row[4:]) for row in rows]

    def settings(self) -> list[SettingRow]:
        """Every setting, by key."""
        rows = self.conn.execute("SELECT key, value FROM settings ORDER BY key").fetchall()
        return [(str(key), bytes(value)) for key, value in rows]

    def trades(self, block_rows: int) -> Iterator[TradeBlock]:
        """Every trade in id order, `block_rows` at a time, through a server-side cursor."""
        with self.conn.cursor(name="cymetica_copy_trades") as cursor:
            cursor.itersize = block_rows
            cursor.execute(
                "SELECT id, trade_id, user_ref, ts, volume_micro, pnl_micro FROM trades ORDER BY id"
            )
            while rows := cursor.fetchmany(block_rows):
                ids, trade_ids, *numbers = zip(*rows, strict=True)
                user, ts, volume, pnl = (np.array(column, dtype=np.int64) for column in numbers)
                yield TradeBlock(np.array(ids, dtype=np.int64), list(trade_ids), user, ts, volume, pnl)


class PostgresFilling:
    """The target's one transaction (the `Filling` protocol)."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        conn.execute(f"SET LOCAL lock_timeout = '{LOCK_SECONDS}s'")
        # the import lock: no import commits into the target while the copy fills it
        conn.execute("SELECT value FROM meta WHERE key = 'data_version' FOR UPDATE")

    def held(self) -> Held:
        """What the target holds now."""
        return _held(self.conn)

    def empty(self) -> None:
        """Empty every table but the data version's row (set again by `finish`)."""
        self.conn.execute("TRUNCATE trades, users, api_keys, settings")
        self.conn.execute("DELETE FROM meta WHERE key <> 'data_version'")

    def write_users(self, rows: list[UserRow]) -> None:
        """Store the users with their ids (`COPY`)."""
        if rows:
            columns = list(zip(*rows, strict=True))
            columns[1] = tuple(_texts(list(columns[1]), "user_id"))
            copy_in(self.conn, f"COPY users ({USER_COLUMNS}) FROM STDIN", lines(columns))

    def write_keys(self, rows: list[KeyRow]) -> None:
        """Store the API keys with their ids (a few rows: one statement each)."""
        with self.conn.cursor() as cursor:
            cursor.executemany(
                f"INSERT INTO api_keys ({KEY_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)", rows
            )

    def write_settings(self, rows: list[SettingRow]) -> None:
        """Store the settings."""
        with self.conn.cursor() as cursor:
            cursor.executemany("INSERT INTO settings (key, value) VALUES (%s, %s)", rows)

    def write_trades(self, block: TradeBlock) -> None:
        """Store trades with their ids (`COPY`)."""
        if len(block):
            ids = _texts(block.trade_ids, "trade_id")
            columns = [
                block.ids.tolist(),
                ids,
                *(c.tolist() for c in (block.user_ref, block.ts, block.volume, block.pnl)),
            ]
            copy_in(
                self.conn,
                "COPY trades (id, trade_id, user_ref, ts, volume_micro, pnl_micro) FROM STDIN",
                lines(columns),
            )

    def finish(self, data_version: int, totals: tuple[int, int] | None) -> None:
        """Record the data version and the kept totals, move the identity sequences past the copied ids,
        and tell every replica on the target when it commits."""
        self.conn.execute("UPDATE meta SET value = %s WHERE key = 'data_version'", (data_version,))
        for key, value in zip(_totals.KEYS, totals or (), strict=False):
            self.conn.execute(
                "INSERT INTO meta (key, value) VALUES (%s, %s) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, value),
            )
        for table in ("trades", "api_keys"):
            self.conn.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'),"
                f" coalesce((SELECT max(id) FROM {table}), 1), (SELECT count(*) > 0 FROM {table}))"
            )
        self.conn.execute("SELECT pg_notify(%s, %s)", (IMPORT_CHANNEL, f"import {data_version}"))


class PostgresSource:
    """A PostgreSQL database to copy from (the `Source` protocol)."""

    def __init__(self, url: str) -> None:
        self.store = PostgresStore(url)

    @property
    def location(self) -> str:
        """The URL without its password."""
        return self.store.location

    @contextmanager
    def reading(self) -> Iterator[PostgresReading]:
        """One `REPEATABLE READ, READ ONLY` transaction on a connection of its own."""
        address = self.store.address
        with address.translated(writing=False), address.connect(autocommit=True) as conn, conn.transaction():
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            yield PostgresReading(conn)

    def close(self) -> None:
        """Close the store's pool."""
        self.store.close()


class PostgresTarget:
    """A PostgreSQL database to copy into (the `Target` protocol): migrated on open."""

    def __init__(self, url: str) -> None:
        self.store = PostgresStore(url)

    @property
    def location(self) -> str:
        """The URL without its password."""
        return self.store.location

    @contextmanager
    def filling(self) -> Iterator[PostgresFilling]:
        """One transaction on a connection of its own: committed when the block ends, rolled back on
        any exception (a dropped connection included: the server rolls it back itself)."""
        address = self.store.address
        with address.translated(writing=True):
            try:
                with address.connect(autocommit=True) as conn, conn.transaction():
                    yield PostgresFilling(conn)
            except psycopg.errors.LockNotAvailable:
                raise AnalyticsError(
                    "unavailable",
                    f"the target {self.location} is in use (an import, or a server reading the tables "
                    f"--replace empties) for over {LOCK_SECONDS} s: stop the servers on it and retry; "
                    "it is unchanged",
                ) from None

    def discard(self) -> None:
        """Nothing: the database was there before (its tables, if created now, stay empty)."""

    def close(self) -> None:
        """Close the store's pool."""
        self.store.close()
