"""The PostgreSQL store: one database shared by every replica, migrated on open, imports in turn."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from cymetica_mcp.errors import AnalyticsError
from cymetica_mcp.store._imports import KnownUsers
from cymetica_mcp.store.postgres._connect import Address, Connection
from cymetica_mcp.store.postgres._imports import PostgresImport
from cymetica_mcp.store.postgres._keys import PostgresKeys
from cymetica_mcp.store.postgres._listen import Listener, ListenerStamp
from cymetica_mcp.store.postgres._schema import IMPORT_CHANNEL, MIGRATE_LOCK, MIGRATIONS
from cymetica_mcp.store.postgres._snapshot import PostgresSnapshot

SCHEMA_VERSION = len(MIGRATIONS)


class PostgresStore:
    """One PostgreSQL database (the `Store` protocol), reached through `url`; the schema is migrated on
    open. Every commit notifies the other replicas (`_listen`)."""

    def __init__(self, url: str) -> None:
        self.address = Address(url)
        self.migrate()
        self.pool = self.address.pool()
        self._listener = Listener(self.address)
        self._keys = PostgresKeys(self.address, self.pool, self._listener.committed)
        self._users = KnownUsers()
        self._secret_lock = threading.Lock()

    @property
    def location(self) -> str:
        """The database's URL without its password."""
        return self.address.location

    @property
    def index_path(self) -> Path | None:
        """None: each replica builds its index from the database (there is no file beside it to share)."""
        return None

    @property
    def keys(self) -> PostgresKeys:
        """The API keys."""
        return self._keys

    def migrate(self) -> None:
        """Create or upgrade the schema to SCHEMA_VERSION (idempotent, safe across processes)."""
        with self.address.translated(writing=True), self.address.connect(autocommit=True) as conn:
            version = self._version(conn)
            if version > SCHEMA_VERSION:
                raise RuntimeError(
                    f"{self.location} has schema version {version}, newer than this program's "
                    f"{SCHEMA_VERSION}: upgrade cymetica-mcp"
                )
            if version == SCHEMA_VERSION:
                return
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATE_LOCK,))
                conn.execute("CREATE TABLE IF NOT EXISTS cymetica_schema (version integer NOT NULL)")
                version = self._version(conn)
                for number in range(version, SCHEMA_VERSION):
                    for statement in (s.strip() for s in MIGRATIONS[number].split(";")):
                        if statement:
                            conn.execute(statement.encode())
                conn.execute("DELETE FROM cymetica_schema")
                conn.execute("INSERT INTO cymetica_schema (version) VALUES (%s)", (SCHEMA_VERSION,))

    @staticmethod
    def _version(conn: Connection) -> int:
        exists = conn.execute("SELECT to_regclass('cymetica_schema') IS NOT NULL").fetchone()
        if exists is None or not exists[0]:
            return 0
        row = conn.execute("SELECT coalesce(max(version), 0) FROM cymetica_schema").fetchone()
        assert row is not None
        return int(row[0])

    def _query(self, query: str, params: tuple[object, ...] = ()) -> Any:
        """The first column of the first row of `query`, on a pooled connection."""
        with self.address.translated(writing=False), self.pool.connection() as conn:
            row = conn.execute(query.encode(), params).fetchone()
        assert row is not None
        return row[0]

    def data_version(self) -> int:
        """The number of imports committed so far (by any process)."""
        return int(self._query("SELECT value FROM meta WHERE key = 'data_version'"))

    def schema_version(self) -> int:
        """The schema version the database holds."""
        return int(self._query("SELECT coalesce(max(version), 0) FROM cymetica_schema"))

    def versions(self) -> PostgresVersions:
        """A reader of the data version (on the store's pool)."""
        return PostgresVersions(self)

    def stamp(self) -> ListenerStamp:
        """A commit stamp of its own: the notifications this process's listener has counted."""
        return ListenerStamp(self._listener)

    @contextmanager
    def snapshot(self) -> Iterator[PostgresSnapshot]:
        """One `REPEATABLE READ, READ ONLY` transaction."""
        with self.address.translated(writing=False), self.pool.connection() as conn, conn.transaction():
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            yield PostgresSnapshot(conn)

    @contextmanager
    def importing(self) -> Iterator[PostgresImport]:
        """One import, in its own transaction on a connection of its own (it may last minutes, and a
        pooled connection should not): committed when the block ends, rolled back on any exception,
        a dropped connection included (the server then rolls it back itself)."""
        with self.address.translated(writing=True), self.address.connect(autocommit=True) as conn:
            with conn.transaction():
                tx = PostgresImport(conn, self._users)
                try:
                    yield tx
                except BaseException as error:  # a COPY left open would keep the rollback from running
                    tx.abandon(error)
                    raise
                tx.write_users()
            self._listener.committed()

    def secret(self, name: str, generate: Callable[[], bytes]) -> bytes:
        """The setting `name`, generated and stored the first time (once, whatever the replicas)."""
        with self.address.translated(writing=True), self.pool.connection() as conn:
            row = conn.execute("SELECT value FROM settings WHERE key = %s", (name,)).fetchone()
            if row is not None:
                return bytes(row[0])
            with conn.transaction():
                conn.execute(
                    "INSERT INTO settings (key, value) VALUES (%s, %s) ON CONFLICT (key) DO NOTHING",
                    (name, generate()),
                )
                row = conn.execute("SELECT value FROM settings WHERE key = %s", (name,)).fetchone()
            assert row is not None
            return bytes(row[0])

    def replace_secret(self, name: str, value: bytes) -> None:
        """Store `value` as the setting `name`, and tell every replica."""
        with self.address.translated(writing=True), self.pool.connection() as conn, conn.transaction():
            conn.execute(
                "INSERT INTO settings (key, value) VALUES (%s, %s)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (name, value),
            )
            conn.execute("SELECT pg_notify(%s, 'settings')", (IMPORT_CHANNEL,))
        self._listener.committed()

    def backup(self, destination: Path) -> int:
        """Not done here: PostgreSQL's own `pg_dump` takes a consistent copy while replicas serve."""
        raise AnalyticsError(
            "invalid_argument",
            f"`cymetica-mcp backup` copies SQLite stores; back up the PostgreSQL store {self.location} with "
            "PostgreSQL's own tool, consistent while replicas serve: pg_dump --format=custom --file=FILE "
            "DATABASE (restore with pg_restore), or copy it into a SQLite file with "
            "`cymetica-mcp copy-store --from URL --to FILE.db`",
        )

    def check(self) -> list[str]:
        """Every problem found in the rows: see `_check`."""
        from cymetica_mcp.store.postgres._check import check

        with self.address.translated(writing=False), self.pool.connection() as conn:
            return check(conn)

    def close(self) -> None:
        """Close the pool's connections (a process that is done with the store)."""
        self.pool.close()


class PostgresVersions:
    """The data version, read on the store's pool (the `VersionReader` protocol)."""

    def __init__(self, store: PostgresStore) -> None:
        self._store = store

    def read(self) -> int:
        """The number of imports committed so far, by any process."""
        return self._store.data_version()

    def close(self) -> None:
        """Nothing of its own to release: the connections are the store's pool's."""
