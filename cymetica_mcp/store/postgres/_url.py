"""Telling a PostgreSQL location from a SQLite one, without importing the driver."""

from __future__ import annotations

from typing import Final

SCHEMES: Final = ("postgresql://", "postgres://")


def is_postgres(location: str) -> bool:
    """Whether `location` names a PostgreSQL database (a `postgresql://` or `postgres://` URL)."""
    return location.startswith(SCHEMES)
