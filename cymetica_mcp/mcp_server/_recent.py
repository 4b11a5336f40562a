"""Answering a repeated tool call on the event loop while the store has not changed since.

A cached dashboard's call is mostly overhead: a worker-thread hop, and two SQLite read transactions
(the key's row, the store's data version), each a few lock syscalls on the WAL index. What makes it
safe to skip them is the store's commit stamp (`Store.stamp()`, shared with the web door): `PRAGMA data_version`
on a read-only connection of our own, which SQLite moves whenever any other connection, in this
process or another, commits. It never writes and, with `busy_timeout` 0, never waits: when it cannot
answer at once the call takes the worker-thread path, as every call did before.

- An accepted API key is trusted again only under the stamp read before it was checked, and at most
  `VERDICT_SECONDS` (so its last use is still recorded): a key revoked by any process moves the stamp,
  so the next call checks it against the store again and refuses it (CONTRACT.md section 7). JWTs are
  always checked (their expiry is the authenticator's business).
- A dashboard the engine computed is served again under the stamp read before it was asked for, and
  for a live one at most the engine's `max_age` after it was computed: no import committed since, at
  most max-age old (CONTRACT.md section 8), the engine's own rule.

Everything here lives on the event loop's thread (no locks); stamps from a reopened connection never
match older ones.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from cymetica_mcp.auth import KEY_PREFIX, Principal, Verdict, Verdicts
from cymetica_mcp.engine import Result
from cymetica_mcp.mcp_server._envelope import Query
from cymetica_mcp.store import Stamp

KEPT: Final = 256
"""Keys and dashboards remembered at once; past that the memory starts over."""


@dataclass(frozen=True, slots=True)
class _Computed:
    stamp: Stamp
    result: Result
    born: float


class Recent:
    """Keys accepted and dashboards computed under a stamp, answered again while it has not moved."""

    def __init__(self, max_age: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_age = max_age
        self.clock = clock
        self._verdicts = Verdicts(kept=KEPT, clock=clock)
        self._results: dict[tuple[object, ...], _Computed] = {}

    def principal(self, credential: str, stamp: Stamp | None) -> Principal | None:
        """The principal of an API key accepted under `stamp`, within `VERDICT_SECONDS`; else None."""
        return self._verdicts.get(credential, stamp)

    def accept(self, credential: str, stamp: Stamp | None, principal: Principal) -> None:
        """Remember an API key the store accepted by a check that began after `stamp` was read."""
        if credential.startswith(KEY_PREFIX):  # JWTs are always checked: their expiry is the authenticator's
            self._verdicts.put(credential, stamp, Verdict(principal, None))

    def result(self, query: Query, stamp: Stamp | None) -> Result | None:
        """The dashboard computed for `query` under `stamp`, if still servable (as a cached result)."""
        if stamp is None:
            return None
        known = self._results.get(_key(query))
        if known is None or known.stamp != stamp:
            return None
        if query.as_of is None and self.clock() - known.born > self.max_age:
            return None
        cached = known.result
        return Result(cached.dashboard, cached.now, cached.data_version, cached.computed_at, cached=True)

    def computed(self, query: Query, stamp: Stamp | None, result: Result, born: float) -> None:
        """Remember what the engine answered at `born` (its clock) for a call that read `stamp` first.

        A computation was born then. An answer from the engine's own cache is remembered only if it
        is a dashboard seen computed before (the same object), whose birth is known; otherwise when
        that entry was born is the engine's to know. So a commit that changes no data (a key's last
        use, say) costs one trip to the engine, not a wait for the next computation.
        """
        if stamp is None:
            return
        key = _key(query)
        if result.cached:
            known = self._results.get(key)
            if known is None or known.result.dashboard is not result.dashboard:
                return
            born = known.born
        if len(self._results) >= KEPT:
            self._results.clear()
        self._results[key] = _Computed(stamp, result, born)


def _key(query: Query) -> tuple[object, ...]:
    return (query.filter, query.period, query.as_of)
