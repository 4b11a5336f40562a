"""Who is calling: API keys (only a hash stored), JWTs exchanged for them, and a cache of verdicts.

Every door turns whatever credential a client sent into a `Principal` with
`Authenticator.authenticate`, or gets `AnalyticsError("unauthorized")`.
"""

from __future__ import annotations

from cymetica_mcp.auth._authenticator import (
    JWT_ALGORITHM,
    JWT_AUDIENCE,
    JWT_ISSUER,
    JWT_LIFETIME,
    JWT_SECRET,
    LAST_USED_EVERY,
    Authenticator,
    Principal,
    Verdict,
    configured_secret,
    jwt_secret,
    rotate_jwt_secret,
)
from cymetica_mcp.auth._keys import HOW_TO_GET_A_KEY, KEY_PREFIX, KeyRing
from cymetica_mcp.auth._verdicts import Verdicts
from cymetica_mcp.store import KeyInfo

__all__ = [
    "HOW_TO_GET_A_KEY",
    "JWT_ALGORITHM",
    "JWT_AUDIENCE",
    "JWT_ISSUER",
    "JWT_LIFETIME",
    "JWT_SECRET",
    "KEY_PREFIX",
    "LAST_USED_EVERY",
    "Authenticator",
    "KeyInfo",
    "KeyRing",
    "Principal",
    "Verdict",
    "Verdicts",
    "configured_secret",
    "jwt_secret",
    "rotate_jwt_secret",
]
