"""API keys: made, listed and revoked here; only the SHA-256 of each secret reaches the store."""

from __future__ import annotations

import hashlib
import secrets
import time
from typing import Final

from cymetica_mcp.errors import AnalyticsError
from cymetica_mcp.models import Scope
from cymetica_mcp.store import KeyInfo, Store

KEY_PREFIX: Final = "cym_"
SHOWN_PREFIX: Final = 12
HOW_TO_GET_A_KEY: Final = "create one with `cymetica-mcp keys create --name NAME`"


def digest(secret: str) -> bytes:
    """What the store keeps of a secret, and looks it up by."""
    return hashlib.sha256(secret.encode("utf-8")).digest()


class KeyRing:
    """Create, list and revoke API keys in the store."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def create(
        self, name: str, scopes: tuple[Scope, ...] = (Scope.READ,), lifetime: int | None = None
    ) -> tuple[KeyInfo, str]:
        """A new key with `scopes`, expiring `lifetime` seconds from now (None: never): its record and
        the secret, which is shown this once and never stored."""
        name = name.strip()
        if not 1 <= len(name) <= 100:
            raise AnalyticsError("invalid_argument", "a key name must be 1 to 100 characters")
        if not scopes:
            raise AnalyticsError("invalid_argument", "a key needs at least one scope (read, ingest)")
        if lifetime is not None and lifetime <= 0:
            raise AnalyticsError("invalid_argument", "a key's lifetime must be positive")
        secret = KEY_PREFIX + secrets.token_urlsafe(32)
        now = int(time.time())
        info = self.store.keys.create(
            name,
            secret[:SHOWN_PREFIX],
            digest(secret),
            now,
            tuple(s.value for s in Scope if s in scopes),
            None if lifetime is None else now + lifetime,
        )
        return info, secret

    def list(self) -> list[KeyInfo]:
        """Every key, oldest first."""
        return self.store.keys.all()

    def revoke(self, key_id: int) -> KeyInfo:
        """Revoke a key (at once, for every process); revoking twice keeps the first time."""
        info = self.store.keys.revoke(key_id, int(time.time()))
        if info is None:
            raise AnalyticsError(
                "not_found", f"no API key with id {key_id}; `cymetica-mcp keys list` shows the ids"
            )
        return info
