"""Reading a CSV or JSON Lines file row by row: headers checked, every row numbered by its line,
bad rows collected in `Errors`."""

from __future__ import annotations

import csv
import io
import json
import operator
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Final, Literal

from cymetica_mcp.errors import AnalyticsError
from cymetica_mcp.ingest._report import Errors
from cymetica_mcp.ingest._values import JsonNumber

Format = Literal["csv", "jsonl"]

USER_FIELDS: Final = ("user_id", "kind", "capital_usdc", "created_at")
TRADE_FIELDS: Final = ("trade_id", "user_id", "ts", "volume_usdc", "pnl_usdc")


Progress = Callable[[int, int], None]
"""Called with (bytes read, total bytes) of the file being imported."""


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


def rows(
    path: Path, fmt: Format, fields: tuple[str, ...], errors: Errors, progress: Progress | None
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
    path: Path, fmt: Format, fields: tuple[str, ...], errors: Errors, progress: Progress | None
) -> Iterator[tuple[int, tuple[object, ...]]]:
    """The rows of a file, as `rows` yields them, raising on text that cannot be decoded or split."""
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
                    obj = json.loads(content, parse_float=JsonNumber, parse_int=JsonNumber)
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
