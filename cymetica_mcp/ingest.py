"""CSV / JSON Lines parsing and validation, streamed into one all-or-nothing store transaction.

The import contract is CONTRACT.md section 1. A file with any bad row is refused whole: every bad
row's line number and reason is reported (up to `MAX_LISTED_ERRORS`, with the total count) and the
transaction is rolled back, so the store is left exactly as it was.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import operator
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Final, Literal

import numpy as np

from cymetica_mcp import blocks
from cymetica_mcp.errors import AnalyticsError
from cymetica_mcp.exact import exact_sum
from cymetica_mcp.store import Store, chunks, totals

Format = Literal["csv", "jsonl"]

USER_FIELDS: Final = ("user_id", "kind", "capital_usdc", "created_at")
TRADE_FIELDS: Final = ("trade_id", "user_id", "ts", "volume_usdc", "pnl_usdc")
KINDS: Final = {"human": 0, "agent": 1}
MAX_LISTED_ERRORS: Final = 100
MAX_WHOLE_DIGITS: Final = 12
"""Amounts below 10^12 USDC: integer micro-USDC then fit 64-bit arithmetic with room for sums."""
BATCH: Final = 10_000
"""Trades read row by row are written this many at a time (each batch also becomes one chunk)."""
BLOCK_BYTES: Final = 1 << 20
"""The fast path reads about this much at a time (some 16,000 lines of a typical trades file)."""
ROWS_PER_STATEMENT: Final = 256
HEADER_BYTES: Final = 1 << 16
MIN_TS: Final = 0  # 1970-01-01T00:00:00Z
MAX_TS: Final = 2**33 - 1  # 2242-03-16: the engine packs (user, ts) into one 64-bit key
_SCALE: Final = (1, 100_000, 10_000, 1_000, 100, 10, 1)

Progress = Callable[[int, int], None]
"""Called with (bytes read, total bytes) of the file being imported."""


@dataclass(frozen=True, slots=True)
class RowError:
    """One bad row: the file, its line number (a CSV header is line 1) and why it was refused."""

    file: str
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.reason}"


class ImportRefused(AnalyticsError):
    """The import was refused whole and nothing was written."""

    def __init__(self, errors: list[RowError], total: int) -> None:
        shown = "\n".join(f"  {e}" for e in errors)
        more = f"\n  ... and {total - len(errors)} more" if total > len(errors) else ""
        super().__init__(
            "import_refused",
            f"import refused: {total} bad row{'s' if total != 1 else ''}; the store is unchanged\n{shown}{more}",
        )
        self.errors = errors
        self.total = total


@dataclass(slots=True)
class ImportReport:
    """What an import changed and how fast it went."""

    users_inserted: int = 0
    users_updated: int = 0
    trades_inserted: int = 0
    trades_present: int = 0
    rows: int = 0
    seconds: float = 0.0
    data_version: int = 0

    @property
    def rate(self) -> float:
        """Rows per second."""
        return self.rows / self.seconds if self.seconds > 0 else 0.0


@dataclass(slots=True)
class _Errors:
    listed: list[RowError] = field(default_factory=list)
    total: int = 0

    def add(self, file: str, line: int, reason: str) -> None:
        self.total += 1
        if len(self.listed) < MAX_LISTED_ERRORS:
            self.listed.append(RowError(file, line, reason))


class _Bad(ValueError):
    """A field failed validation; the message is the row's reason."""


class _JsonNumber(str):
    """The exact source text of a JSON number (never read through a binary float)."""


def parse_micro(text: object, name: str) -> int:
    """A plain decimal with at most 6 places -> integer micro-USDC."""
    if isinstance(text, str):
        whole, dot, frac = text.partition(".")
        digits = whole[1:] if whole.startswith("-") else whole
        if digits.isascii() and digits.isdigit() and (not dot or (frac.isascii() and frac.isdigit())):
            if len(frac) > 6:
                raise _Bad(f"{name} has more than 6 decimals: {_short(text)}")
            if len(digits.lstrip("0")) > MAX_WHOLE_DIGITS:
                raise _Bad(
                    f"{name} is out of range (at most {MAX_WHOLE_DIGITS} digits before the point): {_short(text)}"
                )
            value = int(digits) * 1_000_000 + (int(frac) * _SCALE[len(frac)] if frac else 0)
            return -value if whole.startswith("-") else value
    if isinstance(text, str):
        raise _Bad(
            f"{name} must be a plain decimal such as 100, -12.5 or 0.000001 "
            f"(no exponent, sign only '-', no separators), got {_short(text)}"
        )
    raise _Bad(f"{name} must be a decimal number, got {_short(text)}")


