"""Reaching a PostgreSQL store: its URL told without the password, a pool of connections shared by a
process's threads, and what a failing server means to the caller (`unavailable`, never a trace).

A `postgresql://user:password@host:port/db` URL may hold a password: it is used to connect and
nowhere else. `location` (what messages and logs name) drops it, and every message taken from the
driver is scrubbed of it before it goes anywhere.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Final

import psycopg
from psycopg import conninfo
from psycopg_pool import ConnectionPool, PoolTimeout

from cymetica_mcp.config import shown
from cymetica_mcp.errors import AnalyticsError
from cymetica_mcp.store.postgres._lend import Lender

Connection = psycopg.Connection[tuple[Any, ...]]
Pool = ConnectionPool[Connection]
CONNECT_SECONDS: Final = 5
"""How long a new connection may take before the store is called unreachable."""
POOL_WAIT_SECONDS: Final = 10.0
"""How long a caller waits for a free pooled connection before `unavailable`."""
POOL_SIZE: Final = 8
LOCK_SECONDS: Final = 10
"""How long an import waits for another import (SQLite's busy timeout, the same rule)."""
KEEPALIVES: Final = {"keepalives": 1, "keepalives_idle": 5, "keepalives_interval": 2, "keepalives_count": 3}
"""TCP keepalives: a server that vanishes without closing the connection is noticed in ~11 s."""


class Address:
    """A PostgreSQL URL: what connects (with the password) and what may be shown (without it)."""

    def __init__(self, url: str) -> None:
        try:
            params = conninfo.conninfo_to_dict(url)
        except psycopg.ProgrammingError:
            raise AnalyticsError(
                "invalid_argument",
                "CYMETICA_DB / --db is not a valid PostgreSQL URL; accepted: "
                "postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?OPTIONS]",
            ) from None
        self.password = str(params.get("password") or "")
        self.conninfo = conninfo.make_conninfo(
            url, connect_timeout=CONNECT_SECONDS, application_name="cymetica-mcp", **KEEPALIVES
        )
        self.location = shown(url)

    def scrub(self, text: str) -> str:
        """`text` with the password replaced (a driver's message may quote its connection string)."""
        return text.replace(self.password, "***") if self.password else text

    def connect(self, *, autocommit: bool = True) -> Connection:
        """A new connection of its own (for LISTEN, for a long import)."""
        return psycopg.connect(self.conninfo, autocommit=autocommit)

    def pool(self) -> Lender:
        """A pool of autocommit connections, each checked before it is lent (a server restarted since
        leaves broken connections behind: they are replaced, not lent), refused at once while the
        server is down (`_lend`)."""
        pool: Pool = ConnectionPool(
            self.conninfo,
            min_size=0,
            max_size=POOL_SIZE,
            kwargs={"autocommit": True},
            timeout=POOL_WAIT_SECONDS,
            max_idle=60,
            num_workers=1,
            reconnect_timeout=0,  # no retries on the pool's backoff (1, 2, 4... s): `Lender` probes
            open=True,
            name="cymetica-mcp",
        )
        return Lender(self, pool, POOL_SIZE)

    @contextmanager
    def translated(self, *, writing: bool) -> Iterator[None]:
        """A PostgreSQL server that is down, unreachable, refusing us or out of space, inside the
        block, becomes `unavailable` naming the store (without its password) and the reason."""
        try:
            yield
        except psycopg.errors.LockNotAvailable:
            raise AnalyticsError(
                "unavailable",
                f"another write has held the store for over {LOCK_SECONDS} s; retry when it is done",
            ) from None
        except (psycopg.OperationalError, psycopg.InterfaceError, PoolTimeout) as exc:
            effect = "nothing was written" if writing else "nothing could be read"
            text = str(exc).strip()
            reason = self.scrub(text.splitlines()[0] if text else type(exc).__name__)
            raise AnalyticsError(
                "unavailable",
                f"the PostgreSQL store {self.location} cannot be used: {reason}; {effect}: "
                "check that the database is up and reachable, then retry",
                cause=f"the database cannot be reached ({short(reason)})",
            ) from None


def short(reason: str) -> str:
    """A driver's message without where it happened: libpq puts the server's address and the
    connection's stage before the last colon ("connection to server at ..., port N failed: FATAL:
    the database system is shutting down" -> "the database system is shutting down")."""
    return reason.rsplit(": ", 1)[-1].strip() or reason


def one(conn: Connection, query: str) -> Any:
    """The first column of the one row `query` returns."""
    row = conn.execute(query).fetchone()
    assert row is not None
    return row[0]
