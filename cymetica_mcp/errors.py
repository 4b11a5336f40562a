"""The stable error codes and the one exception type that carries them.

Every door maps `AnalyticsError` onto its wire the same way::

    AnalyticsError(code, message)
    ├── REST       -> HTTP status (see `HTTP_STATUS`) + {"success": false, "error": {code, message}}
    ├── MCP        -> CallToolResult(is_error=True) with the same {"success": false, "error": ...}
    ├── WebSocket  -> {"type": "error", "error": {code, message}} (close 4401 unauthorized, 4403 forbidden)
    └── CLI        -> "error (code): message" on stderr, exit status 2
"""

from __future__ import annotations

from typing import Final, Literal

ErrorCode = Literal[
    "invalid_filter",
    "invalid_period",
    "invalid_as_of",
    "invalid_argument",
    "unauthorized",
    "forbidden",
    "rate_limited",
    "bad_message",
    "import_refused",
    "not_found",
    "payload_too_large",
    "unsupported_media_type",
    "internal",
    "unavailable",
]

HTTP_STATUS: Final[dict[str, int]] = {
    "invalid_filter": 400,
    "invalid_period": 400,
    "invalid_as_of": 400,
    "invalid_argument": 400,
    "bad_message": 400,
    "import_refused": 400,
    "unauthorized": 401,
    "forbidden": 403,
    "not_found": 404,
    "payload_too_large": 413,
    "unsupported_media_type": 415,
    "rate_limited": 429,
    "internal": 500,
    "unavailable": 503,
}


class AnalyticsError(Exception):
    """A failure with a stable, lower-case `code` and a message that says what is accepted."""

    def __init__(
        self, code: ErrorCode, message: str, *, retry_after: int | None = None, cause: str | None = None
    ) -> None:
        super().__init__(message)
        self.code: ErrorCode = code
        self.message = message
        self.retry_after = retry_after
        """Whole seconds after which the same request may succeed (HTTP `Retry-After`); None: no hint."""
        self.cause = cause
        """For `unavailable`: the cause in a few words that anyone may be shown (`/readyz` answers
        without a credential): no location, no path, no credential. None: not told."""

    def to_dict(self) -> dict[str, object]:
        """The contract's failure envelope: `{success: false, error: {code, message}}`."""
        return {"success": False, "error": {"code": self.code, "message": self.message}}

    @property
    def http_status(self) -> int:
        """The HTTP status this error maps onto."""
        return HTTP_STATUS[self.code]
