"""The store's commit stamp: has any other connection committed since I last looked? Never waits.

`PRAGMA data_version` on a read-only connection of our own: SQLite moves it whenever any other
connection, in this process or another, commits. Reading it costs a few microseconds (the WAL index in
shared memory, no table page) and, with `busy_timeout` 0, never waits for a lock: when SQLite cannot
answer at once the reader gets None and asks the store itself. The doors use it to answer a repeated
request from memory only while nothing was committed since (a key revoked, an import landed).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from cymetica_mcp.store._interface import Stamp


class StoreStamp:
    """The store's commit stamp, read on the event loop without ever waiting."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._conn: sqlite3.Connection | None = None
        self._opened = 0

    def read(self) -> Stamp | None:
        """The current stamp, or None when SQLite cannot answer at once (then ask the store itself)."""
        try:
            if self._conn is None:
                # timeout=0 is busy_timeout 0: SQLITE_BUSY at once instead of waiting for a lock
                conn = sqlite3.connect(self.path, timeout=0, isolation_level=None, check_same_thread=False)
                try:
                    conn.execute("PRAGMA query_only = ON")
                except sqlite3.Error:
                    conn.close()  # a refused open must not leak its descriptor
                    raise
                self._conn = conn
                self._opened += 1
            return (self._opened, int(self._conn.execute("PRAGMA data_version").fetchone()[0]))
        except sqlite3.Error:
            return None

    def close(self) -> None:
        """Release the connection (the next `read` opens a new one, whose stamps match no older one)."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None
