"""Copying a whole store into another, of either backend: `cymetica-mcp copy-store`.

Users, trades (same ids, same order), API keys (ids, names, prefixes, secret hashes, scopes, expiry,
created, last used and revoked times) and settings (the generated JWT secret) are copied exactly, and
the target's data version is the source's. What each backend keeps beside the rows is made for the
copy: SQLite's packed chunks, the kept totals (summed from the trades copied), PostgreSQL's identity
sequences. Not copied: the index kept beside a SQLite file (a cache, rebuilt from the rows), and
nothing that is not in the store (limits, sessions, `CYMETICA_JWT_SECRET`).

One consistent read of the source, one all-or-nothing transaction on the target: a copy that fails,
for whatever reason, leaves the target as it was (a file it created is removed). A target that holds
anything is refused unless `replace` is given; then it is emptied first, in that same transaction.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

import numpy as np

from cymetica_mcp.errors import AnalyticsError
from cymetica_mcp.exact import exact_sum
from cymetica_mcp.store import _totals
from cymetica_mcp.store._moving import Held, Source, Target
from cymetica_mcp.store._sqlite_moving import SQLiteSource, SQLiteTarget
from cymetica_mcp.store.postgres import is_postgres

BLOCK_ROWS: Final = 100_000
"""Trades read and written at a time: bounds the copy's memory (tens of MB), whatever the store's size."""
SQLITE_SCHEME: Final = "sqlite:///"

Progress = Callable[[int, int], None]
"""Called with (trades copied so far, trades in all) after each block."""


@dataclass(frozen=True, slots=True)
class CopyReport:
    """What a copy did."""

    source: str
    target: str
    copied: Held
    replaced: Held | None
    """What the target held before (None: it was empty)."""
    seconds: float

    @property
    def rate(self) -> float:
        """Trades copied a second."""
        return self.copied.trades / self.seconds if self.seconds > 0 else 0.0


def copy_store(
    source: str | Path,
    target: str | Path,
    *,
    replace: bool = False,
    progress: Progress | None = None,
    block_rows: int = BLOCK_ROWS,
) -> CopyReport:
    """Copy the store at `source` into the store at `target` (a SQLite path or `sqlite:///path`, or a
    `postgresql://` URL, each), refusing a target that holds anything unless `replace`."""
    if _identity(str(source)) == _identity(str(target)):
        raise AnalyticsError(
            "invalid_argument", "--from and --to name the same store: give two different stores"
        )
    began = time.perf_counter()
    reader = _source(str(source))
    try:
        writer = _target(str(target))
        try:
            copied, replaced = _copy(reader, writer, replace, progress, block_rows)
        except BaseException:
            writer.discard()
            raise
        finally:
            writer.close()
    finally:
        reader.close()
    return CopyReport(reader.location, writer.location, copied, replaced, time.perf_counter() - began)


def _copy(
    reader: Source, writer: Target, replace: bool, progress: Progress | None, block_rows: int
) -> tuple[Held, Held | None]:
    with reader.reading() as reading, writer.filling() as filling:
        held = filling.held()
        if not held.empty and not replace:
            raise AnalyticsError(
                "invalid_argument",
                f"the target {writer.location} is not empty: it holds {held}; copy-store fills an empty "
                "store: give a new file or an empty database, or --replace to empty this one first "
                "(in the copy's own transaction: if the copy fails, the target keeps what it holds)",
            )
        if not held.empty:
            filling.empty()
        copied = reading.held()
        users = reading.users()
        known = np.array(sorted(row[0] for row in users), dtype=np.int64)
        filling.write_settings(reading.settings())
        filling.write_keys(reading.keys())
        filling.write_users(users)
        done = volume = abs_pnl = 0
        for block in reading.trades(block_rows):
            named = np.unique(block.user_ref)
            missing = named[~np.isin(named, known)]
            if len(missing):
                raise AnalyticsError(
                    "invalid_argument",
                    f"the source {reader.location} is damaged: trades name user ref {int(missing[0])}, "
                    "which it does not hold (`cymetica-mcp check` on it says more); nothing was copied",
                )
            filling.write_trades(block)
            volume += exact_sum(block.volume)
            abs_pnl += exact_sum(np.abs(block.pnl))
            done += len(block)
            if progress is not None:
                progress(done, copied.trades)
        totals = _totals.checked((0, 0), volume, abs_pnl) if done else None
        filling.finish(copied.data_version, totals)
    return copied, None if held.empty else held


def _source(location: str) -> Source:
    if is_postgres(location):
        from cymetica_mcp.store.postgres import PostgresSource  # psycopg loads only for PostgreSQL

        return PostgresSource(location)
    return SQLiteSource(_path(location))


def _target(location: str) -> Target:
    if is_postgres(location):
        from cymetica_mcp.store.postgres import PostgresTarget

        return PostgresTarget(location)
    return SQLiteTarget(_path(location))


def _path(location: str) -> Path:
    return Path(location.removeprefix(SQLITE_SCHEME))


def _identity(location: str) -> tuple[str, ...]:
    """What tells two stores apart: a file's real path, a database's host, port and name."""
    if is_postgres(location):
        parts = urlsplit(location)
        where = parts.netloc.rpartition("@")[2].lower() or "localhost"
        return ("postgresql", where if ":" in where else f"{where}:5432", parts.path.strip("/"))
    return ("sqlite", os.path.realpath(_path(location)))