def parse_ts(text: object, name: str) -> int:
    """ISO 8601 with an offset -> whole UTC seconds (fractions dropped)."""
    if not isinstance(text, str):
        raise _Bad(f"{name} must be an ISO 8601 UTC time string, got {_short(text)}")
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise _Bad(
            f"{name} is not an ISO 8601 time (expected e.g. 2026-03-20T12:34:56Z): {_short(text)}"
        ) from None
    if parsed.tzinfo is None:
        raise _Bad(f"{name} has no UTC offset (add Z or +00:00): {_short(text)}")
    seconds = math.floor(parsed.timestamp())  # drops the fraction of a second
    if not MIN_TS <= seconds <= MAX_TS:
        raise _Bad(f"{name} must be between 1970 and 2242: {_short(text)}")
    return seconds


def _text_id(value: object, name: str) -> str:
    if isinstance(value, _JsonNumber):
        raise _Bad(f'{name} must be text, a JSON string such as "{value}", got the number {value}')
    if not isinstance(value, str) or not 1 <= len(value) <= 64:
        raise _Bad(f"{name} must be text of 1 to 64 characters, got {_short(value)}")
    return value


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 48 else text[:45] + "..."


def _parse_user(row: tuple[object, ...]) -> tuple[str, int, int, int]:
    user_id = _text_id(row[0], "user_id")
    kind = row[1]
    if not isinstance(kind, str) or kind not in KINDS:
        raise _Bad(f"kind must be 'human' or 'agent', got {_short(kind)}")
    capital = parse_micro(row[2], "capital_usdc")
    if capital < 0:
        raise _Bad(f"capital_usdc must be >= 0, got {_short(row[2])}")
    return user_id, KINDS[kind], capital, parse_ts(row[3], "created_at")


def _parse_trade(row: tuple[object, ...]) -> tuple[str, str, int, int, int]:
    trade_id = _text_id(row[0], "trade_id")
    user_id = _text_id(row[1], "user_id")
    ts = parse_ts(row[2], "ts")
    volume = parse_micro(row[3], "volume_usdc")
    if volume <= 0:
        raise _Bad(f"volume_usdc must be > 0, got {_short(row[3])}")
    return trade_id, user_id, ts, volume, parse_micro(row[4], "pnl_usdc")


def detect_format(path: Path, override: str | None = None) -> Format:
    """The file's format: `override` if given, else by extension (.csv, .jsonl/.ndjson/.json)."""
    choice = (override or path.suffix.lstrip(".")).lower()
    if choice == "csv":
        return "csv"
    if choice in {"jsonl", "ndjson", "json"}:
        return "jsonl"
    raise AnalyticsError(
        "invalid_argument",
        f"cannot tell the format of {path.name}: use a .csv or .jsonl file, or --format csv|jsonl",
    )


def _rows(
    path: Path, fmt: Format, fields: tuple[str, ...], errors: _Errors, progress: Progress | None
) -> Iterator[tuple[int, tuple[object, ...]]]:
    """Yield (line number, values in `fields` order) for every sound row; report the others to `errors`."""
    line = 0
    try:
        for line, row in _read_rows(path, fmt, fields, errors, progress):
            yield line, row
    except UnicodeDecodeError:
        errors.add(path.name, line + 1, "not UTF-8 text (at or after this line); the file must be UTF-8")
    except csv.Error as exc:
        errors.add(path.name, line + 1, f"not readable as CSV (at or after this line): {exc}")


