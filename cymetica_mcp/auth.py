"""API keys (only a hash stored) and JWTs: one entry point, `Authenticator.authenticate`.

Every door calls `authenticate(credential)` with whatever the client sent (a `cym_` API key or a JWT)
and gets a `Principal` or an `AnalyticsError("unauthorized", ...)` whose message never says whether a
key exists. Revocation is read from the store on every call, so a key revoked by any process is
refused on the next request, and so is every JWT issued for it.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import sqlite3
import threading
import time
from dataclasses import dataclass
from typing import Any, Final, Literal

import jwt

from cymetica_mcp.errors import AnalyticsError
from cymetica_mcp.store import Store

KEY_PREFIX: Final = "cym_"
SHOWN_PREFIX: Final = 12
JWT_ALGORITHM: Final = "HS256"
JWT_AUDIENCE: Final = "cymetica-analytics"
JWT_ISSUER: Final = "cymetica-mcp"
JWT_LIFETIME: Final = 3_600
MIN_SECRET_BYTES: Final = 32
LAST_USED_EVERY: Final = 60.0
HOW_TO_GET_A_KEY: Final = "create one with `cymetica-mcp keys create --name NAME`"


@dataclass(frozen=True, slots=True)
class KeyInfo:
    """What may be shown about an API key: never the secret."""

    id: int
    name: str
    prefix: str
    created_at: int
    last_used_at: int | None
    revoked_at: int | None

    @property
    def active(self) -> bool:
        """Not revoked."""
        return self.revoked_at is None


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller: the API key it holds, directly or through a JWT."""

    key_id: int
    name: str
    via: Literal["api_key", "jwt"]


@dataclass(frozen=True, slots=True)
class Verdict:
    """An accepted credential: who it is, and until when its own claims allow it (whatever the store says)."""

    principal: Principal
    expires: int | None
    """A JWT's `exp` (Unix seconds; refused from that instant on); None for an API key, which does not expire."""


def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode("utf-8")).digest()


def _info(row: tuple[int, str, str, int, int | None, int | None]) -> KeyInfo:
    return KeyInfo(*row)


_COLUMNS: Final = "id, name, prefix, created_at, last_used_at, revoked_at"


