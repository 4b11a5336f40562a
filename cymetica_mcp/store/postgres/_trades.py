"""The trades of a PostgreSQL import, block by block (`PostgresTrades`, the `TradeWriter` protocol):
straight into `trades` by binary `COPY` while no trade_id repeats, through a staging table that keeps
the first row of each trade_id (within the block, and against what is stored: a stored trade never
changes) when one does; into an empty `trades`, as one bulk load checked once at its end.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import psycopg

from cymetica_mcp.exact import exact_sum
from cymetica_mcp.store import _totals
from cymetica_mcp.store._interface import I64, PreparedTrades, RepeatedTradeIds, TradeColumns, TradeRow
from cymetica_mcp.store.postgres import _deferred as deferred
from cymetica_mcp.store.postgres._connect import Connection, one
from cymetica_mcp.store.postgres._copy import TRADE_COLUMNS, BinaryRows, CopyStream, binary_trades, copy_in

STAGE_TRADES: Final = """
    CREATE TEMP TABLE import_trades (
        seq bigint, trade_id text, user_ref bigint, ts bigint,
        volume_micro bigint, pnl_micro bigint
    ) ON COMMIT DROP
"""
MOVE_TRADES: Final = """
    WITH first AS (
        SELECT DISTINCT ON (trade_id) seq, trade_id, user_ref, ts, volume_micro, pnl_micro
        FROM import_trades ORDER BY trade_id, seq
    ), new AS (
        SELECT * FROM first f WHERE NOT EXISTS (SELECT 1 FROM trades t WHERE t.trade_id = f.trade_id)
    ), inserted AS (
        INSERT INTO trades (id, trade_id, user_ref, ts, volume_micro, pnl_micro)
        SELECT %s + row_number() OVER (ORDER BY seq), trade_id, user_ref, ts, volume_micro, pnl_micro
        FROM new ORDER BY seq
        RETURNING volume_micro, pnl_micro
    )
    SELECT count(*), coalesce(sum(volume_micro), 0), coalesce(sum(abs(pnl_micro)), 0) FROM inserted
