"""The recheck: every dashboard a client received against the engine's at that data version.

The imports of the run are replayed, in the order the server answered them, into a copy of the store
as it was before the server started; each replayed import must land on the data version the server
answered for it. At each version some client saw, a fresh engine (clock fixed at the run's now, index
built from scratch, so none of the server's incremental state is shared) computes the dashboards
seen at it, and each must equal, as JSON, the one content recorded for its (filter, period, version).
"""

from __future__ import annotations

import json
import tempfile
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from benchmarks.soak._load import Imported
from benchmarks.soak._record import Recorder, canonical, digest
from cymetica_mcp.engine import open_engine
from cymetica_mcp.ingest import import_files
from cymetica_mcp.models import Filter, Period
from cymetica_mcp.store import SQLiteStore

MISMATCHES_KEPT: Final = 10


@dataclass
class Verification:
    """What the recheck found."""

    versions_checked: int = 0
    dashboards_checked: int = 0
    """Distinct (filter, period, version) compared with the engine."""
    deliveries_checked: int = 0
    """Dashboards received by clients, all of them covered by those comparisons."""
    problems: list[str] = field(default_factory=list)
    problem_count: int = 0

    def problem(self, text: str) -> None:
        self.problem_count += 1
        if len(self.problems) < MISMATCHES_KEPT:
            self.problems.append(text)


def first_difference(got: Any, want: Any, path: str = "") -> str:
    """Where two JSON values first differ, e.g. `metrics.active_users.value: 231 != 232`."""
    if isinstance(got, dict) and isinstance(want, dict):
        for name in sorted(set(got) | set(want)):
            if got.get(name) != want.get(name):
                return first_difference(got.get(name), want.get(name), f"{path}.{name}" if path else name)
    if isinstance(got, list) and isinstance(want, list) and len(got) == len(want):
        for i, (a, b) in enumerate(zip(got, want, strict=True)):
            if a != b:
                return first_difference(a, b, f"{path}[{i}]")
    return f"{path or '(whole)'}: {json.dumps(got)[:120]} != {json.dumps(want)[:120]}"


def verify(base: Path, imports: list[Imported], now: int, recorder: Recorder, folder: Path) -> Verification:
    """Replay `imports` into a copy of `base` and compare every recorded dashboard with the engine's."""
    result = Verification()
    wanted: dict[int, list[tuple[str, str]]] = defaultdict(list)
    for filter, period, version in recorder.dashboards:
        wanted[version].append((filter, period))
    SQLiteStore(base).backup(folder / "replay.db")
    store = SQLiteStore(folder / "replay.db")
    version = store.data_version()
    reached = {version}
    _check(store, version, wanted.get(version, []), now, recorder, result)
    with tempfile.TemporaryDirectory(dir=folder) as scratch:
        for number, item in enumerate(imports):
            path = Path(scratch) / f"{number}.jsonl"
            path.write_text(item.body, encoding="utf-8")
            if item.what == "users":
                report = import_files(store, users=path)
            else:
                report = import_files(store, trades=path)
            path.unlink()
            if report.data_version != item.version:
                result.problem(
                    f"the replay diverged at import {number} ({item.what}): the server answered data "
                    f"version {item.version}, the replay reached {report.data_version}"
                )
                return result
            if report.data_version != version:
                version = report.data_version
                reached.add(version)
                _check(store, version, wanted.get(version, []), now, recorder, result)
    for never in sorted(set(wanted) - reached):
        result.problem(f"clients received dashboards of data version {never}, which no import produced")
    return result


def _check(
    store: SQLiteStore,
    version: int,
    pairs: list[tuple[str, str]],
    now: int,
    recorder: Recorder,
    result: Verification,
) -> None:
    """Compare what clients received at `version` with a fresh engine's dashboards."""
    if not pairs:
        return
    engine = open_engine(store, now=now)
    try:
        result.versions_checked += 1
        for filter, period in pairs:
            computed = engine.result(Filter(filter), Period(period), now)
            if computed.data_version != version:
                result.problem(f"the replay's engine is at version {computed.data_version}, not {version}")
                continue
            expected = canonical(json.loads(json.dumps(computed.dashboard.to_wire())))
            contents = recorder.dashboards[(filter, period, version)]
            result.dashboards_checked += 1
            for name, content in contents.items():
                result.deliveries_checked += content.doors.total()
                if name != digest(expected):
                    doors = ", ".join(f"{door} x{n}" for door, n in sorted(content.doors.items()))
                    result.problem(
                        f"{filter}/{period} at data version {version} ({doors}) differs from the engine's: "
                        + first_difference(json.loads(content.text), json.loads(expected))
                    )
    finally:
        engine.close()
