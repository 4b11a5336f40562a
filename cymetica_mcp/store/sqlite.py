"""Connection handling for the SQLite file: pragmas, migrations, one-writer transactions."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Final

from cymetica_mcp.store.schema import MIGRATIONS

SCHEMA_VERSION: Final = len(MIGRATIONS)
BUSY_TIMEOUT_MS: Final = 10_000


class Store:
    """One SQLite file. Open connections with `read()` / `write()`; the schema is migrated on open."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.migrate()

    def connect(self) -> sqlite3.Connection:
        """A new connection in autocommit mode with WAL, busy_timeout and foreign keys."""
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA cache_size = -65536")  # 64 MiB: keeps the trade_id index hot during imports
        return conn

    def migrate(self) -> None:
        """Create or upgrade the schema to SCHEMA_VERSION (idempotent, safe across processes)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = self.connect()
        try:
            _ensure_wal(conn)
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
                conn.execute("ROLLBACK")
                raise
        finally:
            conn.close()

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """A short-lived connection for queries."""
        conn = self.connect()
        try:
            yield conn
        finally:
            conn.close()

    @contextmanager
    def write(self, *, foreign_keys: bool = True) -> Iterator[sqlite3.Connection]:
        """A `BEGIN IMMEDIATE` transaction: committed on success, rolled back on any exception.

        `foreign_keys=False` leaves SQLite's row-by-row foreign key checks off for this transaction
        only: for a caller that checks the references it writes itself (as imports do).
        """
        conn = self.connect()
        try:
            if not foreign_keys:
                conn.execute("PRAGMA foreign_keys = OFF")  # only takes effect outside a transaction
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        finally:
            conn.close()

    def data_version(self, conn: sqlite3.Connection | None = None) -> int:
        """The number of imports committed so far (by any process)."""
        if conn is not None:
            return int(conn.execute("SELECT value FROM meta WHERE key = 'data_version'").fetchone()[0])
        with self.read() as c:
            return self.data_version(c)

    def schema_version(self) -> int:
        """The schema version recorded in the file."""
        with self.read() as conn:
            return int(conn.execute("PRAGMA user_version").fetchone()[0])


def _ensure_wal(conn: sqlite3.Connection) -> None:
    """Put the file in WAL mode unless it already is, waiting out other writers.

    SQLite does not apply busy_timeout to a journal-mode change, so while another process writes,
    `PRAGMA journal_mode = WAL` fails at once with "database is locked"; reading the mode does not.
    """
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            if str(conn.execute("PRAGMA journal_mode").fetchone()[0]).lower() != "wal":
                conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def _statements(script: str) -> list[str]:
    """Split a migration script into statements (ours hold no semicolons inside literals)."""
    return [s.strip() for s in script.split(";") if s.strip()]
