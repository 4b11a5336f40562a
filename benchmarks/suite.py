"""The state of one benchmark run, shared by its parts, and the helper that runs a probe process."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from benchmarks.data import Dataset
from benchmarks.reference_duckdb import differences
from benchmarks.report import Row

ROOT: Final = Path(__file__).resolve().parent.parent
"""The repository: the working directory of every process the benchmark starts."""


@dataclass
class Run:
    """The state of one benchmark run: its dataset, the rows so far and the raw figures behind them."""

    size: str
    data: Dataset
    log: Callable[[str], None]
    order: str = "ts"
    rows: list[Row] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    differences: list[str] = field(default_factory=list)

    def add(self, row: Row) -> None:
        """Record a row and say it at once."""
        self.rows.append(row)
        self.log(f"  -> {row.what}: {row.measured if row.measured is not None else row.note}")

    def compare(self, label: str, engine: dict[str, Any], reference: dict[str, Any]) -> None:
        """Record every field where the engine's figures differ from the reference's."""
        for difference in differences(engine, reference):
            self.differences.append(f"{label}: {difference}")


def probe(*args: str) -> dict[str, Any]:
    """Run `python -m benchmarks.probe ARGS` in a fresh process; its one JSON line."""
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.probe", *args],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    if done.returncode != 0:
        raise RuntimeError(f"probe {args[0]} failed:\n{done.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result
