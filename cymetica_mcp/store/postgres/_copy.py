"""Rows as PostgreSQL `COPY ... FROM STDIN` text: one tab-separated line a row.

Ids are arbitrary text (1-64 characters): the characters COPY's text format gives a meaning to
(backslash, tab, newline, carriage return) are escaped, and NUL, which a PostgreSQL `text` cannot
hold, is refused with the row's column named.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Final

from cymetica_mcp.errors import AnalyticsError

_SPECIAL: Final = ("\\", "\t", "\n", "\r")
_ESCAPES: Final = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def texts(values: Sequence[str], name: str) -> Sequence[str]:
    """`values` ready for a COPY text line (escaped where needed); `import_refused` if one holds NUL."""
    joined = "".join(values)
    if "\x00" in joined:
        raise AnalyticsError(
            "import_refused",
            f"import refused: a {name} holds the character NUL (U+0000), which a PostgreSQL store cannot "
            "keep; accepted: text of 1 to 64 characters without NUL; the store is unchanged",
        )
    if not any(special in joined for special in _SPECIAL):
        return values
    return [value.translate(_ESCAPES) for value in values]


def lines(columns: Iterable[Iterable[object]]) -> bytes:
    """The COPY text of rows given as columns (texts already escaped with `texts`)."""
    body = "\n".join(map("\t".join, zip(*(map(str, column) for column in columns), strict=True)))
    return (body + "\n").encode() if body else b""
