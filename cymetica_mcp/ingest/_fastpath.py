"""The import's fast path for a CSV trades file with a plain header: a parsing thread cuts the file
into blocks of whole lines and parses each with numpy (`_blocks`) while the writer writes the one
before; a block the fast path does not take is read row by row, exactly as the whole-file reader would.
"""

from __future__ import annotations

import contextlib
import csv
import io
import operator
import queue
import threading
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import Final

from cymetica_mcp.ingest import _blocks as blocks
from cymetica_mcp.ingest._rows import TRADE_FIELDS, Progress
from cymetica_mcp.ingest._sink import TradeSink
from cymetica_mcp.store import PreparedTrades, TradeColumns

BLOCK_BYTES: Final = 1 << 20
"""The fast path reads about this much at a time (some 16,000 lines of a typical trades file)."""
HEADER_BYTES: Final = 1 << 16
FAST_PATH_BYTES: Final = 1 << 18
"""Smaller CSV trades files are read row by row: building the fast path's table of every user costs
about as much as reading 256 KiB (some 4,000 lines) row by row, at 20k users."""


class Unreadable(Exception):
    """The file holds bytes that are not UTF-8 or text that the csv module refuses to split."""


def plain_csv_header(path: Path) -> tuple[int, ...] | None:
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


def import_trade_blocks(
    sink: TradeSink,
    prepare: Callable[[TradeColumns], PreparedTrades],
    path: Path,
    columns: tuple[int, ...],
    progress: Progress | None,
) -> None:
    """A CSV trades file with a plain header, a block of lines at a time.

    A parsing thread cuts the file into blocks of whole lines and parses each with
    `blocks.parse_trades` (numpy, mostly without the GIL) while this thread writes the one before
    (SQLite steps without it too). A block the fast path does not take is read row by row, exactly
    as the whole-file reader would: same csv module, same lines, same messages and line numbers;
    should a quoted field run past the block's end, that reading goes on into the next blocks.
    """
    users = blocks.Users(sink.ids)
    total = path.stat().st_size
    line = 1  # the header's
    parsed = _prefetched(_parsed_blocks(path, columns, users, prepare), depth=2)
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


_Parsed = tuple[bytes, PreparedTrades | None, int]


def _parsed_blocks(
    path: Path,
    columns: tuple[int, ...],
    users: blocks.Users,
    prepare: Callable[[TradeColumns], PreparedTrades],
) -> Generator[_Parsed, None, None]:
    """(block, its rows ready to insert if the fast path takes it, file position after it), after the header."""

    def parse(block: bytes) -> PreparedTrades | None:
        rows = blocks.parse_trades(block, columns, users)
        return None if rows is None else prepare(rows)

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
    block: bytes, more: Iterator[_Parsed], line: int, columns: tuple[int, ...], sink: TradeSink
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
                raise Unreadable from None
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
        raise Unreadable from None
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
