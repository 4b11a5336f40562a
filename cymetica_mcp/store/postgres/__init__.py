"""The PostgreSQL store: the `Store` protocol over one database that several replicas share.

Chosen by `CYMETICA_DB=postgresql://user[:password]@host:port/db` (`open_store`); the password is used to
connect and never shown (`location`, every message). psycopg 3 with a connection pool; imports `COPY`
into a staging table inside one transaction; commits `NOTIFY` every replica (`_listen`).
"""

from __future__ import annotations

from cymetica_mcp.store.postgres._connect import Address, is_postgres
from cymetica_mcp.store.postgres._moving import PostgresSource, PostgresTarget
from cymetica_mcp.store.postgres._store import SCHEMA_VERSION, PostgresStore

__all__ = ["SCHEMA_VERSION", "Address", "PostgresSource", "PostgresStore", "PostgresTarget", "is_postgres"]
