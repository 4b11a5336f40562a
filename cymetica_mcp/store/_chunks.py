"""Packed copies of the trade columns, one row per import batch, for fast bulk reads.

`trades` is the truth; `trade_chunks` holds the same (user_ref, ts, volume_micro, pnl_micro) columns
of consecutive trade ids as little-endian int64 arrays, written in the same transaction as the rows.
`read_columns` uses the chunks where they cover an id range and reads the rows themselves elsewhere
(stores written before the chunks existed, or rows added by other means), so its answer is always
exactly what the `trades` table holds.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from typing import Final

import numpy as np
from numpy.typing import NDArray

I64 = NDArray[np.int64]
COLUMNS: Final = ("user_ref", "ts", "volume_micro", "pnl_micro")
_WIRE: Final = np.dtype("<i8")
_ROWS_AT_ONCE: Final = 262_144


def append(conn: sqlite3.Connection, first_id: int, rows: Sequence[tuple[int, int, int, int]]) -> None:
    """Record trades first_id .. first_id+len(rows)-1 (user_ref, ts, volume, pnl), just inserted."""
    if not rows:
        return
    table = np.array(rows, dtype=_WIRE).reshape(-1, 4)
    append_columns(conn, first_id, table[:, 0], table[:, 1], table[:, 2], table[:, 3])


def append_columns(
    conn: sqlite3.Connection, first_id: int, user: I64, ts: I64, volume: I64, pnl: I64
) -> None:
    """`append` for rows given as columns (equal lengths, at least one row)."""
    conn.execute(
        "INSERT INTO trade_chunks (first_id, last_id, user_ref, ts, volume, pnl) VALUES (?, ?, ?, ?, ?, ?)",
        (
            first_id,
            first_id + len(ts) - 1,
            *(np.ascontiguousarray(column, dtype=_WIRE).tobytes() for column in (user, ts, volume, pnl)),
        ),
    )


def inserted_rows(conn: sqlite3.Connection, after: int) -> list[tuple[int, int, int, int]]:
    """The (user_ref, ts, volume, pnl) of the trades with id > after, in id order."""
    return conn.execute(
        "SELECT user_ref, ts, volume_micro, pnl_micro FROM trades WHERE id > ? ORDER BY id", (after,)
    ).fetchall()


def read_columns(conn: sqlite3.Connection, after: int, upto: int) -> Iterator[tuple[I64, I64, I64, I64]]:
    """Blocks of (user_ref, ts, volume, pnl) of the trades with after < id <= upto, in id order."""
    position = after
    chunks = conn.execute(
        "SELECT first_id, last_id, user_ref, ts, volume, pnl FROM trade_chunks"
        " WHERE last_id > ? AND first_id <= ? ORDER BY first_id",
        (after, upto),
    )
    for first, last, *blobs in chunks:
        if first > position + 1:
            yield from _rows(conn, position, first - 1)
        skip, stop = max(position + 1 - first, 0), min(last, upto) - first + 1
        user, ts, volume, pnl = (
            np.frombuffer(blob, dtype=_WIRE)[skip:stop].astype(np.int64) for blob in blobs
        )
        yield user, ts, volume, pnl
        position = min(last, upto)
    if position < upto:
        yield from _rows(conn, position, upto)


def _rows(conn: sqlite3.Connection, after: int, upto: int) -> Iterator[tuple[I64, I64, I64, I64]]:
    """The slow way: the rows themselves."""
    cursor = conn.execute(
        "SELECT user_ref, ts, volume_micro, pnl_micro FROM trades WHERE id > ? AND id <= ? ORDER BY id",
        (after, upto),
    )
    while rows := cursor.fetchmany(_ROWS_AT_ONCE):
        table = np.array(rows, dtype=np.int64)
        yield table[:, 0], table[:, 1], table[:, 2], table[:, 3]
