"""Both store backends in one test: fresh stores of either, and a look at their rows without the API.

Suites that state a rule of every store (figures, import rules, keys) take the `backend` fixture of
tests/conftest.py ("sqlite" or "postgresql") and get their stores from it; `rows`, `execute` and
`content` read and write the tables of either backend with plain SQL, for the assertions that look
beneath the `Store` protocol (the schemas name the same tables and columns on both).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Final
from weakref import WeakKeyDictionary

from psycopg import conninfo

from cymetica_mcp.store import PostgresStore, SQLiteStore, Store

if TYPE_CHECKING:
    from tests.postgres import Cluster

BACKENDS: Final = ("sqlite", "postgresql")


@contextmanager
def fresh_store(backend: str, cluster: Callable[[], Cluster]) -> Iterator[Store]:
    """A new empty store of `backend`, removed when the block ends: a SQLite file in a temporary folder,
    or a new database of the session's cluster (`cluster()`, started only by the first PostgreSQL user)."""
    if backend == "sqlite":
        with tempfile.TemporaryDirectory() as folder:
            yield SQLiteStore(Path(folder) / "store.db")
        return
    assert backend == "postgresql", backend
    pg = cluster()
    if not pg.running:  # a fault test before this one may have left the server down
        pg.start()  # (before `migrated`, which may create the template)
    with pg_copy(pg, migrated(pg)) as store:
        yield store


@contextmanager
def pg_copy(cluster: Cluster, template: str) -> Iterator[PostgresStore]:
    """A new database of `cluster` copied from the database `template` (by name or URL; nobody may be
    connected to it), opened as a store; dropped when the block ends."""
    if not cluster.running:  # a fault test before this one may have left the server down
        cluster.start()
    url = cluster.create_database(template=template)
    store = PostgresStore(url)
    try:
        yield store
    finally:
        store.close()
        if not cluster.running:
            cluster.start()
        cluster.drop_database(url)


_migrated: WeakKeyDictionary[Cluster, str] = WeakKeyDictionary()


def migrated(cluster: Cluster) -> str:
    """The URL of an empty database of `cluster` with the store's schema, made once: new stores are copies
    of it (`CREATE DATABASE ... TEMPLATE`), ~half the cost of an empty database migrated each time."""
    if cluster not in _migrated:
        url = cluster.create_database()
        PostgresStore(url).close()
        _migrated[cluster] = url
    return _migrated[cluster]


def location(store: Store) -> str:
    """The `--db` argument that opens `store` in another process: its file, or its URL with the password."""
    if isinstance(store, SQLiteStore):
        return str(store.path)
    assert isinstance(store, PostgresStore), type(store)
    params = conninfo.conninfo_to_dict(store.address.conninfo)
    return f"postgresql://{params['user']}:{params['password']}@{params['host']}:{params['port']}/{params['dbname']}"


def close(store: Store) -> None:
    """Release what `store` holds open (a PostgreSQL store's pool; a SQLite store holds nothing)."""
    if isinstance(store, PostgresStore):
        store.close()


def rows(store: Store, query: str) -> list[tuple[object, ...]]:
    """The rows of `query` (SQL both backends read alike) in `store`."""
    if isinstance(store, SQLiteStore):
        with store.read() as conn:
            return [tuple(row) for row in conn.execute(query).fetchall()]
    assert isinstance(store, PostgresStore), type(store)
    with store.pool.connection() as conn:
        return [tuple(row) for row in conn.execute(query.encode()).fetchall()]


def execute(store: Store, statement: str) -> None:
    """Run one writing `statement` in `store`, committed (a test making a state the API does not)."""
    if isinstance(store, SQLiteStore):
        with store.write() as conn:
            conn.execute(statement)
        return
    assert isinstance(store, PostgresStore), type(store)
    with store.pool.connection() as conn:
        conn.execute(statement.encode())


def content(store: Store) -> list[object]:
    """Everything the store holds: equal lists mean equal content. SQLite: its whole dump as SQL
    (schema included); PostgreSQL: every row of every table of its schema."""
    if isinstance(store, SQLiteStore):
        with store.read() as conn:
            return list(conn.iterdump())
    tables = rows(store, "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1")
    return [(table, rows(store, f'SELECT * FROM "{table}" AS r ORDER BY r::text')) for (table,) in tables]
