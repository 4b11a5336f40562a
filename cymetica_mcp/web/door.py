"""What every web route shares: the engine, the authenticator and the per-key rate limiter.

Engine and authenticator calls are synchronous (numpy, SQLite): they run on worker threads so the
event loop keeps serving other clients meanwhile.
"""

from __future__ import annotations

from dataclasses import dataclass

import anyio.to_thread

from cymetica_mcp.auth import Authenticator, Principal
from cymetica_mcp.engine import Engine, Result
from cymetica_mcp.errors import AnalyticsError
from cymetica_mcp.models import Filter, Period
from cymetica_mcp.web.options import WebOptions
from cymetica_mcp.web.ratelimit import RateLimiter


def bearer(header: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header; None when absent; refuses other schemes."""
    if header is None or not header.strip():
        return None
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        raise AnalyticsError(
            "unauthorized",
            "unsupported authorization scheme (not echoed: it may be a credential sent without 'Bearer'): "
            "send 'Authorization: Bearer <API key or JWT>'",
        )
    return token.strip() or None


def bearer_sent(header: str | None) -> bool:
    """Whether the header carries a Bearer token at all (a 401 then says `error="invalid_token"`)."""
    scheme, _, token = (header or "").strip().partition(" ")
    return scheme.lower() == "bearer" and bool(token.strip())


@dataclass(frozen=True, slots=True)
class Door:
    """The web door's shared services."""

    engine: Engine
    authenticator: Authenticator
    limiter: RateLimiter
    options: WebOptions

    async def principal(self, credential: str | None) -> Principal:
        """The caller behind `credential`, or `unauthorized` (checked against the store every time)."""
        return await anyio.to_thread.run_sync(self.authenticator.authenticate, credential)

    async def admit(self, credential: str | None) -> Principal:
        """Authenticate, then take one request from the caller's rate limit (or `rate_limited`)."""
        principal = await self.principal(credential)
        self.limiter.check(principal.key_id)
        return principal

    async def result(self, filter: Filter, period: Period) -> Result:
        """The live dashboard for (filter, period), computed off the event loop (or from the cache)."""
        return await anyio.to_thread.run_sync(self.engine.result, filter, period, None)
