"""Every auth test runs on both backends: keys, scopes, expiry, revocation and JWTs are every store's rules."""

from __future__ import annotations

import pytest

from cymetica_mcp.store import Store


@pytest.fixture
def store(any_store: Store) -> Store:
    """An empty store of the test's backend (`backend`: a SQLite file or a PostgreSQL database)."""
    return any_store
