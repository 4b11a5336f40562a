"""Settings from command-line flags and CYMETICA_* environment variables, in one place."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Final
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from cymetica_mcp.errors import AnalyticsError
from cymetica_mcp.windows import parse_instant

ENV_PREFIX: Final = "CYMETICA_"
LOG_LEVELS: Final = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
FLAGS: Final = frozenset({"db", "log_level"})
"""The settings that also have a command-line flag."""


class Settings(BaseModel):
    """Every setting of cymetica-mcp. Environment: CYMETICA_<NAME>; flags override the environment."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    db: str = Field(
        default="cymetica.db",
        description=(
            "The store: a SQLite file's path, or a PostgreSQL URL postgresql://user[:password]@host:port/db"
            " (CYMETICA_DB, --db)."
        ),
        repr=False,
    )
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

    @property
    def store_shown(self) -> str:
        """`db` as messages and logs may show it: a PostgreSQL URL without its password."""
        return shown(self.db)

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        if value.upper() not in LOG_LEVELS:
            raise ValueError(f"must be one of {', '.join(LOG_LEVELS)}")
        return value.upper()


def shown(db: str) -> str:
    """A store's location without a password (`postgresql://user:secret@host/db` -> `postgresql://user@host/db`)."""
    parts = urlsplit(db)
    if parts.scheme not in ("postgresql", "postgres"):
        return db
    where = parts.netloc.rpartition("@")
    user = where[0].partition(":")[0]
    query = "&".join(p for p in parts.query.split("&") if p and not p.lower().startswith("password="))
    netloc = f"{user}@{where[2]}" if where[1] else where[2]
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


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
    try:
        return Settings.model_validate(values)
    except ValidationError as exc:  # names the setting, never echoes its value (it may be a secret)
        problems = "; ".join(_problem(error["loc"], error["msg"]) for error in exc.errors())
        raise AnalyticsError("invalid_argument", f"bad setting: {problems}") from None


def _problem(loc: tuple[int | str, ...], message: str) -> str:
    name = str(loc[0]) if loc else "?"
    flag = f" or --{name.replace('_', '-')}" if name in FLAGS else ""
    return f"{ENV_PREFIX}{name.upper()}{flag}: {message.removeprefix('Value error, ')}"


def parse_now(text: str) -> int:
    """An ISO 8601 instant with an offset, as UTC seconds, or `invalid_as_of`."""
    try:
        return parse_instant(text)
    except ValueError as exc:
        raise AnalyticsError(
            "invalid_as_of", f"{exc}; accepted: an ISO 8601 UTC time such as 2026-03-20T12:34:56Z"
        ) from None
