"""The benchmark's rows: one per target of issue 6, printed as a table and written as JSON."""

from __future__ import annotations

import json
import os
import platform
import shutil
import sqlite3
import statistics
import subprocess
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True, slots=True)
class Row:
    """One target: what was measured, against which reference, and whether it meets the target.

    `ratio` is measured / reference when a reference applies. `passed` is None when the row is
    informational or was skipped (`note` says why).
    """

    key: str
    what: str
    measured: float | None
    unit: str
    reference: float | None = None
    reference_what: str = ""
    ratio: float | None = None
    target: str = ""
    passed: bool | None = None
    note: str = ""


def versus(
    key: str,
    what: str,
    measured: float,
    unit: str,
    reference: float,
    reference_what: str,
    limit: float,
    *,
    at_least: bool = False,
    note: str = "",
) -> Row:
    """A row judged by the ratio measured / reference: <= limit (or >= limit when `at_least`)."""
    ratio = measured / reference if reference else float("inf")
    passed = ratio >= limit if at_least else ratio <= limit
    target = f"{'>=' if at_least else '<='} {limit:g} x ref"
    return Row(key, what, measured, unit, reference, reference_what, ratio, target, passed, note)


def absolute(
    key: str,
    what: str,
    measured: float,
    unit: str,
    limit: float,
    *,
    at_least: bool = False,
    reference: float | None = None,
    reference_what: str = "",
    note: str = "",
) -> Row:
    """A row judged by the measured value itself: <= limit (or >= limit when `at_least`)."""
    ratio = measured / reference if reference else None
    passed = measured >= limit if at_least else measured <= limit
    target = f"{'>=' if at_least else '<='} {limit:,g} {unit}".rstrip()
    return Row(key, what, measured, unit, reference, reference_what, ratio, target, passed, note)


def skipped(key: str, what: str, target: str, reason: str) -> Row:
    """A target this run could not measure, and why."""
    return Row(key, what, None, "", target=target, note=f"skipped: {reason}")


def failed(key: str, what: str, target: str, reason: str) -> Row:
    """A target whose measurement broke off, and why: it counts as missed."""
    return Row(key, what, None, "", target=target, passed=False, note=f"failed: {reason}")


def describe(exc: BaseException, limit: int = 2000) -> str:
    """An exception as one line for a failed row (a task group's single error unwrapped)."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return f"{type(exc).__name__}: {exc}"[:limit]


def info(key: str, what: str, measured: float, unit: str, note: str = "") -> Row:
    """A figure reported for diagnosis, without a target."""
    return Row(key, what, measured, unit, note=note)


def median(values: Sequence[float]) -> float:
    """The median of a non-empty sequence."""
    return float(statistics.median(values))


def _number(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit in ("rows/s", "req/s", "trades/s", "POSTs"):
        return f"{value:,.0f}"
    if unit == "MB":
        return f"{value:,.0f}"
    if abs(value) >= 100:
        return f"{value:,.1f}"
    if abs(value) >= 1:
        return f"{value:.2f}"
    return f"{value:.3f}"


def table(rows: Sequence[Row]) -> str:
    """The rows as an aligned text table (what, measured, reference, ratio, target, result)."""
    header = ("what", "measured", "reference", "ratio", "target", "result")
    lines: list[tuple[str, ...]] = [header]
    for row in rows:
        measured = (
            f"{_number(row.measured, row.unit)} {row.unit}".strip() if row.measured is not None else "-"
        )
        reference = (
            f"{_number(row.reference, row.unit)} {row.unit} {row.reference_what}".strip()
            if row.reference is not None
            else row.reference_what or "-"
        )
        ratio = f"{row.ratio:.3f}" if row.ratio is not None else "-"
        result = {True: "pass", False: "FAIL", None: "-"}[row.passed]
        lines.append((row.what, measured, reference, ratio, row.target or "-", result))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    out = []
    for n, line in enumerate(lines):
        out.append("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip())
        if n == 0:
            out.append("  ".join("-" * width for width in widths))
    notes = [f"  {row.what}: {row.note}" for row in rows if row.note]
    if notes:
        out.append("notes:")
        out.extend(notes)
    return "\n".join(out)


def machine() -> dict[str, Any]:
    """What the run ran on."""
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = 0.0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = int(line.split()[1]) / 1024 / 1024
    except OSError:
        pass
    versions: dict[str, str] = {
        "python": platform.python_version(),
        "sqlite (python)": sqlite3.sqlite_version,
    }
    for module in ("numpy", "duckdb", "starlette", "uvicorn", "mcp"):
        try:
            versions[module] = str(__import__(module).__version__)
        except (ImportError, AttributeError):
            continue
    cli = shutil.which("sqlite3")
    if cli:
        done = subprocess.run([cli, "--version"], capture_output=True, text=True, check=False)
        versions["sqlite3 cli"] = done.stdout.split(" ")[0]
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "memory_gb": round(memory, 1),
        "platform": platform.platform(),
        "versions": versions,
    }


def write_json(path: Path, payload: dict[str, Any], rows: Sequence[Row]) -> None:
    """Write the payload with the rows (as dicts) to `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    document = dict(payload, rows=[asdict(row) for row in rows])
    path.write_text(json.dumps(document, indent=2, default=_plain) + "\n")


def _plain(value: object) -> object:
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