"""
BLOCK_SAVEPOINT: Final = "trades_block"
"""The savepoint a block of trades is copied under (released when the next block sets it again)."""
BULK_SAVEPOINT: Final = "trades_bulk"
"""The savepoint an empty table's bulk load starts from (`PostgresTrades`): rolled back to if the
unique trade_id index cannot be built over what it loaded."""
COPY_TRADES: Final = f"COPY trades ({TRADE_COLUMNS}) FROM STDIN (FORMAT BINARY)"
COPY_FROZEN: Final = f"COPY trades ({TRADE_COLUMNS}) FROM STDIN (FORMAT BINARY, FREEZE)"
COPY_STAGED: Final = (
    "COPY import_trades (seq, trade_id, user_ref, ts, volume_micro, pnl_micro) FROM STDIN (FORMAT BINARY)"
)


@dataclass(frozen=True, slots=True)
class Prepared:
    """Rows, their COPY data and the sums of their amounts."""

    rows: TradeColumns
    block: BinaryRows
    users: I64  # the user of each of its rows
    volume: int
    abs_pnl: int
    bulk: bool  # may be loaded before its trade_ids are checked (`PostgresTrades`' bulk load)


class PostgresTrades:
    """Trade rows written block by block (the `TradeWriter` protocol): the first row of a trade_id
    wins, new trades are numbered in file order after the stored ones.

    Each block is first copied straight into `trades` (binary `COPY`, numbered by the import: the
    ids after the last one written), inside a savepoint: a block without a trade_id already stored
    or repeated - the usual case - costs one `COPY`. A block that meets one is rolled back to the
    savepoint and moved through the staging table by `MOVE_TRADES`, which keeps each trade_id's
    first row (the blocks after it are then renumbered as they are written).

    `prepare` builds a block's COPY data on the parsing thread, numbered as if every row before it
    were new (the usual case), so writing it costs the writer nothing but the `COPY`.

    Into an EMPTY `trades`, the primary key and the unique trade_id index are built once at the end
    (`_defer`), not row by row. The ids are the import's own (dense, unique by construction). The
    trade_ids are not checked while the prepared blocks of such an import are loaded (a bulk load,
    `bulk=True`): after a savepoint the table is truncated and every block copied through one COPY
    kept open (`CopyStream`: the server never waits between blocks) with `FREEZE` (rows written
    visible and frozen: the index builds and ANALYZE after it find nothing to mark), without a
    savepoint of its own or an index to meet. Building the unique index then checks them all at once.
    If it finds a repeat, the writer rolls back to the savepoint (the table empty again, its indexes
    back) and raises `RepeatedTradeIds`. The caller then reads the trades again with a new writer
    from `PostgresImport.trades`, which checks them as they come, as above. A repeat costs a second
    reading, and an import without one (the usual case) costs no check at all. A block written
    through `write` (rows the fast path did not take) ends a bulk load early the same way: the index
    is built over the rows so far first. The table was empty, so readers waiting for the import's
    exclusive lock until the commit miss nothing they could have seen; a rollback puts the indexes
    back (DDL is transactional)."""

    def __init__(self, conn: Connection, bulk: bool = True) -> None:
        self.conn = conn
        self.staged = False
        self.repeated = False  # a bulk load met a repeated trade_id and was rolled back
        self.before_id = self.last_id = int(one(conn, "SELECT coalesce(max(id), 0) FROM trades"))
        self.volume_added = self.abs_pnl_added = 0
        self.users_named = np.zeros(0, dtype=np.bool_)  # by ref: whether a row written names it
        self._planned = self.before_id + 1  # the id `prepare` numbers its next block from
        self._saving = False  # whether a block's savepoint is set
        self._empty = self.before_id == 0  # into an empty table: its indexes may be built at the end
        self._bulk = bulk and self._empty  # prepared blocks may be loaded unchecked
        self._deferred: dict[str, str] = {}  # constraints dropped until the end: name -> definition
        self._unique: str | None = None  # the deferred unique trade_id constraint, while it is
        self._stream: CopyStream | None = None  # the bulk load's one COPY, while it is open

    def prepare(self, rows: TradeColumns) -> Prepared:
        """The rows as binary COPY data (runs on the import's parsing thread, block after block in
        file order; numbered after the blocks prepared before)."""
        return self._prepared(rows, self._bulk)

    def _prepared(self, rows: TradeColumns, bulk: bool) -> Prepared:
        ids = rows.ascii_ids
        block = binary_trades(
            self._planned,
            rows.trade_ids if ids is None else ids,
            [rows.user_ref, rows.ts, rows.volume, rows.pnl],
        )
        self._planned += rows.lines
        return Prepared(
            rows,
            block,
            rows.user_ref,
            exact_sum(rows.volume),
            exact_sum(np.abs(rows.pnl)),
            bulk,
        )

    def write(self, rows: Sequence[TradeRow]) -> int:
        """Write rows; return how many were new."""
        if not rows:
            return 0
        columns = list(zip(*rows, strict=True))
        numbers = [np.array(column, dtype=np.int64) for column in columns[1:]]
        block = binary_trades(self.last_id + 1, [str(i) for i in columns[0]], numbers)
        volume = sum(int(v) for v in columns[3])
        abs_pnl = sum(abs(int(p)) for p in columns[4])
        return self._write(block, numbers[0], volume, abs_pnl, bulk=False)

    def write_prepared(self, prepared: PreparedTrades) -> int:
        """Write prepared rows; return how many were new."""
        if not isinstance(prepared, Prepared):  # made by another backend's writer: made again here
            prepared = self._prepared(prepared.rows, bulk=False)
        return self._write(prepared.block, prepared.users, prepared.volume, prepared.abs_pnl, prepared.bulk)

    def _write(self, block: BinaryRows, users: I64, volume: int, abs_pnl: int, bulk: bool) -> int:
        """Write the rows of `block`, naming `users`, of `volume` and `abs_pnl` micro-USDC in all
        (`bulk`: it may be loaded unchecked); return how many were new."""
        if not block.count:
            return 0
        if int(users.max()) >= len(self.users_named):
            self.users_named = np.concatenate(
                [self.users_named, np.zeros(int(users.max()) + 1 - len(self.users_named), dtype=np.bool_)]
            )
        self.users_named[users] = True
        if self._empty:  # the first rows into an empty table
            self._empty = False
            self._defer(unique=bulk)
        elif self._unique is not None and not bulk:  # rows to check as they come: the index first
            self._build([self._unique])
        data = block.numbered(self.last_id + 1)
        if self._unique is not None:  # the bulk load: no index to meet, no savepoint, one COPY
            if self._stream is None:
                self._stream = CopyStream(self.conn, COPY_FROZEN)
            self._stream.write(data)
            return self._added(block.count, volume, abs_pnl)
        # one round trip (not two a block): the last block's savepoint released, this one's set
        if self._saving:
            self.conn.execute(f"RELEASE SAVEPOINT {BLOCK_SAVEPOINT}; SAVEPOINT {BLOCK_SAVEPOINT}")
        else:
            self.conn.execute(f"SAVEPOINT {BLOCK_SAVEPOINT}")
            self._saving = True
        try:
            copy_in(self.conn, COPY_TRADES, data)
        except psycopg.errors.UniqueViolation:
            self.conn.execute(f"ROLLBACK TO SAVEPOINT {BLOCK_SAVEPOINT}")
            return self._move(data)
        return self._added(block.count, volume, abs_pnl)

    def _added(self, count: int, volume: int, abs_pnl: int) -> int:
        self.last_id += count
        self.volume_added += volume
        self.abs_pnl_added += abs_pnl
        return count

    def _defer(self, unique: bool) -> None:
        """Drop the primary key of the empty `trades` until the end of the import, and with `unique`
        the unique trade_id index too, for a bulk load (see the class's text). Maintaining the key
        row by row costs about as much again as the heap itself (some 1 s per 1M trades on the
        benchmark machine), the trade_id index some 0.4 s more; building each from the rows a
        fraction of that."""
        if unique:  # TRUNCATE (of no rows) in this savepoint is what lets its COPYs use FREEZE
            self.conn.execute(f"SAVEPOINT {BULK_SAVEPOINT}; TRUNCATE trades")
        self._deferred = deferred.drop(self.conn, unique)
        self._unique = next((n for n, d in self._deferred.items() if d == deferred.TRADE_ID_UNIQUE), None)

    def _build(self, names: list[str]) -> None:
        """Add back the constraints `names` dropped by `_defer` (their indexes built from the rows).
        The unique trade_id index ends a bulk load: `RepeatedTradeIds`, with every row of it rolled
        back, if a trade_id is repeated."""
        if self._stream is not None:  # the bulk load's COPY ends first
            stream, self._stream = self._stream, None
            stream.close()
        constraints = {name: self._deferred.pop(name) for name in names}
        if self._unique not in names:
            deferred.add(self.conn, constraints)
            return
        self._unique = None
        try:
            deferred.add(self.conn, constraints)
        except psycopg.errors.UniqueViolation:
            self.conn.execute(f"ROLLBACK TO SAVEPOINT {BULK_SAVEPOINT}; RELEASE SAVEPOINT {BULK_SAVEPOINT}")
            self._deferred.clear()  # the constraints are back, as the rows are gone, with the rollback
            self._saving, self.repeated = False, True
            raise RepeatedTradeIds from None
        self.conn.execute(f"RELEASE SAVEPOINT {BULK_SAVEPOINT}")

    def abandon(self, error: BaseException) -> None:
        """The import is being rolled back because of `error`: end the bulk load's COPY if open."""
        if self._stream is not None:
            stream, self._stream = self._stream, None
            stream.abandon(error)

    def restore_keys(self) -> None:
        """Build every constraint `_defer` dropped (once; nothing if none was dropped)."""
        if not self._deferred:
            return
        if self._saving:  # the blocks' savepoint is no longer needed: nothing more is copied
            self.conn.execute(f"RELEASE SAVEPOINT {BLOCK_SAVEPOINT}")
            self._saving = False
        self._build(list(self._deferred))

    def _move(self, data: memoryview) -> int:
        """Copy `data` into the staging table, move its new trades into `trades`; how many were new."""
        if not self.staged:
            self.conn.execute(STAGE_TRADES)
            self.staged = True
        copy_in(self.conn, COPY_STAGED, data)
        row = self.conn.execute(MOVE_TRADES, (self.last_id,)).fetchone()
        assert row is not None
        self.conn.execute("TRUNCATE import_trades")
        inserted = int(row[0])
        self.last_id += inserted
        self.volume_added += int(row[1])
        self.abs_pnl_added += int(row[2])
        return inserted

    def finish(self) -> None:
        """Check that every user the new trades name exists (once a user) and add the new trades to
        the store's totals (refused past the engine's exact range). After the first rows of an
        empty table, `ANALYZE trades`: the planner's statistics, without which a replica's refresh
        plans a bitmap scan and a sort (PostgreSQL's advice after a bulk load). A sample of 3,000 rows
        (statistics target 10, not the default 100's 30,000) gives the table's size and the range
        of its ids, in order and dense, which is all that the store's reads plan on: 15 ms instead of
        0.1 s at 1M trades; autovacuum analyzes the table again with the server's own target as it
        grows."""
        self.restore_keys()
        if self.last_id == self.before_id:
            return
        if self.before_id == 0:
            self.conn.execute("SET LOCAL default_statistics_target = 10; ANALYZE trades")
        # the ids were given by the import: the table's own sequence is set after the last one
        self.conn.execute("SELECT setval(pg_get_serial_sequence('trades', 'id'), %s)", (self.last_id,))
        missing = self.conn.execute(
            "SELECT count(*) FROM unnest(%s::bigint[]) AS named (ref)"
            " WHERE NOT EXISTS (SELECT 1 FROM users WHERE id = named.ref)",
            (np.flatnonzero(self.users_named).tolist(),),
        ).fetchone()
        if missing is None or missing[0]:
            raise psycopg.errors.ForeignKeyViolation("a trade names a user that is not stored")
        kept: dict[str, int] = dict(
            self.conn.execute(
                "SELECT key, value FROM meta WHERE key = ANY(%s)", (list(_totals.KEYS),)
            ).fetchall()
        )
        if len(kept) == len(_totals.KEYS):
            old = (int(kept[_totals.KEYS[0]]), int(kept[_totals.KEYS[1]]))
        else:
            row = self.conn.execute(
                "SELECT coalesce(sum(volume_micro), 0), coalesce(sum(abs(pnl_micro)), 0) FROM trades WHERE id <= %s",
                (self.before_id,),
            ).fetchone()
            assert row is not None
            old = (int(row[0]), int(row[1]))
        new = _totals.checked(old, self.volume_added, self.abs_pnl_added)
        for key, value in zip(_totals.KEYS, new, strict=True):
            self.conn.execute(
                "INSERT INTO meta (key, value) VALUES (%s, %s) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, value),
            )
