"""Rows as PostgreSQL `COPY ... FROM STDIN` data.

- `lines`: text format, one tab-separated line a row (users: few rows, any columns);
- `binary_trades`: binary format (`FORMAT BINARY`) of trade rows, built with numpy a block at a time:
  the server parses no numbers, the client joins no strings row by row (ids are copied as they are,
  so nothing needs escaping).

Ids are arbitrary text (1-64 characters): in text format the characters COPY gives a meaning to
(backslash, tab, newline, carriage return) are escaped; NUL, which a PostgreSQL `text` cannot hold, is
refused in either format with the row's column named.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Sequence
from contextlib import ExitStack
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import psycopg

from cymetica_mcp.errors import AnalyticsError
from cymetica_mcp.store._interface import AsciiIds

_SPECIAL: Final = ("\\", "\t", "\n", "\r")
_ESCAPES: Final = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})

BINARY_HEADER: Final = b"PGCOPY\n\xff\r\n\x00" + bytes(8)  # signature, flags 0, no header extension
BINARY_TRAILER: Final = b"\xff\xff"
_BIGINT_LENGTH: Final = np.frombuffer(b"\x00\x00\x00\x08", dtype=np.uint8)  # a field's length: 8 bytes
TRADE_COLUMNS: Final = "id, trade_id, user_ref, ts, volume_micro, pnl_micro"
"""The columns `binary_trades` writes, in order."""

I64 = npt.NDArray[np.int64]


def refuse_nul(joined: str, name: str) -> None:
    """`import_refused` if `joined` (a column's values, joined) holds NUL."""
    if "\x00" in joined:
        raise AnalyticsError(
            "import_refused",
            f"import refused: a {name} holds the character NUL (U+0000), which a PostgreSQL store cannot "
            "keep; accepted: text of 1 to 64 characters without NUL; the store is unchanged",
        )


def texts(values: Sequence[str], name: str) -> Sequence[str]:
    """`values` ready for a COPY text line (escaped where needed); `import_refused` if one holds NUL."""
    joined = "".join(values)
    refuse_nul(joined, name)
    if not any(special in joined for special in _SPECIAL):
        return values
    return [value.translate(_ESCAPES) for value in values]


def lines(columns: Iterable[Iterable[object]]) -> bytes:
    """The COPY text of rows given as columns (texts already escaped with `texts`)."""
    body = "\n".join(map("\t".join, zip(*(map(str, column) for column in columns), strict=True)))
    return (body + "\n").encode() if body else b""


def copy_in(conn: psycopg.Connection[Any], statement: str, data: bytes | memoryview) -> None:
    """Run `COPY ... FROM STDIN` with `data` as its whole input."""
    with conn.cursor() as cursor, cursor.copy(statement) as copy:
        copy.write(data)


class CopyStream:
    """One `COPY ... FROM STDIN (FORMAT BINARY ...)` kept open across blocks of `BinaryRows` (their
    own header and trailer cut, one of each sent): the server takes rows as they come instead of
    waiting at each statement's end for the next. Nothing else may run on the connection until it
    is closed."""

    def __init__(self, conn: psycopg.Connection[Any], statement: str) -> None:
        self._stack = ExitStack()
        try:
            cursor = self._stack.enter_context(conn.cursor())
            self._copy = self._stack.enter_context(cursor.copy(statement))
            self._copy.write(BINARY_HEADER)
        except BaseException as error:
            self.abandon(error)
            raise

    def write(self, rows: memoryview) -> None:
        """The rows of a block's COPY data (`BinaryRows.numbered`)."""
        self._copy.write(rows[len(BINARY_HEADER) : len(rows) - len(BINARY_TRAILER)])

    def close(self) -> None:
        """End the COPY: the server's error, if it refused a row, is raised here."""
        self._copy.write(BINARY_TRAILER)
        self._stack.close()

    def abandon(self, error: BaseException) -> None:
        """End the COPY as failed (the transaction is being rolled back because of `error`)."""
        with contextlib.suppress(Exception):  # the connection may be gone: `error` is what matters
            self._stack.__exit__(type(error), error, error.__traceback__)


class BinaryRows:
    """Trade rows in `FORMAT BINARY`, numbered from `first_id`; `numbered` renumbers them when the
    rows before them did not all turn out new."""

    __slots__ = ("count", "data", "first_id", "id_at")

    def __init__(self, data: npt.NDArray[np.uint8], id_at: I64, first_id: int) -> None:
        self.data, self.id_at, self.first_id = data, id_at, first_id
        self.count = len(id_at)

    def numbered(self, first_id: int) -> memoryview:
        """The COPY data with ids `first_id`, `first_id + 1`, ... (empty for no rows)."""
        if first_id != self.first_id and self.count:
            ids = np.arange(first_id, first_id + self.count, dtype=">i8").view(np.uint8)
            self.data[(self.id_at[:, None] + np.arange(8)).ravel()] = ids
            self.first_id = first_id
        return self.data.data


def binary_trades(first_id: int, trade_ids: Sequence[str] | AsciiIds, numbers: Sequence[I64]) -> BinaryRows:
    """Trade rows `TRADE_COLUMNS` in `FORMAT BINARY`: ids `first_id`, `first_id + 1`, ... in order,
    then `trade_ids` (text: strings, or ASCII bytes as they are), then the int64 columns `numbers`
    (user_ref, ts, volume, pnl); `import_refused` if a trade_id holds NUL."""
    ids: AsciiIds | list[bytes]
    if isinstance(trade_ids, AsciiIds):
        ids, widths = trade_ids, trade_ids.lengths
        if ((ids.text == 0) & (np.arange(ids.text.shape[1]) < widths[:, None])).any():
            refuse_nul("\x00", "trade_id")
    else:
        refuse_nul("".join(trade_ids), "trade_id")
        ids = AsciiIds.of(trade_ids) or [value.encode() for value in trade_ids]  # UTF-8 bytes if not ASCII
        widths = ids.lengths if isinstance(ids, AsciiIds) else np.fromiter(map(len, ids), dtype=np.int64)
    count = len(widths)
    if not count:
        return BinaryRows(np.empty(0, dtype=np.uint8), np.empty(0, dtype=np.int64), first_id)
    widest, narrowest = int(widths.max()), int(widths.min())
    # a row: field count, id (length 8, value), trade_id (length, bytes), then each number (length 8,
    # value); built at the widest trade_id's width, the padding after narrower ones cut out at the end
    after = 18 + widest  # where the numbers start
    size = after + 12 * len(numbers)
    template = np.zeros(size, dtype=np.uint8)
    template[0:2] = np.frombuffer((2 + len(numbers)).to_bytes(2, "big"), dtype=np.uint8)
    template[2:6] = _BIGINT_LENGTH
    for i in range(len(numbers)):
        template[after + 12 * i : after + 12 * i + 4] = _BIGINT_LENGTH
    head, tail = len(BINARY_HEADER), len(BINARY_TRAILER)
    data = np.empty(head + count * size + tail, dtype=np.uint8)
    data[:head] = np.frombuffer(BINARY_HEADER, dtype=np.uint8)
    data[-tail:] = np.frombuffer(BINARY_TRAILER, dtype=np.uint8)
    body = data[head:-tail].reshape(count, size)
    body[:] = template
    names = ["id", "trade_id_len", "trade_id", *(f"v{i}" for i in range(len(numbers)))]
    formats = [">i8", ">i4", f"S{widest}", *([">i8"] * len(numbers))]
    offsets = [6, 14, 18, *(after + 12 * i + 4 for i in range(len(numbers)))]
    layout = np.dtype({"names": names, "formats": formats, "offsets": offsets, "itemsize": size})
    rows = body.view(layout).reshape(count)
    rows["id"] = np.arange(first_id, first_id + count, dtype=np.int64)
    rows["trade_id_len"] = widths
    if isinstance(ids, AsciiIds):  # the bytes as they are, zero padded to the widest
        rows["trade_id"] = np.ascontiguousarray(ids.text).view(f"S{widest}").reshape(count)
    else:
        rows["trade_id"] = ids
    for i, column in enumerate(numbers):
        rows[f"v{i}"] = column
    if narrowest == widest:
        return BinaryRows(data, head + 6 + size * np.arange(count, dtype=np.int64), first_id)
    place = np.arange(size)
    padding = (place >= 18 + widths[:, None]) & (place < after)
    data = np.concatenate([data[:head], body[~padding], data[-tail:]])
    starts = np.zeros(count, dtype=np.int64)
    np.cumsum((size - widest + widths)[:-1], out=starts[1:])
    return BinaryRows(data, head + 6 + starts, first_id)
