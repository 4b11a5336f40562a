"""Pooled connections that fail fast while the server is down and come back as soon as it is up.

psycopg_pool alone, when the server goes away, makes every caller wait `POOL_WAIT_SECONDS` for a
connection that cannot come, and after its own failed attempts retries on an exponential backoff, so
a server back after a few seconds was used again only 15-20 s later (measured: 16.7 s after a
3-second stop). `Lender` keeps the pool for what it is good at (reusing connections, bounding them)
and decides itself whether the server is there:

- While the server was last seen unreachable (a connection broke, a connect failed), and whenever
  lending would make the pool open a connection, one direct connection (`Address.connect`, at most
  `CONNECT_SECONDS`) proves it is up first; refused, the caller gets the driver's error at once
  (`translated` makes it `unavailable`), and at most one probe runs every `PROBE_SECONDS`: in
  between, callers are refused with the last probe's error without touching the network.
- The pool does not retry failed connections on its own (`reconnect_timeout=0`): each retry it
  scheduled held one of its slots until the backoff's next step (1, 2, 4... s), so clients waited for
  them after the server was back. The probe decides when to connect again.
- A connection lent is checked first (an empty statement); a broken one, left by a server restarted
  since, is discarded with every other idle one (`ConnectionPool.check`), and the caller gets a new
  one once a probe says the server is back.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Final

import psycopg
from psycopg_pool import ConnectionPool

if TYPE_CHECKING:
    from cymetica_mcp.store.postgres._connect import Address

Connection = psycopg.Connection[tuple[Any, ...]]
PROBE_SECONDS: Final = 0.2
"""While the server is down, at most one direct connection attempt per this many seconds."""


class Lender:
    """A `ConnectionPool` of autocommit connections that knows whether the server is up."""

    def __init__(self, address: Address, pool: ConnectionPool[Connection], size: int) -> None:
        self.address = address
        self.pool = pool
        self.size = size
        self._lock = threading.Lock()
        self._down = False
        self._probed_at = -PROBE_SECONDS
        self._refusal: psycopg.OperationalError | None = None

    @contextmanager
    def connection(self) -> Iterator[Connection]:
        """A working connection of the pool, returned to it when the block ends; `OperationalError`
        at once while the server cannot be reached."""
        conn = self._checked()
        try:
            with conn:
                yield conn
        except (psycopg.OperationalError, psycopg.InterfaceError):
            if conn.broken or conn.closed:
                self._lost()
            raise
        finally:
            self.pool.putconn(conn)

    def _checked(self) -> Connection:
        """A connection of the pool that answers (the server proven up first when it is in doubt)."""
        stats = self.pool.get_stats()
        if self._down or (stats.get("pool_available", 0) == 0 and stats.get("pool_size", 0) < self.size):
            self._probe()
        conn = self.pool.getconn()
        try:
            conn.execute("")
        except psycopg.Error:  # broken by a server restarted or stopped since it was last used
            self.pool.putconn(conn)
            self._lost()
            self._probe()
            self.pool.check()  # the other idle connections are as old: the broken ones are replaced
            return self.pool.getconn()
        return conn

    def close(self) -> None:
        """Close every connection of the pool."""
        self.pool.close()

    def _lost(self) -> None:
        with self._lock:
            self._down = True

    def _probe(self) -> None:
        """Connect once, directly: return if the server is up, else raise its refusal (the last one
        again, unprobed, within `PROBE_SECONDS` of it)."""
        with self._lock:
            now = time.monotonic()
            if self._refusal is not None and now - self._probed_at < PROBE_SECONDS:
                raise psycopg.OperationalError(str(self._refusal))
            self._probed_at = now
        try:
            self.address.connect().close()
        except psycopg.OperationalError as exc:
            with self._lock:
                self._down, self._refusal = True, exc
            raise
        with self._lock:
            self._down, self._refusal = False, None
