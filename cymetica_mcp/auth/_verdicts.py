"""Credentials the authenticator accepted, trusted again while the store's commit stamp has not moved.

Shared by the web door and the MCP server: a key revoked by any process is a commit, which moves the
stamp (`store.CommitStamp`), so the next request on it is checked against the store again and refused.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from typing import Final

from cymetica_mcp.auth._authenticator import LAST_USED_EVERY, Principal, Verdict
from cymetica_mcp.store import Stamp

VERDICT_SECONDS: Final = LAST_USED_EVERY
"""Longest a verdict is trusted without a check against the store (which also records the key's last use)."""
VERDICTS_KEPT: Final = 4_096
"""Credentials remembered at once; past that the cache starts over."""


class Verdicts:
    """Credentials the authenticator accepted, trusted again while the store's stamp has not moved.

    Keyed by the SHA-256 of the credential (the secrets themselves are not kept). Only acceptances are
    remembered: a refused credential is checked against the store every time.
    """

    def __init__(
        self,
        *,
        seconds: float = VERDICT_SECONDS,
        kept: int = VERDICTS_KEPT,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.seconds = seconds
        self.kept = kept
        self.clock = clock
        self.wall = wall
        self._stamp: Stamp | None = None
        self._entries: dict[bytes, tuple[Verdict, float]] = {}

    def get(self, credential: str | None, stamp: Stamp | None) -> Principal | None:
        """The principal of an accepted `credential`, if accepted under `stamp` and still in time."""
        if stamp is None or stamp != self._stamp or not credential:
            return None
        digest = _digest(credential)
        entry = self._entries.get(digest)
        if entry is None:
            return None
        verdict, until = entry
        if self.clock() >= until or (verdict.expires is not None and self.wall() >= verdict.expires):
            del self._entries[digest]
            return None
        return verdict.principal

    def put(self, credential: str, stamp: Stamp | None, verdict: Verdict) -> None:
        """Remember that `credential` was accepted by a check that began after `stamp` was read."""
        if stamp is None or (self._stamp is not None and stamp < self._stamp):
            return
        if stamp != self._stamp or len(self._entries) >= self.kept:
            self._entries.clear()
            self._stamp = stamp
        self._entries[_digest(credential)] = (verdict, self.clock() + self.seconds)


def _digest(credential: str) -> bytes:
    return hashlib.sha256(credential.encode("utf-8", "surrogatepass")).digest()
