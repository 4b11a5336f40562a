"""Authentication never waits for the store's writer."""

from __future__ import annotations

import time

from cymetica_mcp.auth import Authenticator, KeyRing, jwt_secret
from cymetica_mcp.store import Store


def test_a_key_is_accepted_at_once_while_an_import_holds_the_write_lock(store: Store) -> None:
    _, secret = KeyRing(store).create("busy")
    authenticator = Authenticator(store, jwt_secret(store, None))
    # an import that has begun (SQLite: BEGIN IMMEDIATE; PostgreSQL: the data version row locked) and
    # holds it, as a long one does for its whole duration
    with store.importing():
        started = time.monotonic()
        assert authenticator.authenticate(secret).name == "busy"
        assert time.monotonic() - started < 1.0  # not the 10 s busy_timeout / lock_timeout
    authenticator.authenticate(secret)  # the store is free again: last use is recorded now
    assert KeyRing(store).list()[0].last_used_at is not None
    authenticator.close()