def _read_rows(
    path: Path, fmt: Format, fields: tuple[str, ...], errors: _Errors, progress: Progress | None
) -> Iterator[tuple[int, tuple[object, ...]]]:
    """The rows of a file, as `_rows` yields them, raising on text that cannot be decoded or split."""
    total = path.stat().st_size
    with path.open("rb") as raw:
        text = io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")
        tick = 0
        if fmt == "csv":
            reader = csv.reader(text)
            header = next(reader, None)
            if header is None:
                errors.add(path.name, 1, f"empty file: a header row is required ({', '.join(fields)})")
                return
            missing = [f for f in fields if f not in header]
            unknown = [h for h in header if h not in fields]
            dupes = sorted({h for h in header if header.count(h) > 1})
            if missing or unknown or dupes:
                parts = []
                if missing:
                    parts.append(f"missing column{'s' if len(missing) > 1 else ''} {', '.join(missing)}")
                if unknown:
                    parts.append(f"unknown column{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}")
                if dupes:
                    parts.append(f"repeated column{'s' if len(dupes) > 1 else ''} {', '.join(dupes)}")
                errors.add(path.name, 1, "; ".join(parts) + f" (expected exactly: {', '.join(fields)})")
                return
            width = len(header)
            pick = operator.itemgetter(*(header.index(f) for f in fields))
            line = reader.line_num
            for cells in reader:
                start, line = line + 1, reader.line_num
                if not cells:
                    continue
                if len(cells) != width:
                    errors.add(path.name, start, f"expected {width} fields, found {len(cells)}")
                    continue
                yield start, pick(cells)
                tick += 1
                if progress is not None and tick % 50_000 == 0:
                    progress(raw.tell(), total)
        else:
            for number, content in enumerate(text, start=1):
                if not content.strip():
                    continue
                try:
                    obj = json.loads(content, parse_float=_JsonNumber, parse_int=_JsonNumber)
                except (ValueError, RecursionError) as exc:
                    errors.add(path.name, number, f"not valid JSON: {exc}")
                    continue
                if not isinstance(obj, dict):
                    errors.add(path.name, number, "each line must be one JSON object")
                    continue
                missing = [f for f in fields if f not in obj]
                unknown = [k for k in obj if k not in fields]
                if missing or unknown:
                    parts = [f"missing field {m}" for m in missing] + [f"unknown field {u}" for u in unknown]
                    errors.add(
                        path.name, number, "; ".join(parts) + f" (expected exactly: {', '.join(fields)})"
                    )
                    continue
                yield number, tuple(obj[f] for f in fields)
                tick += 1
                if progress is not None and tick % 50_000 == 0:
                    progress(raw.tell(), total)
        if progress is not None:
            progress(total, total)


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
    errors = _Errors()
    # Foreign keys are checked by the import itself: every trade's user is looked up in `ids`, read
    # from `users` inside this transaction, and the users its trades name are checked against the
    # table once at the end (`_TradeSink.close`), not by SQLite once a row.
    with store.write(foreign_keys=False) as conn:
        version = store.data_version(conn) + 1
        ids: dict[str, int] = dict(conn.execute("SELECT user_id, id FROM users").fetchall())
        if users is not None:
            _import_users(conn, users, detect_format(users, fmt), ids, version, errors, report, progress)
        if trades is not None:
            _import_trades(conn, trades, detect_format(trades, fmt), ids, errors, report, progress)
        if errors.total:
            raise ImportRefused(errors.listed, errors.total)
        if report.users_inserted or report.users_updated or report.trades_inserted:
            conn.execute("UPDATE meta SET value = ? WHERE key = 'data_version'", (version,))
            report.data_version = version
        else:
            report.data_version = version - 1
    report.seconds = time.perf_counter() - started
    return report


def _import_users(
    conn: sqlite3.Connection,
    path: Path,
    fmt: Format,
    ids: dict[str, int],
    version: int,
    errors: _Errors,
    report: ImportReport,
    progress: Progress | None,
) -> None:
    new: set[int] = set()  # users this file inserted: a later row of theirs wins whole
    for line, row in _rows(path, fmt, USER_FIELDS, errors, progress):
        report.rows += 1
        try:
            user_id, kind, capital, created = _parse_user(row)
        except _Bad as bad:
            errors.add(path.name, line, str(bad))
            continue
        if errors.total:  # keep validating, stop writing: the transaction will be rolled back
            ids.setdefault(user_id, 0)  # still a known user for the trades file's checks
            continue
        if ids.get(user_id) in new:
            conn.execute(
                "UPDATE users SET kind = ?, capital_micro = ?, created_at = ? WHERE id = ?",
                (kind, capital, created, ids[user_id]),
            )
        elif user_id in ids:
            conn.execute(
                "UPDATE users SET kind = ?, capital_micro = ?, changed_in = ? WHERE id = ?",
                (kind, capital, version, ids[user_id]),
            )
            report.users_updated += 1
        else:
            cursor = conn.execute(
                "INSERT INTO users (user_id, kind, capital_micro, created_at, changed_in) VALUES (?, ?, ?, ?, ?)",
                (user_id, kind, capital, created, version),
            )
            ids[user_id] = int(cursor.lastrowid or 0)
            new.add(ids[user_id])
            report.users_inserted += 1


