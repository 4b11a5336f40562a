"""The commit stamp of a PostgreSQL store: its notifications, counted by one listening thread.

Every commit that the doors must learn of (an import, a key created or revoked, a setting replaced)
sends `NOTIFY cymetica` in its transaction; PostgreSQL delivers it, at commit, to every connection
listening, in every replica. One thread a store listens and counts them; `read` returns
(generation, count) without waiting, so the doors' rule is SQLite's: a cached answer is served again
only while the stamp it was made under is current (`web/_watch.py`).

- A commit by this process bumps the count itself, at once, not waiting for its own notification.
- While the listening connection is down, `read` answers None: the doors then ask the store itself
  (the fallback poll of the data version, CONTRACT.md section 8). Each new connection starts a new
  generation, so no stamp from before a gap is ever taken as current after it.
"""

from __future__ import annotations

import logging
import threading
from typing import Final

import psycopg

from cymetica_mcp.store._interface import Stamp
from cymetica_mcp.store.postgres._connect import Address
from cymetica_mcp.store.postgres._schema import IMPORT_CHANNEL

log = logging.getLogger(__name__)

WAKE_SECONDS: Final = 0.5
"""How often the listening thread wakes without a notification, to check its connection and whether
it is still wanted."""
RETRY_SECONDS: Final = (0.05, 0.1, 0.2, 0.5)
"""Waits before reconnecting after a lost connection (then the last one, again and again)."""


class Listener:
    """One LISTEN connection and its thread, started by the first stamp taken, stopped with the last."""

    def __init__(self, address: Address) -> None:
        self.address = address
        self._lock = threading.Lock()
        self._generation = 0
        self._count = 0
        self._connected = False
        self._users = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def read(self) -> Stamp | None:
        """(generation, notifications counted), or None while not listening."""
        with self._lock:
            return (self._generation, self._count) if self._connected else None

    def committed(self) -> None:
        """This process committed: move the stamp now (its own notification comes a moment later)."""
        with self._lock:
            self._count += 1

    def join(self) -> None:
        """One more user of the stamp: the thread runs while any is left."""
        with self._lock:
            self._users += 1
            if self._thread is not None and self._thread.is_alive():
                return
            self._stop = threading.Event()
            self._thread = threading.Thread(
                target=self._run, args=(self._stop,), name="cymetica-listen", daemon=True
            )
            self._thread.start()

    def leave(self) -> None:
        """One user fewer; the last one stops the thread (it closes its connection)."""
        with self._lock:
            self._users = max(0, self._users - 1)
            if self._users or self._thread is None:
                return
            self._stop.set()
            self._connected = False
            thread, self._thread = self._thread, None
        thread.join(timeout=2 * WAKE_SECONDS + 1)

    def _run(self, stop: threading.Event) -> None:
        failures = 0
        while not stop.is_set():
            try:
                with self.address.connect(autocommit=True) as conn:
                    conn.execute(f"LISTEN {IMPORT_CHANNEL}")
                    with self._lock:
                        self._generation += 1
                        self._count = 0
                        self._connected = True
                    failures = 0
                    while not stop.is_set():
                        for _ in conn.notifies(timeout=WAKE_SECONDS):
                            with self._lock:
                                self._count += 1
                        conn.execute("SELECT 1")  # notices a server gone while no notification came
            except psycopg.Error as exc:
                with self._lock:
                    was, self._connected = self._connected, False
                if was:
                    log.warning(
                        "lost the notifications of %s: %s",
                        self.address.location,
                        self.address.scrub(
                            str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                        ),
                    )
                stop.wait(RETRY_SECONDS[min(failures, len(RETRY_SECONDS) - 1)])
                failures += 1
        with self._lock:
            self._connected = False


class ListenerStamp:
    """A commit stamp of its own (the `CommitStamp` protocol) over the store's one listener."""

    def __init__(self, listener: Listener) -> None:
        self._listener = listener
        self._joined = False

    def read(self) -> Stamp | None:
        """The current stamp, or None while the store's notifications are not being received."""
        if not self._joined:
            self._listener.join()
            self._joined = True
        return self._listener.read()

    def close(self) -> None:
        """Stop counting on this stamp's behalf (the next `read` joins again)."""
        if self._joined:
            self._joined = False
            self._listener.leave()
