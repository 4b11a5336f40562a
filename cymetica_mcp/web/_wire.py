"""The web door's JSON bodies other than the dashboard, as pydantic models.

The routes write their bodies through these models and `/openapi.json` is generated from the same
ones (with `models.Dashboard`), so the published document cannot drift from what is sent:

    ErrorEnvelope           every error, on every route: {success: false, error: {code, message}}
    ├── ImportRefusedBody   ingest 400 `import_refused`: the envelope + {rows: [{line, reason}], total}
    └── NotReady            /readyz 503: the envelope + the probe's {status: "unavailable", reason}
    TokenResponse           POST /api/v1/auth/token
    IngestReport            POST /api/v1/ingest/trades and /users
    Alive, Ready            GET /healthz, GET /readyz
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from cymetica_mcp.errors import AnalyticsError, ErrorCode


class _Wire(BaseModel):
    # Every field is sent, defaults included: the published schemas say so (`required`).
    model_config = ConfigDict(frozen=True, extra="forbid", json_schema_serialization_defaults_required=True)

    def wire(self) -> dict[str, Any]:
        """The JSON-ready dict the route sends."""
        return self.model_dump(mode="json")


class ErrorDetail(_Wire):
    """What went wrong, as a stable code and a message saying what is accepted."""

    code: ErrorCode = Field(description="Stable, lower-case error code.")
    message: str = Field(description="What was wrong and what is accepted; never a stack trace or a secret.")


class ErrorEnvelope(_Wire):
    """The one error shape of every route."""

    success: Literal[False] = Field(description="Always false on an error.")
    error: ErrorDetail


def envelope(error: AnalyticsError) -> dict[str, Any]:
    """The error envelope of `error`, as sent."""
    return ErrorEnvelope(success=False, error=ErrorDetail(code=error.code, message=error.message)).wire()


class BadRow(_Wire):
    """One refused row of an import."""

    line: int = Field(ge=1, description="Line of the body (the CSV header is line 1).")
    reason: str = Field(description="Why the row was refused and what is accepted.")


class ImportRefusedBody(ErrorEnvelope):
    """An import refused whole (`import_refused`): the first bad rows by line, and how many in all."""

    rows: list[BadRow] = Field(max_length=100, description="The first (at most 100) bad rows.")
    total: int = Field(ge=1, description="How many rows were bad in all.")


class NotReady(ErrorEnvelope):
    """`/readyz` when the store cannot serve: the error envelope (code `unavailable`) and the probe's
    own `status` and `reason`."""

    status: Literal["unavailable"]
    reason: str = Field(description="Why the server is not ready.")


class TokenResponse(_Wire):
    """A JWT issued for the API key that was sent (RFC 6749 section 5.1 names)."""

    access_token: str = Field(description="The JWT (HS256), to send as 'Authorization: Bearer' or '?token='.")
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 - the OAuth token type, not a secret
    expires_in: int = Field(
        ge=1, description="Seconds until it expires (3600, or less when the key expires sooner)."
    )


class IngestReport(_Wire):
    """What an accepted ingest request changed, in one transaction."""

    success: Literal[True]
    rows: int = Field(ge=0, description="Rows read from the body.")
    users_inserted: int = Field(ge=0)
    users_updated: int = Field(ge=0)
    trades_inserted: int = Field(ge=0)
    trades_present: int = Field(ge=0, description="Trades whose trade_id was already stored (unchanged).")
    data_version: int = Field(ge=0, description="The store's data version after the import.")
    seconds: float = Field(ge=0, description="Time the request took on the server.")


class Alive(_Wire):
    """`/healthz`: the process serves requests."""

    status: Literal["ok"]


class Ready(_Wire):
    """`/readyz`: the store answers and its schema is the one this server needs."""

    status: Literal["ready"]
    schema_version: int = Field(ge=1)
