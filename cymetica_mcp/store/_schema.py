"""Versioned schema migrations, applied in order and recorded in `PRAGMA user_version`.

Amounts are integer micro-USDC; times are integer UTC seconds; `kind` is 0 (human) or 1 (agent).
`meta.data_version` grows by one with every committed import, in any process: it is how every
door learns that its cached figures are stale.
"""

from __future__ import annotations

from typing import Final

MIGRATIONS: Final[tuple[str, ...]] = (
    # 1: users, trades, meta
    """
    CREATE TABLE meta (
        key   TEXT PRIMARY KEY,
        value INTEGER NOT NULL
    ) STRICT;
    INSERT INTO meta (key, value) VALUES ('data_version', 0);
    CREATE TABLE users (
        id            INTEGER PRIMARY KEY,
        user_id       TEXT NOT NULL UNIQUE,
        kind          INTEGER NOT NULL CHECK (kind IN (0, 1)),
        capital_micro INTEGER NOT NULL CHECK (capital_micro >= 0),
        created_at    INTEGER NOT NULL,
        changed_in    INTEGER NOT NULL
    ) STRICT;
    CREATE INDEX users_changed_in ON users (changed_in);
    CREATE TABLE trades (
        id           INTEGER PRIMARY KEY,
        trade_id     TEXT NOT NULL UNIQUE,
        user_ref     INTEGER NOT NULL REFERENCES users (id),
        ts           INTEGER NOT NULL,
        volume_micro INTEGER NOT NULL CHECK (volume_micro > 0),
        pnl_micro    INTEGER NOT NULL
    ) STRICT;
    """,
    # 2: API keys (only a hash of the secret) and server settings (the generated JWT secret)
    """
    CREATE TABLE api_keys (
        id           INTEGER PRIMARY KEY,
        name         TEXT NOT NULL,
        prefix       TEXT NOT NULL,
        secret_hash  BLOB NOT NULL UNIQUE,
        created_at   INTEGER NOT NULL,
        last_used_at INTEGER,
        revoked_at   INTEGER
    ) STRICT;
    CREATE TABLE settings (
        key   TEXT PRIMARY KEY,
        value BLOB NOT NULL
    ) STRICT;
    """,
    # 3: each import batch's trade columns, packed (little-endian int64), written in the same
    # transaction as the rows: a process loads millions of trades from them without a row-by-row read
    """
    CREATE TABLE trade_chunks (
        first_id INTEGER PRIMARY KEY,
        last_id  INTEGER NOT NULL,
        user_ref BLOB NOT NULL,
        ts       BLOB NOT NULL,
        volume   BLOB NOT NULL,
        pnl      BLOB NOT NULL
    ) STRICT;
    """,
    # 4: what each API key may do (comma-separated scopes; keys made before keep `read`) and until when
    """
    ALTER TABLE api_keys ADD COLUMN scopes TEXT NOT NULL DEFAULT 'read';
    ALTER TABLE api_keys ADD COLUMN expires_at INTEGER;
    """,
)
