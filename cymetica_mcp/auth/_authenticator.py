"""Credentials to callers: one entry point, `Authenticator.authenticate`, for API keys and JWTs.

Every door calls `authenticate(credential)` with whatever the client sent (a `cym_` API key or a JWT)
and gets a `Principal` or an `AnalyticsError("unauthorized", ...)` whose message never says whether a
key exists. Revocation is read from the store on every call, so a key revoked by any process is
refused on the next request, and so is every JWT issued for it.
"""

from __future__ import annotations

import hmac
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final, Literal

import jwt

from cymetica_mcp.auth._keys import HOW_TO_GET_A_KEY, KEY_PREFIX, digest
from cymetica_mcp.errors import AnalyticsError
from cymetica_mcp.models import Scope
from cymetica_mcp.store import Store

JWT_ALGORITHM: Final = "HS256"
JWT_AUDIENCE: Final = "cymetica-analytics"
JWT_ISSUER: Final = "cymetica-mcp"
JWT_LIFETIME: Final = 3_600
MIN_SECRET_BYTES: Final = 32
LAST_USED_EVERY: Final = 60.0
JWT_SECRET: Final = "jwt_secret"  # noqa: S105 - the setting's name, not a secret
"""The setting that holds the generated JWT secret."""


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller: the API key it holds, directly or through a JWT, and what it may do."""

    key_id: int
    name: str
    via: Literal["api_key", "jwt"]
    scopes: frozenset[Scope] = frozenset({Scope.READ})

    def require(self, scope: Scope) -> None:
        """Refuse with `forbidden`, naming the scope, unless the caller's key has `scope`."""
        if scope not in self.scopes:
            held = ", ".join(sorted(s.value for s in self.scopes)) or "none"
            raise AnalyticsError(
                "forbidden",
                f"this API key lacks the '{scope.value}' scope (it has: {held}); create a key with it: "
                f"`cymetica-mcp keys create --name NAME --scope {scope.value}`",
            )


@dataclass(frozen=True, slots=True)
class Verdict:
    """An accepted credential: who it is, and until when its own claims allow it (whatever the store says)."""

    principal: Principal
    expires: int | None
    """Unix seconds from which it is refused: a JWT's `exp`, an API key's expiry; None: never."""


def configured_secret(configured: str | None) -> bytes | None:
    """CYMETICA_JWT_SECRET as bytes, refused below 32 bytes; None when unset."""
    if not configured:
        return None
    secret = configured.encode("utf-8")
    if len(secret) < MIN_SECRET_BYTES:
        raise AnalyticsError(
            "invalid_argument", f"CYMETICA_JWT_SECRET must be at least {MIN_SECRET_BYTES} bytes long"
        )
    return secret


def jwt_secret(store: Store, configured: str | None) -> bytes:
    """The HS256 secret: CYMETICA_JWT_SECRET if set (>= 32 bytes), else one generated once and stored."""
    return configured_secret(configured) or store.secret(JWT_SECRET, _new_secret)


def rotate_jwt_secret(store: Store) -> None:
    """Replace the stored JWT secret: every JWT issued so far is refused from the next request on, by
    every server on the store (API keys are untouched)."""
    store.replace_secret(JWT_SECRET, _new_secret())


def _new_secret() -> bytes:
    return secrets.token_bytes(MIN_SECRET_BYTES)


def _unauthorized(message: str) -> AnalyticsError:
    return AnalyticsError("unauthorized", message)


def _scopes(names: tuple[str, ...]) -> frozenset[Scope]:
    """The scopes among `names` that this program knows (an unknown one grants nothing)."""
    return frozenset(Scope(name) for name in names if name in Scope._value2member_map_)


def _iso(ts: int | None) -> str:
    return "never" if ts is None else datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Authenticator:
    """Turns a credential (API key or JWT) into a `Principal`; thread-safe."""

    def __init__(self, store: Store, secret: bytes | None = None, *, lifetime: int = JWT_LIFETIME) -> None:
        """`secret` signs and checks JWTs; None: the store's, read again on each use, so that
        `rotate_jwt_secret` (from any process) refuses every JWT issued before it at once."""
        if secret is not None and len(secret) < MIN_SECRET_BYTES:
            raise ValueError(f"the JWT secret must be at least {MIN_SECRET_BYTES} bytes")
        self.store = store
        self.lifetime = lifetime
        self._stored = secret is None
        self._secret = secret if secret is not None else jwt_secret(store, None)
        self._keys = store.keys.lookup()
        self._last_used: dict[int, float] = {}

    def close(self) -> None:
        """Release the kept store connection."""
        self._keys.close()

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
        hashed = digest(secret)
        found = self._keys.by_digest(hashed)
        if found is None or not hmac.compare_digest(found[1], hashed) or not found[0].active:
            raise _unauthorized(f"invalid or revoked API key ({HOW_TO_GET_A_KEY})")
        key = found[0]
        if key.expired(time.time()):
            raise _unauthorized(f"this API key expired at {_iso(key.expires_at)} ({HOW_TO_GET_A_KEY})")
        self._touch(key.id)
        return Verdict(Principal(key.id, key.name, "api_key", _scopes(key.scopes)), key.expires_at)

    def _by_jwt(self, token: str) -> Verdict:
        try:
            claims = jwt.decode(
                token,
                self._signing_secret(),
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
        key = self._keys.by_id(key_id)
        if key is None or not key.active:
            raise _unauthorized(f"the API key behind this token was revoked ({HOW_TO_GET_A_KEY})")
        if key.expired(time.time()):
            raise _unauthorized(f"the API key behind this token expired ({HOW_TO_GET_A_KEY})")
        # a token issued before scopes existed carries none: it was a read token
        granted = str(claims.get("scope", Scope.READ.value)).split()
        scopes = _scopes(tuple(s for s in granted if s in key.scopes))
        return Verdict(Principal(key_id, key.name, "jwt", scopes), int(claims["exp"]))

    def issue(self, principal: Principal) -> tuple[str, int]:
        """A signed JWT for the principal's key, with its scopes, and its lifetime in seconds: the
        configured lifetime, or less so that it never outlives the key."""
        now = int(time.time())
        key = self._keys.by_id(principal.key_id)
        if key is None or not key.active or key.expired(now):
            raise _unauthorized(f"the API key was revoked or expired ({HOW_TO_GET_A_KEY})")
        lifetime = self.lifetime if key.expires_at is None else min(self.lifetime, key.expires_at - now)
        claims = {
            "sub": str(principal.key_id),
            "iat": now,
            "exp": now + lifetime,
            "aud": JWT_AUDIENCE,
            "iss": JWT_ISSUER,
            "scope": " ".join(s.value for s in Scope if s in principal.scopes),
        }
        return jwt.encode(claims, self._signing_secret(), algorithm=JWT_ALGORITHM), lifetime

    def _signing_secret(self) -> bytes:
        """The configured secret, or the store's as it is now."""
        if not self._stored:
            return self._secret
        return self._keys.secret(JWT_SECRET) or self._secret

    def _touch(self, key_id: int) -> None:
        """Record last use, at most once a minute per key (a write per request would fight imports)."""
        now = time.monotonic()
        if now - self._last_used.get(key_id, -LAST_USED_EVERY) < LAST_USED_EVERY:
            return
        self._last_used[key_id] = now
        # never wait for the writer: during a long import the record simply waits for a later request
        if not self.store.keys.touch(key_id, int(time.time())):
            self._last_used.pop(key_id, None)  # a busy store must not delay or fail an authenticated read
