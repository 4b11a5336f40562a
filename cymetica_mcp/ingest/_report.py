"""What an import says back: what it changed, or every bad row (by file and line) and why."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from cymetica_mcp.errors import AnalyticsError

MAX_LISTED_ERRORS: Final = 100


@dataclass(frozen=True, slots=True)
class RowError:
    """One bad row: the file, its line number (a CSV header is line 1) and why it was refused."""

    file: str
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.reason}"


@dataclass(slots=True)
class Errors:
    """The bad rows of one import: the first MAX_LISTED_ERRORS of them, and how many in all."""

    listed: list[RowError] = field(default_factory=list)
    total: int = 0

    def add(self, file: str, line: int, reason: str) -> None:
        """Count a bad row, and list it while fewer than MAX_LISTED_ERRORS are."""
        self.total += 1
        if len(self.listed) < MAX_LISTED_ERRORS:
            self.listed.append(RowError(file, line, reason))


class ImportRefused(AnalyticsError):
    """The import was refused whole and nothing was written."""

    def __init__(self, errors: list[RowError], total: int) -> None:
        shown = "\n".join(f"  {e}" for e in errors)
        more = f"\n  ... and {total - len(errors)} more" if total > len(errors) else ""
        super().__init__(
            "import_refused",
            f"import refused: {total} bad row{'s' if total != 1 else ''}; the store is unchanged\n{shown}{more}",
        )
        self.errors = errors
        self.total = total


@dataclass(slots=True)
class ImportReport:
    """What an import changed and how fast it went."""

    users_inserted: int = 0
    users_updated: int = 0
    trades_inserted: int = 0
    trades_present: int = 0
    rows: int = 0
    seconds: float = 0.0
    data_version: int = 0

    @property
    def rate(self) -> float:
        """Rows per second."""
        return self.rows / self.seconds if self.seconds > 0 else 0.0
