"""The SQLite store: one file, migrated on open, written one transaction at a time."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Final

from cymetica_mcp.store import _maintenance
from cymetica_mcp.store._connection import (
    Kept,
    connect,
    data_version,
    ensure_wal,
    reading,
    roll_back,
    transaction,
)
from cymetica_mcp.store._faults import translated
from cymetica_mcp.store._imports import KnownUsers, SQLiteImport
from cymetica_mcp.store._keys import SQLiteKeys
from cymetica_mcp.store._schema import MIGRATIONS
from cymetica_mcp.store._snapshot import SQLiteSnapshot
from cymetica_mcp.store._stamp import StoreStamp

SCHEMA_VERSION: Final = len(MIGRATIONS)


class SQLiteStore:
    """One SQLite file (the `Store` protocol). Connections for SQLite's own tools and tests come from
    `read()` / `write()` / `connect()`; the schema is migrated on open."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.migrate()
        self._location = str(self.path.resolve())
        self._keys = SQLiteKeys(self.path)
        self._users = KnownUsers()

    @property
    def location(self) -> str:
        """The file's absolute path."""
        return self._location

    @property
    def index_path(self) -> Path:
        """`<file>.index` beside the store: the engine's ready-built index (a cache; the rows are the truth)."""
        return self.path.with_name(self.path.name + ".index")

    @property
    def keys(self) -> SQLiteKeys:
        """The API keys."""
        return self._keys

    def connect(self) -> sqlite3.Connection:
        """A new connection in autocommit mode with WAL, busy_timeout and foreign keys."""
        return connect(self.path)

    def migrate(self) -> None:
        """Create or upgrade the schema to SCHEMA_VERSION (idempotent, safe across processes).

        A file that cannot be used (not SQLite, damaged, read-only while it must be migrated, on a full
        disk) is `unavailable`, naming the fault."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with translated(self.path, writing=True):
            conn = self.connect()
            try:
                ensure_wal(conn)
                version = conn.execute("PRAGMA user_version").fetchone()[0]
                if version > SCHEMA_VERSION:
                    raise RuntimeError(
                        f"{self.path} has schema version {version}, newer than this program's "
                        f"{SCHEMA_VERSION}: upgrade cymetica-mcp"
                    )
                if version == SCHEMA_VERSION:
                    return
                conn.execute("BEGIN IMMEDIATE")
                try:
                    version = conn.execute("PRAGMA user_version").fetchone()[0]
                    for number in range(version, SCHEMA_VERSION):
                        for statement in _statements(MIGRATIONS[number]):
                            conn.execute(statement)
                    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                    conn.execute("COMMIT")
                except BaseException:
                    roll_back(conn)
                    raise
            finally:
                conn.close()

    def read(self) -> AbstractContextManager[sqlite3.Connection]:
        """A short-lived connection for queries."""
        return reading(self.path)

    def write(self, *, foreign_keys: bool = True) -> AbstractContextManager[sqlite3.Connection]:
        """A `BEGIN IMMEDIATE` transaction: committed on success, rolled back on any exception.

        `foreign_keys=False` leaves SQLite's row-by-row foreign key checks off for this transaction
        only: for a caller that checks the references it writes itself (as imports do).
        """
        return transaction(self.path, foreign_keys=foreign_keys)

    def data_version(self, conn: sqlite3.Connection | None = None) -> int:
        """The number of imports committed so far (by any process)."""
        if conn is not None:
            return data_version(conn)
        with self.read() as c:
            return self.data_version(c)

    def schema_version(self) -> int:
        """The schema version recorded in the file."""
        with self.read() as conn:
            return int(conn.execute("PRAGMA user_version").fetchone()[0])

    def versions(self) -> KeptVersion:
        """A reader of the data version of its own, on a connection it keeps."""
        return KeptVersion(Kept(self.path))

    def stamp(self) -> StoreStamp:
        """A commit stamp of its own (`PRAGMA data_version` on a read-only connection)."""
        return StoreStamp(self.path)

    @contextmanager
    def snapshot(self) -> Iterator[SQLiteSnapshot]:
        """One read transaction: every query inside sees the same committed state."""
        with translated(self.path, writing=False):
            conn = self.connect()
            try:
                conn.execute("PRAGMA cache_size = -2048")  # each page is read once: caching them buys nothing
                conn.execute("BEGIN")
                yield SQLiteSnapshot(conn)
            finally:
                conn.close()

    @contextmanager
    def importing(self) -> Iterator[SQLiteImport]:
        """One `BEGIN IMMEDIATE` import. Foreign keys are checked by the import itself (each trade's
        user looked up in `user_refs`, the users its trades name checked once by `TradeWriter.finish`),
        not by SQLite once a row."""
        with self.write(foreign_keys=False) as conn:
            yield SQLiteImport(conn, self._users)

    def secret(self, name: str, generate: Callable[[], bytes]) -> bytes:
        """The setting `name`, generated and stored the first time."""
        with self.read() as conn:  # usually there: no write lock needed (an import may hold it for minutes)
            row = conn.execute("SELECT value FROM settings WHERE key = ?", (name,)).fetchone()
        if row is not None:
            return bytes(row[0])
        with self.write() as conn:
            conn.execute("INSERT OR IGNORE INTO settings (key, value) VALUES (?, ?)", (name, generate()))
            return bytes(conn.execute("SELECT value FROM settings WHERE key = ?", (name,)).fetchone()[0])

    def replace_secret(self, name: str, value: bytes) -> None:
        """Store `value` as the setting `name`."""
        with self.write() as conn:
            conn.execute(
                "INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (name, value),
            )

    def backup(self, destination: Path) -> int:
        """An online backup to the new file `destination` (SQLite's backup API); its data version."""
        return _maintenance.backup(self.path, Path(destination))

    def check(self) -> list[str]:
        """Integrity, foreign keys, packed chunks against rows, kept totals against sums."""
        return _maintenance.check(self.path)

    def close(self) -> None:
        """Nothing to release: each call opens and closes its own connection."""


class KeptVersion:
    """The data version, read on a kept connection (one indexed row)."""

    def __init__(self, kept: Kept) -> None:
        self._kept = kept

    def read(self) -> int:
        """The number of imports committed so far, by any process."""
        return self._kept.run(data_version)

    def close(self) -> None:
        """Release the kept connection."""
        self._kept.close()


def _statements(script: str) -> list[str]:
    """Split a migration script into statements (ours hold no semicolons inside literals)."""
    return [s.strip() for s in script.split(";") if s.strip()]
