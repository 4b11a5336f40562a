"""Keep credentials out of the logs, at every level: whatever looks like one becomes `[redacted]`.

What is redacted, in a record's message, its string arguments and its exception and stack text:

    token=<value>, access_token=<value>          query strings (the published API puts the WebSocket
                                                 token there; uvicorn logs every path with its query)
    Bearer <value>, Basic <value>                Authorization headers (the websockets library logs
                                                 request headers at DEBUG through uvicorn.error)
    Cookie: <value>, Set-Cookie: <value>         in header lines and header tuples
    cym_<...>                                    an API key, wherever it appears
    eyJ<...>.<...>.<...>                         a JWT, wherever it appears

`install_redaction` puts the filter on every handler there is (the root's, uvicorn's) and on our
loggers, so a record is redacted whichever logger emits it. It rewrites records in place and keeps
the number of arguments (uvicorn's access formatter unpacks them).
"""

from __future__ import annotations

import logging
import re
from typing import Final

REDACTED: Final = "[redacted]"
LOGGERS: Final = ("uvicorn.access", "uvicorn.error", "uvicorn", "cymetica_mcp")
_TOKEN: Final = re.compile(r"((?:^|[?&;\s\"'])(?:access_)?token=)[^&\s\"'#;]*", re.IGNORECASE)
_WS_QUERY: Final = re.compile(r"(/ws/analytics\?)[^\s\"']*")
_SCHEME: Final = re.compile(r"(\b(?:bearer|basic)\s+)[^\s\"',)\]]+", re.IGNORECASE)
_COOKIE: Final = re.compile(r"(\b(?:set-)?cookie['\"]?\s*[:,=]\s*b?['\"]?)[^'\"\r\n]+", re.IGNORECASE)
_KEY: Final = re.compile(r"cym_[A-Za-z0-9_\-]+")
_JWT: Final = re.compile(r"eyJ[A-Za-z0-9_\-]*\.[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]*")
_HINTS: Final = ("token=", "/ws/analytics?", "bearer", "basic", "cookie", "cym_", "eyj")
_FORMATTER: Final = logging.Formatter()


def redact(text: str) -> str:
    """`text` with every credential-shaped part replaced by `[redacted]` (see the module's table), and
    the whole query of a WebSocket URL that holds percent-encoding (where `%74oken=` would slip through)."""
    if not _suspect(text):
        return text
    text = _TOKEN.sub(rf"\g<1>{REDACTED}", text)
    text = _WS_QUERY.sub(lambda m: m.group(1) + REDACTED if "%" in m.group(0) else m.group(0), text)
    text = _SCHEME.sub(rf"\g<1>{REDACTED}", text)
    text = _COOKIE.sub(rf"\g<1>{REDACTED}", text)
    text = _KEY.sub("cym_" + REDACTED, text)
    return _JWT.sub(REDACTED, text)


def _suspect(text: str) -> bool:
    """Whether any pattern could match: every log line passes here, nearly all without a credential.

    Each pattern needs one of the hints in some case; case-folding maps the look-alikes that a
    case-insensitive match accepts (the Kelvin sign for `k`, the long s for `s`) to the plain letters."""
    folded = text.casefold()
    return any(hint in folded for hint in _HINTS)


def _clean(value: object) -> object:
    return redact(value) if isinstance(value, str) else value


class TokenRedactor(logging.Filter):
    """A logging filter that redacts credentials in a record's message, arguments and tracebacks."""

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
        if record.exc_info and not record.exc_text:
            record.exc_text = _FORMATTER.formatException(record.exc_info)  # what a handler would print
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


def install_redaction(names: tuple[str, ...] = LOGGERS) -> None:
    """Add one `TokenRedactor` to every handler of every logger (the root's included) and to each
    named logger (idempotent). Call it once logging is configured (uvicorn configures its own)."""
    loggers = [logging.getLogger(), *(logging.getLogger(name) for name in names)]
    loggers += [
        found for found in logging.Logger.manager.loggerDict.values() if isinstance(found, logging.Logger)
    ]
    for logger in loggers:
        for filtered in (logger, *logger.handlers):
            if not any(isinstance(f, TokenRedactor) for f in filtered.filters):
                filtered.addFilter(TokenRedactor())


class ClientFaultLevel(logging.Filter):
    """uvicorn logs a client's text frame that is not UTF-8 at ERROR, with a traceback, before closing
    with 1007: any client could fill the log with tracebacks. It is the client's fault, handled as
    RFC 6455 says, so it is logged as one INFO line."""

    UTF8: Final = "Invalid UTF-8 sequence received from client."

    def filter(self, record: logging.LogRecord) -> bool:
        """Demote the record in place; never drop it."""
        if record.msg == self.UTF8:
            record.msg = "a WebSocket client sent a text frame that is not UTF-8: closed with 1007"
            record.levelno, record.levelname = logging.INFO, "INFO"
            record.exc_info = record.exc_text = None
        return True


def quiet_client_faults() -> None:
    """Install `ClientFaultLevel` on uvicorn's error logger (idempotent)."""
    logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, ClientFaultLevel) for f in logger.filters):
        logger.addFilter(ClientFaultLevel())
