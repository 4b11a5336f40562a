"""Keeping a SQLite store safe: an online backup, and a check of everything the store promises.

`backup` uses SQLite's online backup API from a read transaction of its own, so the copy is one
committed state even while servers read and imports commit. `check` runs SQLite's integrity and
foreign-key checks, then verifies what the engine relies on besides the rows: every packed chunk holds
exactly its trades' columns, and the kept totals equal the sums of the trades.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Final

import numpy as np

from cymetica_mcp.errors import AnalyticsError
from cymetica_mcp.store import _totals
from cymetica_mcp.store._connection import connect, reading

PAGES_AT_ONCE: Final = 4_096
"""Pages copied per backup step (16 MiB of 4 KiB pages); writers wait at most one step."""
SHOWN_PROBLEMS: Final = 20


def backup(source: Path, destination: Path) -> int:
    """Copy the store at `source` to the new file `destination`; return the copy's data version."""
    if destination.exists():
        raise AnalyticsError("invalid_argument", f"{destination} exists: give a path that does not")
    destination.parent.mkdir(parents=True, exist_ok=True)
    with reading(source) as conn:
        conn.execute("BEGIN")  # a read transaction: the backup copies this one snapshot, never restarts
        conn.execute("SELECT value FROM meta WHERE key = 'data_version'").fetchone()
        target = sqlite3.connect(destination)
        try:
            conn.backup(target, pages=PAGES_AT_ONCE)
            version = int(target.execute("SELECT value FROM meta WHERE key = 'data_version'").fetchone()[0])
        except BaseException:
            target.close()
            destination.unlink(missing_ok=True)
            raise
        target.close()
    return version


def check(path: Path) -> list[str]:
    """Every problem found in the store at `path` (none: it is sound)."""
    conn = connect(path)
    try:
        conn.execute("BEGIN")  # one snapshot for every check
        problems = [
            f"integrity: {row[0]}" for row in conn.execute("PRAGMA integrity_check") if row[0] != "ok"
        ]
        problems += [
            f"trade row {row[1]} names no user (foreign key into {row[2]})"
            for row in conn.execute("PRAGMA foreign_key_check")
        ]
        problems += _chunk_problems(conn)
        problems += _total_problems(conn)
    finally:
        conn.close()
    if len(problems) > SHOWN_PROBLEMS:
        problems = [*problems[:SHOWN_PROBLEMS], f"... and {len(problems) - SHOWN_PROBLEMS} more"]
    return problems


def _chunk_problems(conn: sqlite3.Connection) -> list[str]:
    """Chunks whose columns differ from their trades' rows, or that cover ids with no trade."""
    problems = []
    chunks = conn.execute(
        "SELECT first_id, last_id, user_ref, ts, volume, pnl FROM trade_chunks ORDER BY first_id"
    )
    for first, last, *blobs in chunks:
        rows = conn.execute(
            "SELECT id, user_ref, ts, volume_micro, pnl_micro FROM trades WHERE id BETWEEN ? AND ? ORDER BY id",
            (first, last),
        ).fetchall()
        table = np.array(rows, dtype=np.int64).reshape(-1, 5)
        packed = [np.frombuffer(blob, dtype="<i8") for blob in blobs]
        if len(rows) != last - first + 1 or not np.array_equal(table[:, 0], np.arange(first, last + 1)):
            problems.append(f"chunk of trades {first}..{last}: {len(rows)} trades stored in that range")
        elif any(not np.array_equal(column, table[:, at]) for at, column in enumerate(packed, start=1)):
            problems.append(f"chunk of trades {first}..{last}: its columns differ from the trades' rows")
    return problems


def _total_problems(conn: sqlite3.Connection) -> list[str]:
    """Kept totals that differ from the sums of the trades."""
    kept = dict(conn.execute("SELECT key, value FROM meta WHERE key IN (?, ?)", _totals.KEYS).fetchall())
    if len(kept) != len(_totals.KEYS):
        return []  # a store from before the totals: its next import sums them
    volume, abs_pnl = conn.execute(
        "SELECT coalesce(sum(volume_micro), 0), coalesce(sum(abs(pnl_micro)), 0) FROM trades"
    ).fetchone()
    found = {_totals.KEYS[0]: int(volume), _totals.KEYS[1]: int(abs_pnl)}
    return [
        f"kept total {key} is {kept[key]}, the trades sum to {found[key]}"
        for key in _totals.KEYS
        if kept[key] != found[key]
    ]
