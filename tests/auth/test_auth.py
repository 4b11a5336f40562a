"""Authentication never waits for the store's writer."""

from __future__ import annotations

import time

from cymetica_mcp.auth import Authenticator, KeyRing, jwt_secret
from cymetica_mcp.store import SQLiteStore


def test_a_key_is_accepted_at_once_while_an_import_holds_the_write_lock(store: SQLiteStore) -> None:
    _, secret = KeyRing(store).create("busy")
    authenticator = Authenticator(store, jwt_secret(store, None))
    writer = store.connect()
    writer.execute("BEGIN IMMEDIATE")  # what a long import holds for its whole duration
    try:
        started = time.monotonic()
        assert authenticator.authenticate(secret).name == "busy"
        assert time.monotonic() - started < 1.0  # not the 10 s busy_timeout
    finally:
        writer.execute("ROLLBACK")
        writer.close()
    authenticator.authenticate(secret)  # the store is free again: last use is recorded now
    assert KeyRing(store).list()[0].last_used_at is not None
    authenticator.close()
