"""The API key lookups every backend answers the same way: only how a query runs differs.

`KeyQueries` holds the questions a request asks on every call (`by_digest`, `by_id`, `secret`); a
backend's lookup says how to run one query (`_fetch`) and how its driver marks a parameter (`MARK`).
"""

from __future__ import annotations

from typing import Any, ClassVar, Final

from cymetica_mcp.store._interface import KeyInfo

COLUMNS: Final = "id, name, prefix, created_at, last_used_at, revoked_at, scopes, expires_at"
"""The `api_keys` columns that make a `KeyInfo`, in `info`'s order."""


def info(row: tuple[Any, ...]) -> KeyInfo:
    """The `KeyInfo` of a row of `COLUMNS`."""
    key_id, name, prefix, created_at, last_used_at, revoked_at, scopes, expires_at = row
    return KeyInfo(
        key_id, name, prefix, created_at, last_used_at, revoked_at, tuple(scopes.split(",")), expires_at
    )


class KeyQueries:
    """Key rows by secret hash or by id, and a setting (the `KeyLookup` protocol's questions)."""

    MARK: ClassVar[str] = "?"
    """The driver's parameter mark (`?` for sqlite3, `%s` for psycopg)."""

    def _fetch(self, query: str, params: tuple[object, ...]) -> tuple[Any, ...] | None:
        """The first row of `query`, or None."""
        raise NotImplementedError

    def by_digest(self, digest: bytes) -> tuple[KeyInfo, bytes] | None:
        """The key whose secret hashes to `digest`, with the stored hash."""
        row = self._fetch(
            f"SELECT {COLUMNS}, secret_hash FROM api_keys WHERE secret_hash = {self.MARK}", (digest,)
        )
        return None if row is None else (info(row[:-1]), bytes(row[-1]))

    def by_id(self, key_id: int) -> KeyInfo | None:
        """The key with this id."""
        row = self._fetch(f"SELECT {COLUMNS} FROM api_keys WHERE id = {self.MARK}", (key_id,))
        return None if row is None else info(row)

    def secret(self, name: str) -> bytes | None:
        """The setting `name` as stored now."""
        row = self._fetch(f"SELECT value FROM settings WHERE key = {self.MARK}", (name,))
        return None if row is None else bytes(row[0])
