"""Constraints of `trades` dropped for the length of an import into an empty table and added back
(their indexes built once from the rows, not row by row): `PostgresTrades._defer`.

Dropping takes the table's ACCESS EXCLUSIVE lock (waiting at most the import's lock_timeout for
readers), held until the commit; a rollback puts the constraints back (DDL is transactional).
"""

from __future__ import annotations

from typing import Final

from psycopg import sql

from cymetica_mcp.store.postgres._connect import Connection

TRADE_ID_UNIQUE: Final = "UNIQUE (trade_id)"
"""The unique trade_id constraint's definition (`pg_get_constraintdef`)."""


def drop(conn: Connection, unique: bool) -> dict[str, str]:
    """Drop the primary key of `trades`, and its unique trade_id constraint if `unique`; returns
    what was dropped: name -> definition."""
    found = conn.execute(
        "SELECT conname, pg_get_constraintdef(oid), contype FROM pg_constraint"
        " WHERE conrelid = 'trades'::regclass AND contype IN ('p', 'u') ORDER BY contype, conname"
    ).fetchall()
    dropped = {
        str(name): str(definition)
        for name, definition, kind in found
        if kind == "p" or (unique and definition == TRADE_ID_UNIQUE)
    }
    if dropped:
        clauses = (sql.SQL("DROP CONSTRAINT {}").format(sql.Identifier(name)) for name in dropped)
        conn.execute(sql.SQL("ALTER TABLE trades {}").format(sql.SQL(", ").join(clauses)))
    return dropped


def add(conn: Connection, constraints: dict[str, str]) -> None:
    """Add back `constraints` (name -> definition) to `trades`, in one statement."""
    if constraints:
        clauses = (
            sql.SQL("ADD CONSTRAINT {} " + definition).format(sql.Identifier(name))
            for name, definition in constraints.items()
        )
        conn.execute(sql.SQL("ALTER TABLE trades {}").format(sql.SQL(", ").join(clauses)))