class KeyRing:
    """Create, list and revoke API keys in the store."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def create(self, name: str) -> tuple[KeyInfo, str]:
        """A new key: its record and the secret, which is shown this once and never stored."""
        name = name.strip()
        if not 1 <= len(name) <= 100:
            raise AnalyticsError("invalid_argument", "a key name must be 1 to 100 characters")
        secret = KEY_PREFIX + secrets.token_urlsafe(32)
        with self.store.write() as conn:
            cursor = conn.execute(
                "INSERT INTO api_keys (name, prefix, secret_hash, created_at) VALUES (?, ?, ?, ?)",
                (name, secret[:SHOWN_PREFIX], _digest(secret), int(time.time())),
            )
            row = conn.execute(
                f"SELECT {_COLUMNS} FROM api_keys WHERE id = ?", (cursor.lastrowid,)
            ).fetchone()
        return _info(row), secret

    def list(self) -> list[KeyInfo]:
        """Every key, oldest first."""
        with self.store.read() as conn:
            return [_info(r) for r in conn.execute(f"SELECT {_COLUMNS} FROM api_keys ORDER BY id")]

    def revoke(self, key_id: int) -> KeyInfo:
        """Revoke a key (at once, for every process); revoking twice keeps the first time."""
        with self.store.write() as conn:
            conn.execute(
                "UPDATE api_keys SET revoked_at = coalesce(revoked_at, ?) WHERE id = ?",
                (int(time.time()), key_id),
            )
            row = conn.execute(f"SELECT {_COLUMNS} FROM api_keys WHERE id = ?", (key_id,)).fetchone()
        if row is None:
            raise AnalyticsError(
                "not_found", f"no API key with id {key_id}; `cymetica-mcp keys list` shows the ids"
            )
        return _info(row)


def jwt_secret(store: Store, configured: str | None) -> bytes:
    """The HS256 secret: CYMETICA_JWT_SECRET if set (>= 32 bytes), else one generated once and stored."""
    if configured:
        secret = configured.encode("utf-8")
        if len(secret) < MIN_SECRET_BYTES:
            raise AnalyticsError(
                "invalid_argument", f"CYMETICA_JWT_SECRET must be at least {MIN_SECRET_BYTES} bytes long"
            )
        return secret
    with store.read() as conn:  # usually there: no write lock needed (an import may hold it for minutes)
        row = conn.execute("SELECT value FROM settings WHERE key = 'jwt_secret'").fetchone()
    if row is not None:
        return bytes(row[0])
    with store.write() as conn:
        conn.execute(
            "INSERT OR IGNORE INTO settings (key, value) VALUES ('jwt_secret', ?)", (secrets.token_bytes(32),)
        )
        return bytes(conn.execute("SELECT value FROM settings WHERE key = 'jwt_secret'").fetchone()[0])


def _unauthorized(message: str) -> AnalyticsError:
    return AnalyticsError("unauthorized", message)


class Authenticator:
    """Turns a credential (API key or JWT) into a `Principal`; thread-safe."""

    def __init__(self, store: Store, secret: bytes, *, lifetime: int = JWT_LIFETIME) -> None:
        if len(secret) < MIN_SECRET_BYTES:
            raise ValueError(f"the JWT secret must be at least {MIN_SECRET_BYTES} bytes")
        self.store = store
        self.lifetime = lifetime
        self._secret = secret
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._last_used: dict[int, float] = {}

    def close(self) -> None:
        """Release the kept SQLite connection."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def _query(self, sql: str, params: tuple[object, ...]) -> tuple[Any, ...] | None:
        with self._lock:
            if self._conn is None:
                self._conn = self.store.connect()
            row: tuple[Any, ...] | None = self._conn.execute(sql, params).fetchone()
            return row

    def authenticate(self, credential: str | None) -> Principal:
        """The caller behind `credential`, or `unauthorized` (missing, malformed, expired, revoked)."""
        return self.verdict(credential).principal

    def verdict(self, credential: str | None) -> Verdict:
        """Like `authenticate`, with the instant a JWT expires (what a cache of verdicts must respect)."""
        if not credential or not credential.strip():
            raise _unauthorized(
                f"missing credential: send an API key or a JWT as 'Authorization: Bearer <token>' ({HOW_TO_GET_A_KEY})"
            )
        credential = credential.strip()
        if credential.startswith(KEY_PREFIX):
            return self._by_key(credential)
        if credential.count(".") == 2:
            return self._by_jwt(credential)
        raise _unauthorized(
            f"malformed credential: expected an API key starting with {KEY_PREFIX!r} or a JWT"
        )

    def _by_key(self, secret: str) -> Verdict:
        digest = _digest(secret)
        row = self._query(
            "SELECT id, name, secret_hash, revoked_at FROM api_keys WHERE secret_hash = ?", (digest,)
        )
        if row is None or not hmac.compare_digest(bytes(row[2]), digest) or row[3] is not None:
            raise _unauthorized(f"invalid or revoked API key ({HOW_TO_GET_A_KEY})")
        key_id = int(row[0])
        self._touch(key_id)
        return Verdict(Principal(key_id, str(row[1]), "api_key"), None)

    def _by_jwt(self, token: str) -> Verdict:
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=[JWT_ALGORITHM],
                audience=JWT_AUDIENCE,
                issuer=JWT_ISSUER,
                options={"require": ["exp", "iat", "sub", "aud", "iss"]},
            )
        except jwt.ExpiredSignatureError:
            raise _unauthorized("token expired: get a new one from POST /api/v1/auth/token") from None
        except jwt.PyJWTError:
            raise _unauthorized("invalid token: not a JWT issued by this server") from None
        try:
            key_id = int(claims["sub"])
        except (TypeError, ValueError):
            raise _unauthorized("invalid token: not a JWT issued by this server") from None
        row = self._query("SELECT name, revoked_at FROM api_keys WHERE id = ?", (key_id,))
        if row is None or row[1] is not None:
            raise _unauthorized(f"the API key behind this token was revoked ({HOW_TO_GET_A_KEY})")
        return Verdict(Principal(key_id, str(row[0]), "jwt"), int(claims["exp"]))

    def issue(self, principal: Principal) -> tuple[str, int]:
        """A signed JWT for the principal's key and its lifetime in seconds."""
        now = int(time.time())
        claims = {
            "sub": str(principal.key_id),
            "iat": now,
            "exp": now + self.lifetime,
            "aud": JWT_AUDIENCE,
            "iss": JWT_ISSUER,
        }
        return jwt.encode(claims, self._secret, algorithm=JWT_ALGORITHM), self.lifetime

    def _touch(self, key_id: int) -> None:
        """Record last use, at most once a minute per key (a write per request would fight imports)."""
        now = time.monotonic()
        if now - self._last_used.get(key_id, -LAST_USED_EVERY) < LAST_USED_EVERY:
            return
        self._last_used[key_id] = now
        conn = self.store.connect()
        try:
            # never wait for the writer: during a long import the record simply waits for a later request
            conn.execute("PRAGMA busy_timeout = 0")
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("UPDATE api_keys SET last_used_at = ? WHERE id = ?", (int(time.time()), key_id))
            conn.execute("COMMIT")
        except sqlite3.OperationalError:
            self._last_used.pop(key_id, None)  # a busy store must not delay or fail an authenticated read
        finally:
            conn.close()
