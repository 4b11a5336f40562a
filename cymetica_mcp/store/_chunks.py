"""Packed copies of the trade columns, one row per import batch (small ones merged), for fast bulk reads.

`trades` is the truth; `trade_chunks` holds the same (user_ref, ts, volume_micro, pnl_micro) columns
of consecutive trade ids as little-endian int64 arrays, written in the same transaction as the rows.
`read_columns` uses the chunks where they cover an id range and reads the rows themselves elsewhere
(stores written before the chunks existed, or rows added by other means), so its answer is always
exactly what the `trades` table holds.

Many small imports would leave as many tiny chunks, each costing every read of them a row of the
table and four arrays, so each import ends with `compact`, inside the import's transaction:
size-tiered merging, as in an LSM tree. A small chunk (under `SMALL_ROWS` rows) has the level
floor(log_FAN_IN(rows)); larger ones share the top level, `LEVELS`, and are never rewritten. The
small chunks after the newest large one are kept in non-increasing levels, fewer than `FAN_IN` of
each: `FAN_IN` chunks of one level merge into one of a higher level, and a chunk merges with the
lower-level chunks just before it (a large one takes in every small one before it). So at most
(FAN_IN - 1) * LEVELS small chunks follow the newest large one, and a row is rewritten at most
2 * LEVELS + 1 times in all (each time it climbs a level, and at most once more at each level):
an import's extra work stays proportional to what it adds. Only chunks whose ids meet exactly are
merged, never across rows that have no chunk, and a merged chunk's arrays are exactly its parts'
arrays, one after another. A store written before compaction has its small chunks merged by its
next import that adds trades.
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

FAN_IN: Final = 16
"""Small chunks of one level merge this many at a time, into one of a higher level. A larger fan-in
means fewer levels (fewer rewrites of each row) but more chunks waiting at each level: at 16, with
`LEVELS` = 3, at most 45 small chunks wait and a row is rewritten at most 7 times."""
LEVELS: Final = 3
"""Levels of small chunks: 0 (1-15 rows), 1 (16-255), 2 (256-4,095); level n starts at FAN_IN**n rows."""
SMALL_ROWS: Final = FAN_IN**LEVELS
"""4,096: chunks of fewer rows are small, and merged; larger ones are never rewritten. At 4,096 rows
a chunk's own cost to read (one row of the table, four arrays: about 5 us) is about 1 ns a row, a
third of what copying its rows costs, so larger merges would buy little; and an import's whole
batches (10,000 rows a `write`, about 16,000 a block of the CSV fast path) are larger, so the chunks
of bulk imports are never rewritten."""


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
    # chunks never overlap, so those reaching past `after` start at the last one that begins at or
    # before it: a seek on the primary key, not a scan of every chunk's row (at 100M trades, ~100 ms
    # of cold pages read for the 10k trades of one import)
    chunks = conn.execute(
        "SELECT first_id, last_id, user_ref, ts, volume, pnl FROM trade_chunks"
        " WHERE first_id >= coalesce((SELECT max(first_id) FROM trade_chunks WHERE first_id <= ?), 0)"
        " AND last_id > ? AND first_id <= ? ORDER BY first_id",
        (after, after, upto),
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


def compact(conn: sqlite3.Connection, after: int) -> int:
    """Merge the small chunks at the end of the table, once an import has written the chunks of its
    trades (those with id > after), in its transaction; return how many chunks fewer there are.

    The import's chunks are taken with the small chunks just before them whose ids meet theirs; in a
    store this function has kept, those number at most (FAN_IN - 1) * LEVELS."""
    spans = conn.execute(
        "SELECT first_id, last_id FROM trade_chunks WHERE first_id > ? ORDER BY first_id", (after,)
    ).fetchall()
    if not spans:
        return 0
    older: list[tuple[int, int]] = []
    start = spans[0][0]
    for first, last in conn.execute(
        "SELECT first_id, last_id FROM trade_chunks WHERE first_id <= ? ORDER BY first_id DESC", (after,)
    ):
        if last + 1 != start or last - first + 1 >= SMALL_ROWS:  # a gap, or a large chunk: kept as is
            break
        older.append((first, last))
        start = first
    fewer = 0
    for first, last in plan([*reversed(older), *spans]):
        parts = conn.execute(
            "SELECT user_ref, ts, volume, pnl FROM trade_chunks WHERE first_id >= ? AND first_id <= ?"
            " ORDER BY first_id",
            (first, last),
        ).fetchall()
        conn.execute("DELETE FROM trade_chunks WHERE first_id >= ? AND first_id <= ?", (first, last))
        conn.execute(
            "INSERT INTO trade_chunks (first_id, last_id, user_ref, ts, volume, pnl) VALUES (?, ?, ?, ?, ?, ?)",
            (first, last, *(b"".join(column) for column in zip(*parts, strict=True))),
        )
        fewer += len(parts) - 1
    return fewer


def plan(spans: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """The merges that settle chunks (first_id, last_id), given oldest first: the (first_id, last_id)
    of each merged chunk, which replaces every chunk within it (two or more, whose ids meet)."""
    done: list[tuple[int, int, int]] = []  # (first_id, last_id, parts): no longer merged
    run: list[tuple[int, int, int]] = []  # the small chunks being settled, ids meeting, oldest first
    for first, last in spans:
        if run and first != run[-1][1] + 1:  # a gap: rows read from `trades` itself, never merged over
            done += run
            run = []
        run.append((first, last, 1))
        while (start := _merged_from(run)) is not None:
            run[start:] = [(run[start][0], run[-1][1], sum(part[2] for part in run[start:]))]
        if _level_of(run[-1]) == LEVELS:  # large: it has taken in every small chunk before it
            done += run
            run = []
    return [(first, last) for first, last, parts in done + run if parts > 1]


def level(rows: int) -> int:
    """A chunk's level: floor(log_FAN_IN(rows)) while small, LEVELS from `SMALL_ROWS` rows."""
    found, bound = 0, FAN_IN
    while found < LEVELS and rows >= bound:
        found, bound = found + 1, bound * FAN_IN
    return found


def _merged_from(run: list[tuple[int, int, int]]) -> int | None:
    """Where the chunks to merge at the end of `run` start (None: it is settled): the newest with the
    lower-level chunks just before it, else the newest FAN_IN if they are of one small level."""
    top = _level_of(run[-1])
    start = len(run) - 1
    while start > 0 and _level_of(run[start - 1]) < top:
        start -= 1
    if start < len(run) - 1:
        return start
    if top < LEVELS and len(run) >= FAN_IN and all(_level_of(part) == top for part in run[-FAN_IN:]):
        return len(run) - FAN_IN
    return None


def _level_of(part: tuple[int, int, int]) -> int:
    return level(part[1] - part[0] + 1)
