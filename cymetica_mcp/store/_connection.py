"""SQLite connections: how each is opened, and one kept open for queries asked on every request."""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Final, TypeVar

from cymetica_mcp.errors import AnalyticsError
from cymetica_mcp.store._faults import translated

BUSY_TIMEOUT_MS: Final = 10_000

T = TypeVar("T")


def connect(path: Path) -> sqlite3.Connection:
    """A new connection in autocommit mode with WAL, busy_timeout and foreign keys."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA cache_size = -65536")  # 64 MiB: keeps the trade_id index hot during imports
    except BaseException:
        conn.close()  # a refused open must not keep its descriptor
        raise
    return conn


def data_version(conn: sqlite3.Connection) -> int:
    """The number of imports committed so far (by any process), as `conn` sees it."""
    return int(conn.execute("SELECT value FROM meta WHERE key = 'data_version'").fetchone()[0])


@contextmanager
def reading(path: Path) -> Iterator[sqlite3.Connection]:
    """A short-lived connection for queries; a fault of the file is `unavailable` (see `_faults`)."""
    with translated(path, writing=False):
        conn = connect(path)
        try:
            yield conn
        finally:
            conn.close()


@contextmanager
def transaction(path: Path, *, foreign_keys: bool = True) -> Iterator[sqlite3.Connection]:
    """A `BEGIN IMMEDIATE` transaction on a connection of its own: committed on success, rolled back
    on any exception, closed either way.

    `foreign_keys=False` leaves SQLite's row-by-row foreign key checks off for this transaction
    only: for a caller that checks the references it writes itself (as imports do). A fault of the
    file (full disk, read-only, not SQLite, damaged) is `unavailable` naming it (see `_faults`).
    """
    with translated(path, writing=True):
        conn = connect(path)
        try:
            if not foreign_keys:
                conn.execute("PRAGMA foreign_keys = OFF")  # only takes effect outside a transaction
            _begin_writing(conn)
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                roll_back(conn)
                raise
        finally:
            conn.close()


def roll_back(conn: sqlite3.Connection) -> None:
    """Undo the open transaction, if SQLite has not already (it does on some faults, such as a full
    disk): the fault that ended the transaction is what the caller must see, not "no transaction is
    active". Should the rollback itself fail, closing the connection undoes the transaction."""
    if conn.in_transaction:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")


def _begin_writing(conn: sqlite3.Connection) -> None:
    """`BEGIN IMMEDIATE`, waiting up to BUSY_TIMEOUT_MS for another writer; past that, `unavailable`."""
    try:
        conn.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as exc:
        if "locked" not in str(exc) and "busy" not in str(exc):
            raise
        raise AnalyticsError(
            "unavailable",
            f"another write has held the store for over {BUSY_TIMEOUT_MS // 1000} s; retry when it is done",
        ) from None


def ensure_wal(conn: sqlite3.Connection) -> None:
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


class Kept:
    """One connection kept open for queries asked again and again, opened on first use; thread-safe."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None

    def run(self, query: Callable[[sqlite3.Connection], T]) -> T:
        """`query` on the kept connection, one caller at a time."""
        with self._lock, translated(self.path, writing=False):
            if self._conn is None:
                self._conn = connect(self.path)
            return query(self._conn)

    def close(self) -> None:
        """Release the connection (the next `run` opens another)."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
