"""CSV / JSON Lines parsing and validation, streamed into one all-or-nothing store transaction.

The import contract is CONTRACT.md section 1. A file with any bad row is refused whole: every bad
row's line number and reason is reported (up to `MAX_LISTED_ERRORS`, with the total count) and the
transaction is rolled back, so the store is left exactly as it was.
"""

from __future__ import annotations

import csv
import io
import json
import math
import operator
import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Final, Literal

from cymetica_mcp.errors import AnalyticsError
from cymetica_mcp.store import Store, chunks

Format = Literal["csv", "jsonl"]

USER_FIELDS: Final = ("user_id", "kind", "capital_usdc", "created_at")
TRADE_FIELDS: Final = ("trade_id", "user_id", "ts", "volume_usdc", "pnl_usdc")
KINDS: Final = {"human": 0, "agent": 1}
MAX_LISTED_ERRORS: Final = 100
MAX_WHOLE_DIGITS: Final = 12
"""Amounts below 10^12 USDC: integer micro-USDC then fit 64-bit arithmetic with room for sums."""
BATCH: Final = 10_000
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
    with store.write() as conn:
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
        if user_id in ids:
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
    sql = "INSERT OR IGNORE INTO trades (trade_id, user_ref, ts, volume_micro, pnl_micro) VALUES (?, ?, ?, ?, ?)"
    batch: list[tuple[str, int, int, int, int]] = []
    seen = 0
    last_id = int(conn.execute("SELECT coalesce(max(id), 0) FROM trades").fetchone()[0])

    def flush() -> None:
        nonlocal last_id
        before = conn.total_changes
        conn.executemany(sql, batch)
        inserted = conn.total_changes - before
        report.trades_inserted += inserted
        newest = int(conn.execute("SELECT coalesce(max(id), 0) FROM trades").fetchone()[0])
        if newest == last_id + inserted:  # the new rows hold ids last_id+1 .. newest, in order
            went_in = (
                [row[1:] for row in batch] if inserted == len(batch) else chunks.inserted_rows(conn, last_id)
            )
            chunks.append(conn, last_id + 1, went_in)
        # otherwise no chunk: readers then take these rows from `trades` itself
        last_id = newest
        batch.clear()

    for line, row in _rows(path, fmt, TRADE_FIELDS, errors, progress):
        report.rows += 1
        try:
            trade_id, user_id, ts, volume, pnl = _parse_trade(row)
        except _Bad as bad:
            errors.add(path.name, line, str(bad))
            continue
        ref = ids.get(user_id)
        if ref is None:
            errors.add(path.name, line, f"unknown user_id {_short(user_id)}: import the user first")
            continue
        seen += 1
        if errors.total:
            continue
        batch.append((trade_id, ref, ts, volume, pnl))
        if len(batch) >= BATCH:
            flush()
    if batch and not errors.total:
        flush()
    report.trades_present += seen - report.trades_inserted
