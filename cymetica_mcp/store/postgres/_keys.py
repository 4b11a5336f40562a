"""API key rows in PostgreSQL: created, listed, revoked, looked up on every request, last use recorded.

Creating or revoking a key notifies every replica (`_listen`), so a revocation through any of them, or
through the command line, is refused by all of them on their next request.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import psycopg

from cymetica_mcp.store._interface import KeyInfo
from cymetica_mcp.store._key_queries import COLUMNS, KeyQueries, info
from cymetica_mcp.store.postgres._connect import Address, Connection
from cymetica_mcp.store.postgres._lend import Lender
from cymetica_mcp.store.postgres._schema import IMPORT_CHANNEL

T = TypeVar("T")


class PostgresKeys:
    """The `api_keys` table (the `KeyRows` protocol)."""

    def __init__(self, address: Address, pool: Lender, committed: Callable[[], None]) -> None:
        self.address = address
        self.pool = pool
        self._committed = committed

    def _write(self, work: Callable[[Connection], T]) -> T:
        """`work` in one transaction that tells every replica when it commits."""
        with self.address.translated(writing=True), self.pool.connection() as conn:
            with conn.transaction():
                result = work(conn)
                conn.execute("SELECT pg_notify(%s, 'keys')", (IMPORT_CHANNEL,))
            self._committed()
            return result

    def _read(self, work: Callable[[Connection], T]) -> T:
        with self.address.translated(writing=False), self.pool.connection() as conn:
            return work(conn)

    def create(
        self,
        name: str,
        prefix: str,
        digest: bytes,
        created_at: int,
        scopes: tuple[str, ...] = ("read",),
        expires_at: int | None = None,
    ) -> KeyInfo:
        """Store a new key."""
        row = self._write(
            lambda conn: conn.execute(
                "INSERT INTO api_keys (name, prefix, secret_hash, created_at, scopes, expires_at)"
                f" VALUES (%s, %s, %s, %s, %s, %s) RETURNING {COLUMNS}",
                (name, prefix, digest, created_at, ",".join(scopes), expires_at),
            ).fetchone()
        )
        assert row is not None
        return info(row)

    def all(self) -> list[KeyInfo]:
        """Every key, oldest first."""
        return self._read(
            lambda conn: [info(r) for r in conn.execute(f"SELECT {COLUMNS} FROM api_keys ORDER BY id")]
        )

    def revoke(self, key_id: int, at: int) -> KeyInfo | None:
        """Revoke a key at `at`; revoking twice keeps the first time."""
        row = self._write(
            lambda conn: conn.execute(
                f"UPDATE api_keys SET revoked_at = coalesce(revoked_at, %s) WHERE id = %s RETURNING {COLUMNS}",
                (at, key_id),
            ).fetchone()
        )
        return None if row is None else info(row)

    def touch(self, key_id: int, at: int) -> bool:
        """Record last use, never waiting for another writer of the row: then it is not recorded."""
        try:
            with self.pool.connection() as conn, conn.transaction():
                conn.execute("SET LOCAL lock_timeout = '50ms'")
                conn.execute("UPDATE api_keys SET last_used_at = %s WHERE id = %s", (at, key_id))
            return True
        except psycopg.Error:
            return False
        except Exception:  # the pool could not lend a connection: a last use is not worth waiting for
            return False

    def lookup(self) -> PostgresKeyLookup:
        """A lookup over the store's pool."""
        return PostgresKeyLookup(self)


class PostgresKeyLookup(KeyQueries):
    """Key rows by secret hash or by id (the `KeyLookup` protocol), on the store's pool."""

    MARK = "%s"

    def __init__(self, keys: PostgresKeys) -> None:
        self._keys = keys

    def _fetch(self, query: str, params: tuple[object, ...]) -> tuple[Any, ...] | None:
        return self._keys._read(lambda conn: conn.execute(query.encode(), params).fetchone())

    def close(self) -> None:
        """Nothing of its own to release: the connections are the store's pool's."""
