"""What every web route shares: the engine, the authenticator and the per-key rate limiter.

Engine and authenticator calls are synchronous (numpy, SQLite): they run on worker threads so the
event loop keeps serving other clients meanwhile. What the store has not changed since is answered on
the loop from memory (see `_watch.py`): a credential accepted under the current commit stamp, a cached
dashboard of the current data version.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import anyio.to_thread
from starlette.types import Scope

from cymetica_mcp.auth import Authenticator, Principal, Verdicts
from cymetica_mcp.engine import Engine, Result
from cymetica_mcp.errors import AnalyticsError
from cymetica_mcp.models import Filter, Period
from cymetica_mcp.store import Stamp
from cymetica_mcp.web._options import WebOptions
from cymetica_mcp.web._ratelimit import FailureThrottle, RateLimiter
from cymetica_mcp.web._watch import StoreWatch


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
    watch: StoreWatch = field(init=False)
    verdicts: Verdicts = field(init=False, default_factory=Verdicts)
    failures: FailureThrottle = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "watch", StoreWatch(self.engine.store))
        failures = FailureThrottle(self.options.failures_per_address, self.options.failures_total)
        object.__setattr__(self, "failures", failures)

    def close(self) -> None:
        """Release the watch's connection (on the event loop's thread, where it is used)."""
        self.watch.close()

    def remembered(self, credential: str | None, stamp: Stamp | None) -> Principal | None:
        """The caller behind `credential` if it was accepted under `stamp` (memory only, never blocks)."""
        return self.verdicts.get(credential, stamp)

    def cached(self, filter: Filter, period: Period, stamp: Stamp | None) -> Result | None:
        """The live dashboard if the engine holds a servable one for the data version known under
        `stamp` (memory only, never blocks)."""
        version = self.watch.version(stamp)
        return None if version is None else self.engine.cached(filter, period, version)

    async def principal(self, credential: str | None, address: str | None = None) -> Principal:
        """The caller behind `credential`, or `unauthorized`: from memory while nothing was committed
        to the store since it was accepted, else checked against the store on a worker thread; sent
        from `address`, refused with `rate_limited` unchecked while that address failed too often."""
        stamp = self.watch.stamp()
        known = self.remembered(credential, stamp)
        if known is not None:
            return known
        held = address is not None and self.failures.check(address)
        try:
            verdict = await anyio.to_thread.run_sync(self.authenticator.verdict, credential)
        except AnalyticsError as exc:
            if address is not None and exc.code == "unauthorized":
                self.failures.failed(address, held)
                held = False
            raise
        finally:
            if held and address is not None:
                self.failures.release(address)
        if credential:
            self.verdicts.put(credential, stamp, verdict)
        return verdict.principal

    def address(self, scope: Scope) -> str:
        """The client's address: the peer's, or, from a trusted proxy, the last hop of X-Forwarded-For
        that is not itself a trusted proxy."""
        peer = scope.get("client") or ("unknown", 0)
        host = str(peer[0])
        if host not in self.options.trusted_proxies:
            return host
        forwarded = [
            value.decode("latin-1")
            for name, value in scope.get("headers", ())
            if name.lower() == b"x-forwarded-for"
        ]
        hops = [hop.strip() for line in forwarded for hop in line.split(",") if hop.strip()]
        while hops and hops[-1] in self.options.trusted_proxies:
            hops.pop()
        return hops[-1] if hops else host

    async def admit(self, credential: str | None, address: str | None = None) -> Principal:
        """Authenticate, then take one request from the caller's rate limit (or `rate_limited`)."""
        principal = await self.principal(credential, address)
        self.limiter.check(principal.key_id)
        return principal

    async def result(self, filter: Filter, period: Period) -> Result:
        """The live dashboard for (filter, period): the engine's cached one when the store has not
        changed since its data version was learnt, else from the engine on a worker thread."""
        stamp = self.watch.stamp()
        cached = self.cached(filter, period, stamp)
        if cached is not None:
            return cached
        result = await anyio.to_thread.run_sync(self.engine.result, filter, period, None)
        self.watch.learn(stamp, result.data_version)
        return result
