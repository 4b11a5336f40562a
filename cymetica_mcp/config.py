"""Settings from command-line flags and CYMETICA_* environment variables, in one place."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Final

from pydantic import BaseModel, ConfigDict, Field

from cymetica_mcp.errors import AnalyticsError
from cymetica_mcp.windows import parse_instant

ENV_PREFIX: Final = "CYMETICA_"


class Settings(BaseModel):
    """Every setting of cymetica-mcp. Environment: CYMETICA_<NAME>; flags override the environment."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    db: Path = Field(default=Path("cymetica.db"), description="The SQLite store file (CYMETICA_DB, --db).")
    log_level: str = Field(
        default="INFO", description="Log level for stderr logs (CYMETICA_LOG_LEVEL, --log-level)."
    )
    now: int | None = Field(
        default=None,
        description="Fixed evaluation instant in UTC seconds (CYMETICA_NOW, ISO 8601); default: the clock.",
    )
    cache_seconds: float = Field(
        default=1.0,
        ge=0,
        description="Longest a cached live dashboard may be served (CYMETICA_CACHE_SECONDS).",
    )
    api_key: str | None = Field(
        default=None, description="The stdio MCP server's API key (CYMETICA_API_KEY).", repr=False
    )
    jwt_secret: str | None = Field(
        default=None,
        description="HS256 secret for issued JWTs, >= 32 bytes (CYMETICA_JWT_SECRET).",
        repr=False,
    )


def load_settings(env: Mapping[str, str] | None = None, **overrides: object) -> Settings:
    """Settings from the environment (default os.environ), with non-None `overrides` on top."""
    source = os.environ if env is None else env
    values: dict[str, object] = {}
    for name in Settings.model_fields:
        raw = source.get(ENV_PREFIX + name.upper())
        if raw not in (None, ""):
            values[name] = raw
    if isinstance(values.get("now"), str):
        values["now"] = parse_now(str(values["now"]))
    values.update({k: v for k, v in overrides.items() if v is not None})
    return Settings.model_validate(values)


def parse_now(text: str) -> int:
    """An ISO 8601 instant with an offset, as UTC seconds, or `invalid_as_of`."""
    try:
        return parse_instant(text)
    except ValueError as exc:
        raise AnalyticsError(
            "invalid_as_of", f"{exc}; accepted: an ISO 8601 UTC time such as 2026-03-20T12:34:56Z"
        ) from None
