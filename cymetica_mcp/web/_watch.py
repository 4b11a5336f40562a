"""Answering on the event loop when nothing changed: the store's commit stamp and a cache of verdicts.

A request that the store can answer from memory (a credential accepted a moment ago, a cached
dashboard) should not pay for two trips to worker threads. What makes that safe is `StoreWatch.stamp`:
`PRAGMA data_version` on a connection of the watch's own, which never writes. SQLite changes that
number whenever any other connection, in this process or another, has committed since the connection
last looked; reading it costs a few microseconds (the WAL index in shared memory, no table read) and,
with `busy_timeout` 0, never waits for a lock: when it cannot answer at once it answers None and the
request takes the worker-thread path as before.

- A verdict (credential -> principal) is trusted again only while the stamp is the one read before the
  credential was checked: a key revoked by any process moves the stamp, so the next request on it is
  checked against the store again and refused (CONTRACT.md section 7). A JWT is trusted only before its
  `exp`, and every verdict at most `VERDICT_SECONDS`, so a key in use has its last use recorded.
- The data version is known on the loop while the stamp is the one read before it was last learnt;
  the engine's cache then says whether it holds a servable dashboard for that version (CONTRACT.md
  section 8: no import committed since, at most max-age old).

Both live on the event loop's thread only; nothing here takes a lock that a worker thread holds for
longer than a dictionary operation.
"""

from __future__ import annotations

from cymetica_mcp.store import Stamp, Store


class StoreWatch:
    """The store's commit stamp, read on the event loop, and the data version last learnt with it."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._stamps = store.stamp()
        self._known: tuple[Stamp, int] | None = None

    def stamp(self) -> Stamp | None:
        """The store's commit stamp (see `store.stamp`); None when SQLite cannot answer at once."""
        return self._stamps.read()

    def version(self, stamp: Stamp | None) -> int | None:
        """The store's data version, if it was learnt after `stamp` was read and `stamp` is current."""
        known = self._known
        if stamp is None or known is None or known[0] != stamp:
            return None
        return known[1]

    def learn(self, stamp: Stamp | None, version: int) -> None:
        """Record `version`, read from the store after `stamp` was read (on any connection)."""
        if stamp is not None and (self._known is None or stamp >= self._known[0]):
            self._known = (stamp, version)

    def close(self) -> None:
        """Release the connection (the next `stamp` opens a new one)."""
        self._stamps.close()
