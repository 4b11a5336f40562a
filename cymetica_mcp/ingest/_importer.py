"""An import: a users file and/or a trades file, validated and written in one all-or-nothing transaction.

The import contract is CONTRACT.md section 1. A file with any bad row is refused whole: every bad
row's line number and reason is reported (up to `MAX_LISTED_ERRORS`, with the total count) and the
transaction is rolled back, so the store is left exactly as it was.
"""

from __future__ import annotations

import time
from pathlib import Path

from cymetica_mcp.errors import AnalyticsError
from cymetica_mcp.ingest._fastpath import FAST_PATH_BYTES, Unreadable, import_trade_blocks, plain_csv_header
from cymetica_mcp.ingest._report import Errors, ImportRefused, ImportReport
from cymetica_mcp.ingest._rows import TRADE_FIELDS, USER_FIELDS, Format, Progress, detect_format, rows
from cymetica_mcp.ingest._sink import TradeSink
from cymetica_mcp.ingest._values import BadValue, parse_user
from cymetica_mcp.store import ImportTransaction, RepeatedTradeIds, Store


def import_files(
    store: Store,
    users: Path | None = None,
    trades: Path | None = None,
    fmt: str | None = None,
    progress: Progress | None = None,
) -> ImportReport:
    """Import a users file and/or a trades file in one transaction: all rows, or none."""
    if users is None and trades is None:
        raise AnalyticsError("invalid_argument", "nothing to import: give --users FILE and/or --trades FILE")
    for path in (users, trades):
        if path is not None and not path.is_file():
            raise AnalyticsError("invalid_argument", f"no such file: {path}")
    started = time.perf_counter()
    report = ImportReport()
    errors = Errors()
    # Foreign keys are checked by the import itself: every trade's user is looked up in `ids`, read
    # inside this transaction, and the users its trades name are checked once at the end
    # (`TradeWriter.finish`), not by the database once a row.
    with store.importing() as tx:
        version = tx.data_version() + 1
        ids = tx.user_refs()
        if users is not None:
            _import_users(tx, users, detect_format(users, fmt), ids, version, errors, report, progress)
        if trades is not None:
            _import_trades(tx, trades, detect_format(trades, fmt), ids, errors, report, progress)
        if errors.total:
            raise ImportRefused(errors.listed, errors.total)
        if report.users_inserted or report.users_updated or report.trades_inserted:
            tx.set_data_version(version)
            report.data_version = version
        else:
            report.data_version = version - 1
    report.seconds = time.perf_counter() - started
    return report


def _import_users(
    tx: ImportTransaction,
    path: Path,
    fmt: Format,
    ids: dict[str, int],
    version: int,
    errors: Errors,
    report: ImportReport,
    progress: Progress | None,
) -> None:
    new: set[int] = set()  # users this file inserted: a later row of theirs wins whole
    for line, row in rows(path, fmt, USER_FIELDS, errors, progress):
        report.rows += 1
        try:
            user_id, kind, capital, created = parse_user(row)
        except BadValue as bad:
            errors.add(path.name, line, str(bad))
            continue
        if errors.total:  # keep validating, stop writing: the transaction will be rolled back
            ids.setdefault(user_id, 0)  # still a known user for the trades file's checks
            continue
        if ids.get(user_id) in new:
            tx.rewrite_user(ids[user_id], kind, capital, created)
        elif user_id in ids:
            tx.update_user(ids[user_id], kind, capital, version)
            report.users_updated += 1
        else:
            ids[user_id] = tx.insert_user(user_id, kind, capital, created, version)
            new.add(ids[user_id])
            report.users_inserted += 1


def _import_trades(
    tx: ImportTransaction,
    path: Path,
    fmt: Format,
    ids: dict[str, int],
    errors: Errors,
    report: ImportReport,
    progress: Progress | None,
) -> None:
    # the fast path pays for knowing every user (a hash table of them) before its first block: a small
    # file is read faster row by row, with the same rules and messages
    fast = fmt == "csv" and path.stat().st_size >= FAST_PATH_BYTES
    columns = plain_csv_header(path) if fast else None
    if columns is not None:
        listed, total = len(errors.listed), errors.total
        counted, inserted, present = report.rows, report.trades_inserted, report.trades_present

        def rewind() -> None:  # the counts and errors as they were before the trades file
            del errors.listed[listed:]
            errors.total = total
            report.rows, report.trades_inserted, report.trades_present = counted, inserted, present

        def read_blocks() -> None:
            writer = tx.trades()
            import_trade_blocks(
                TradeSink(writer, path.name, ids, errors, report), writer.prepare, path, columns, progress
            )

        try:
            try:
                read_blocks()
            except RepeatedTradeIds:
                # An empty store's bulk load found a repeated trade_id and rolled its trades back: read
                # again, each trade_id checked as it comes (the first row of a repeated one wins).
                rewind()
                read_blocks()
            return
        except Unreadable:
            # Bytes that are not UTF-8, or text the csv module cannot split: the file is refused
            # either way, and where the whole-file reader notices depends on how it reads ahead,
            # so it reads the file again to report exactly what it always has. Nothing more is
            # written (what was is rolled back with the refusal).
            rewind()
            sink = TradeSink(None, path.name, ids, errors, report)
    else:
        sink = TradeSink(tx.trades(), path.name, ids, errors, report)
    for line, row in rows(path, fmt, TRADE_FIELDS, errors, progress):
        sink.row(line, row)
    sink.close()