def _import_trades(
    conn: sqlite3.Connection,
    path: Path,
    fmt: Format,
    ids: dict[str, int],
    errors: _Errors,
    report: ImportReport,
    progress: Progress | None,
) -> None:
    columns = _plain_csv_header(path) if fmt == "csv" else None
    if columns is not None:
        listed, total = len(errors.listed), errors.total
        rows, inserted, present = report.rows, report.trades_inserted, report.trades_present
        try:
            _import_trade_blocks(conn, path, columns, ids, errors, report, progress)
            return
        except _Unreadable:
            # Bytes that are not UTF-8, or text the csv module cannot split: the file is refused
            # either way, and where the whole-file reader notices depends on how it reads ahead,
            # so it reads the file again to report exactly what it always has. Nothing more is
            # written (what was is rolled back with the refusal).
            del errors.listed[listed:]
            errors.total = total
            report.rows, report.trades_inserted, report.trades_present = rows, inserted, present
            sink = _TradeSink(conn, path.name, ids, errors, report, write=False)
    else:
        sink = _TradeSink(conn, path.name, ids, errors, report)
    for line, row in _rows(path, fmt, TRADE_FIELDS, errors, progress):
        sink.row(line, row)
    sink.close()


class _TradeSink:
    """Validates trade rows and writes them in file order; counts and reports like every import."""

    SQL: Final = "INSERT OR IGNORE INTO trades (trade_id, user_ref, ts, volume_micro, pnl_micro) VALUES (?, ?, ?, ?, ?)"

    def __init__(
        self,
        conn: sqlite3.Connection,
        name: str,
        ids: dict[str, int],
        errors: _Errors,
        report: ImportReport,
        write: bool = True,
    ) -> None:
        self.conn, self.name, self.ids, self.errors, self.report = conn, name, ids, errors, report
        self.write = write
        self.batch: list[tuple[str, int, int, int, int]] = []
        self.seen = 0
        self.last_id = self._newest()
        self.before_id = self.last_id
        self.volume_added = self.abs_pnl_added = 0  # micro-USDC, over the trades inserted so far
        self.users_named = np.zeros(max(ids.values(), default=0) + 1, dtype=np.bool_)
        # whole blocks go in many rows a statement: far fewer steps than one statement a row
        per = max(1, min(ROWS_PER_STATEMENT, conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) // 5))
        self.per_statement = per
        self.sql_many = self.SQL + ", (?, ?, ?, ?, ?)" * (per - 1)

    def row(self, line: int, row: tuple[object, ...]) -> None:
        """One row of the file (fields in TRADE_FIELDS order) at `line`: validated, then written."""
        self.report.rows += 1
        try:
            trade_id, user_id, ts, volume, pnl = _parse_trade(row)
        except _Bad as bad:
            self.errors.add(self.name, line, str(bad))
            return
        ref = self.ids.get(user_id)
        if ref is None:
            self.errors.add(self.name, line, f"unknown user_id {_short(user_id)}: import the user first")
            return
        self.seen += 1
        if self.errors.total or not self.write:  # keep validating, stop writing: it will be rolled back
            return
        self.batch.append((trade_id, ref, ts, volume, pnl))
        if len(self.batch) >= BATCH:
            self._flush()

    def block(self, prepared: _Prepared) -> None:
        """Rows that `blocks.parse_trades` found valid, next in the file: written at once."""
        rows = prepared.rows
        self.report.rows += rows.lines
        self.seen += rows.lines
        if self.errors.total or not self.write:
            return
        if self.batch:
            self._flush()
        before = self.conn.total_changes
        self.conn.executemany(self.sql_many, prepared.statements)
        self.conn.executemany(self.SQL, prepared.rest)
        self._name(prepared.users)
        self._chunk(self.conn.total_changes - before, rows)

    def close(self) -> None:
        """The last rows written, their users checked; the report's counts completed."""
        if self.batch and not self.errors.total and self.write:
            self._flush()
        self.report.trades_present += self.seen - self.report.trades_inserted
        if self.report.trades_inserted and not self.errors.total and self.write:
            # the foreign key trades.user_ref -> users.id, checked once for each user named
            named = np.flatnonzero(self.users_named).tolist()
            found = 0
            for at in range(0, len(named), 500):
                part = named[at : at + 500]
                marks = ", ".join("?" * len(part))
                found += self.conn.execute(
                    f"SELECT count(*) FROM users WHERE id IN ({marks})", part
                ).fetchone()[0]
            if found != len(named):
                raise sqlite3.IntegrityError("FOREIGN KEY constraint failed")
            totals.add(self.conn, self.volume_added, self.abs_pnl_added, self.before_id)

    def _flush(self) -> None:
        before = self.conn.total_changes
        self.conn.executemany(self.SQL, self.batch)
        self._name([row[1] for row in self.batch])
        self._chunk(self.conn.total_changes - before, None)
        self.batch.clear()

    def _name(self, refs: list[int]) -> None:
        """Remember the users that written trades name, for the check in `close`."""
        top = max(refs, default=0)
        if top >= len(self.users_named):
            self.users_named = np.append(
                self.users_named, np.zeros(top + 1 - len(self.users_named), np.bool_)
            )
        self.users_named[refs] = True

    def _chunk(self, inserted: int, rows: blocks.TradeBlock | None) -> None:
        """Pack the columns of the rows just inserted (not those already present) into a chunk, and
        add their volume and |pnl| to the import's totals."""
        self.report.trades_inserted += inserted
        newest = self._newest()
        contiguous = newest == self.last_id + inserted  # the new rows hold ids last_id+1 .. newest
        if rows is not None and inserted == rows.lines:
            volume, pnl = rows.volume, rows.pnl
            if contiguous:
                chunks.append_columns(self.conn, self.last_id + 1, rows.user_ref, rows.ts, volume, pnl)
        else:
            every = rows is None and inserted == len(self.batch)
            written = (
                [row[1:] for row in self.batch] if every else chunks.inserted_rows(self.conn, self.last_id)
            )
            if contiguous:
                chunks.append(self.conn, self.last_id + 1, written)
            # otherwise no chunk: readers then take these rows from `trades` itself
            table = np.array(written, dtype=np.int64).reshape(-1, 4)
            volume, pnl = table[:, 2], table[:, 3]
        self.volume_added += exact_sum(volume)
        self.abs_pnl_added += exact_sum(np.abs(pnl))
        self.last_id = newest

    def _newest(self) -> int:
        return int(self.conn.execute("SELECT coalesce(max(id), 0) FROM trades").fetchone()[0])


class _Unreadable(Exception):
    """The file holds bytes that are not UTF-8 or text that the csv module refuses to split."""


def _plain_csv_header(path: Path) -> tuple[int, ...] | None:
    """Where each of TRADE_FIELDS stands, if the header is a plain line naming exactly them; else None.

    Plain: one line ending in a newline, UTF-8 (a byte-order mark allowed), no quotes, no other
    carriage return. Any other header, right or wrong, is read by the whole-file reader.
    """
    with path.open("rb") as raw:
        first = raw.readline(HEADER_BYTES)
    if not first.endswith(b"\n"):
        return None
    first = first[:-2] if first.endswith(b"\r\n") else first[:-1]
    if b"\r" in first or b'"' in first:
        return None
    try:
        header = first.decode("utf-8-sig").split(",")
    except UnicodeDecodeError:
        return None
    if len(header) != len(TRADE_FIELDS) or set(header) != set(TRADE_FIELDS):
        return None
    return tuple(header.index(name) for name in TRADE_FIELDS)


def _import_trade_blocks(
    conn: sqlite3.Connection,
    path: Path,
    columns: tuple[int, ...],
    ids: dict[str, int],
    errors: _Errors,
    report: ImportReport,
    progress: Progress | None,
) -> None:
    """A CSV trades file with a plain header, a block of lines at a time.

    A parsing thread cuts the file into blocks of whole lines and parses each with
    `blocks.parse_trades` (numpy, mostly without the GIL) while this thread writes the one before
    (SQLite steps without it too). A block the fast path does not take is read row by row, exactly
    as the whole-file reader would: same csv module, same lines, same messages and line numbers;
    should a quoted field run past the block's end, that reading goes on into the next blocks.
    """
    sink = _TradeSink(conn, path.name, ids, errors, report)
    users = blocks.Users(ids)
    total = path.stat().st_size
    line = 1  # the header's
    parsed = _prefetched(_parsed_blocks(path, columns, users, sink.per_statement), depth=2)
    try:
        for block, prepared, position in parsed:
            if prepared is not None:
                sink.block(prepared)
                line += prepared.rows.lines
            else:
                line = _read_slowly(block, parsed, line, columns, sink)
            if progress is not None:
                progress(position, total)
    finally:
        parsed.close()
    sink.close()
    if progress is not None:
        progress(total, total)


@dataclass(frozen=True, slots=True)
class _Prepared:
    """A block's rows, and the parameters of the statements that insert them (`per` rows each, then the rest)."""

    rows: blocks.TradeBlock
    statements: list[list[object]]
    rest: list[list[object]]
    users: list[int]  # the users its rows name

    @classmethod
    def of(cls, rows: blocks.TradeBlock, per: int) -> _Prepared:
        flat: list[object] = [None] * (5 * rows.lines)
        flat[0::5] = rows.trade_ids
        for at, column in enumerate((rows.user_ref, rows.ts, rows.volume, rows.pnl), start=1):
            flat[at::5] = column.tolist()
        width = 5 * per
        whole = len(flat) // width * width
        return cls(
            rows,
            [flat[i : i + width] for i in range(0, whole, width)],
            [flat[i : i + 5] for i in range(whole, len(flat), 5)],
            np.flatnonzero(np.bincount(rows.user_ref)).tolist(),
        )


_Parsed = tuple[bytes, _Prepared | None, int]


def _parsed_blocks(
    path: Path, columns: tuple[int, ...], users: blocks.Users, per: int
) -> Generator[_Parsed, None, None]:
    """(block, its rows ready to insert if the fast path takes it, file position after it), after the header."""

    def parse(block: bytes) -> _Prepared | None:
        rows = blocks.parse_trades(block, columns, users)
        return None if rows is None else _Prepared.of(rows, per)

    with path.open("rb") as raw:
        raw.readline(HEADER_BYTES)
        pending = b""
        while data := raw.read(BLOCK_BYTES):
            cut = data.rfind(b"\n") + 1
            if not cut:  # no line ends here yet
                pending += data
                continue
            block, pending = pending + data[:cut], data[cut:]
            yield block, parse(block), raw.tell() - len(pending)
        if pending:
            yield pending, parse(pending), raw.tell()


def _read_slowly(
    block: bytes, more: Iterator[_Parsed], line: int, columns: tuple[int, ...], sink: _TradeSink
) -> int:
    """Read a block row by row, as the whole-file reader does; return the number of its last line.

    Lines are split as `TextIOWrapper(newline="")` splits them, and read by the same csv reader.
    If a record is still open at the block's end (a quoted field holding a line break), the next
    blocks are read the same way until a record ends with a block.
    """
    at_record_end = True

    def lines() -> Iterator[str]:
        nonlocal at_record_end
        current: bytes | None = block
        while current is not None:
            try:
                text = current.decode("utf-8")
            except UnicodeDecodeError:
                raise _Unreadable from None
            for piece in io.StringIO(text, newline=""):
                at_record_end = False
                yield piece
            if at_record_end:
                return
            current = next(more, (None, None, 0))[0]

    pick = operator.itemgetter(*columns)
    reader = csv.reader(lines())
    done = 0
    try:
        for cells in reader:
            at_record_end = True
            start, done = line + done + 1, reader.line_num
            if not cells:
                continue
            if len(cells) != len(columns):
                sink.errors.add(sink.name, start, f"expected {len(columns)} fields, found {len(cells)}")
                continue
            sink.row(start, pick(cells))
    except csv.Error:
        raise _Unreadable from None
    return line + reader.line_num


def _prefetched(items: Generator[_Parsed, None, None], depth: int) -> Generator[_Parsed, None, None]:
    """`items`, produced by a thread of their own up to `depth` ahead (closing this stops it)."""
    handoff: queue.Queue[tuple[_Parsed | None, BaseException | None]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(entry: tuple[_Parsed | None, BaseException | None]) -> bool:
        while not stop.is_set():
            try:
                handoff.put(entry, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        with contextlib.closing(items):
            try:
                for item in items:
                    if not put((item, None)):
                        return
            except BaseException as exc:
                put((None, exc))
                return
            put((None, None))

    worker = threading.Thread(target=produce, name="import-parser", daemon=True)
    worker.start()
    try:
        while True:
            item, failure = handoff.get()
            if failure is not None:
                raise failure
            if item is None:
                return
            yield item
    finally:
        stop.set()
        worker.join()
