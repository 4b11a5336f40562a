"""API key rows in SQLite: created, listed, revoked, looked up on every request, last use recorded."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from cymetica_mcp.store._connection import Kept, connect, reading, transaction
from cymetica_mcp.store._interface import KeyInfo
from cymetica_mcp.store._key_queries import COLUMNS, KeyQueries, info


class SQLiteKeys:
    """The `api_keys` table (the `KeyRows` protocol)."""

    def __init__(self, path: Path) -> None:
        self.path = path

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
        with transaction(self.path) as conn:
            cursor = conn.execute(
                "INSERT INTO api_keys (name, prefix, secret_hash, created_at, scopes, expires_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (name, prefix, digest, created_at, ",".join(scopes), expires_at),
            )
            row = conn.execute(f"SELECT {COLUMNS} FROM api_keys WHERE id = ?", (cursor.lastrowid,)).fetchone()
        return info(row)

    def all(self) -> list[KeyInfo]:
        """Every key, oldest first."""
        with reading(self.path) as conn:
            return [info(r) for r in conn.execute(f"SELECT {COLUMNS} FROM api_keys ORDER BY id")]

    def revoke(self, key_id: int, at: int) -> KeyInfo | None:
        """Revoke a key at `at`; revoking twice keeps the first time."""
        with transaction(self.path) as conn:
            conn.execute(
                "UPDATE api_keys SET revoked_at = coalesce(revoked_at, ?) WHERE id = ?", (at, key_id)
            )
            row = conn.execute(f"SELECT {COLUMNS} FROM api_keys WHERE id = ?", (key_id,)).fetchone()
        return None if row is None else info(row)

    def touch(self, key_id: int, at: int) -> bool:
        """Record last use, never waiting for the writer: during a long import it is simply not recorded."""
        conn = connect(self.path)
        try:
            conn.execute("PRAGMA busy_timeout = 0")
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("UPDATE api_keys SET last_used_at = ? WHERE id = ?", (at, key_id))
            conn.execute("COMMIT")
            return True
        except sqlite3.OperationalError:
            return False
        finally:
            conn.close()

    def lookup(self) -> KeyLookup:
        """A lookup on a connection of its own, kept open."""
        return KeyLookup(Kept(self.path))


class KeyLookup(KeyQueries):
    """Key rows by secret hash or by id, on a kept connection (the `KeyLookup` protocol)."""

    def __init__(self, kept: Kept) -> None:
        self._kept = kept

    def _fetch(self, query: str, params: tuple[object, ...]) -> tuple[Any, ...] | None:
        row: tuple[Any, ...] | None = self._kept.run(lambda conn: conn.execute(query, params).fetchone())
        return row

    def close(self) -> None:
        """Release the kept connection."""
        self._kept.close()
