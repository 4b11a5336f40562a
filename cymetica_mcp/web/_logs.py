"""Keep credentials out of the logs: `token=` values in logged URLs become `token=[redacted]`.

uvicorn logs every request path with its query string: HTTP lines on `uvicorn.access`, WebSocket
handshakes (`"WebSocket /ws/analytics?token=..." [accepted]`) on `uvicorn.error`. The published API
puts the WebSocket token in the query string, so both loggers get a filter that rewrites the record's
arguments in place (uvicorn's access formatter unpacks them, so their number must not change).
"""

from __future__ import annotations

import logging
import re
from typing import Final

REDACTED: Final = "[redacted]"
LOGGERS: Final = ("uvicorn.access", "uvicorn.error", "uvicorn", "cymetica_mcp")
_TOKEN: Final = re.compile(r"((?:^|[?&;\s\"'])(?:access_)?token=)[^&\s\"'#;]*", re.IGNORECASE)


_WS_QUERY: Final = re.compile(r"(/ws/analytics\?)[^\s\"']*")


def redact(text: str) -> str:
    """`text` with every `token=` / `access_token=` value replaced by `[redacted]`, and the whole query
    of a WebSocket URL that holds percent-encoding (where a name such as `%74oken=` would slip through)."""
    if not _suspect(text):
        return text
    text = _TOKEN.sub(rf"\g<1>{REDACTED}", text)
    return _WS_QUERY.sub(lambda m: m.group(1) + REDACTED if "%" in m.group(0) else m.group(0), text)


def _suspect(text: str) -> bool:
    """Whether either pattern could match: every log line passes here, nearly all without a token.

    `_TOKEN` needs `token=` in some case (the only look-alike its case-insensitive match accepts, the
    Kelvin sign for `k`, lower-cases to `k`), `_WS_QUERY` needs the WebSocket path itself."""
    return "token=" in text.lower() or "/ws/analytics?" in text


def _clean(value: object) -> object:
    return redact(value) if isinstance(value, str) else value


class TokenRedactor(logging.Filter):
    """A logging filter that redacts token values in a record's message and string arguments."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record in place; never drop it."""
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        args = record.args
        if isinstance(args, tuple):
            if any(isinstance(arg, str) and _suspect(arg) for arg in args):
                record.args = tuple(_clean(arg) for arg in args)
        elif isinstance(args, dict):
            record.args = {key: _clean(arg) for key, arg in args.items()}
        return True


def install_redaction(names: tuple[str, ...] = LOGGERS) -> None:
    """Add one `TokenRedactor` to each named logger (idempotent)."""
    for name in names:
        logger = logging.getLogger(name)
        if not any(isinstance(f, TokenRedactor) for f in logger.filters):
            logger.addFilter(TokenRedactor())
