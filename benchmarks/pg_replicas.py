"""Replica catch-up: from an import's commit to every replica pushing it, with 2 replicas and with 4.

Real `cymetica-mcp serve` processes on one PostgreSQL database (the clock fixed at the data set's NOW,
no periodic push: every `analytics_update` is one an import caused), each with a WebSocket client of
`filter=all&period=24h` in this process. An import of 5 new trades (a few seconds before NOW, so the
24h figures change) runs in this process through `import_files`, as `cymetica-mcp import` does; its
commit is taken as the moment it returns. Each replica's lag is the time from then to its client
receiving an update whose data_version is the import's (none within 5 s counts as a miss: slower
than any). Imports are spaced 1.1 s after the last update (a client gets at most one a second).

Targets, for each replica count: p50 <= 250 ms and worst <= 1 s over every (import, replica).
"""

from __future__ import annotations

import csv
import json
import math
import statistics
import threading
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any, Final

from benchmarks.pg_serve import Serving, api_key, close, serving
from benchmarks.report import Row, absolute
from cymetica_mcp.windows import iso

COUNTS: Final = (2, 4)
IMPORTS: Final = 15
TRADES_EACH: Final = 5
MISS_AFTER: Final = 5.0
SPACING: Final = 1.1
P50_LIMIT: Final = 250.0
WORST_LIMIT: Final = 1000.0


class Listener:
    """A WebSocket client of one replica: every analytics_update's arrival and data version."""

    def __init__(self, port: int, key: str) -> None:
        from websockets.sync.client import connect

        self.ws = connect(
            f"ws://127.0.0.1:{port}/ws/analytics?token={key}",
            max_size=2**24,
            open_timeout=120,
            ping_interval=None,
        )
        self.ws.send(json.dumps({"type": "set_preferences", "filter": "all", "period": "24h"}))
        self.seen: list[tuple[float, int]] = []
        self.changed = threading.Condition()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        try:
            while True:
                text = self.ws.recv()
                at = time.perf_counter()
                message = json.loads(text)
                if message.get("type") == "analytics_update":
                    with self.changed:
                        self.seen.append((at, int(message["data_version"])))
                        self.changed.notify_all()
        except Exception:  # closed: the measurement is over
            return

    def arrival(self, version: int, timeout: float) -> float | None:
        """When the first update showing `version` (or later) arrived; None if none within `timeout`."""
        deadline = time.monotonic() + timeout
        with self.changed:
            while True:
                for at, seen in self.seen:
                    if seen >= version:
                        return at
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self.changed.wait(left)

    def last(self) -> float:
        with self.changed:
            return self.seen[-1][0] if self.seen else 0.0

    def close(self) -> None:
        self.ws.close()


def trades_file(folder: Path, users_csv: Path, round_: str, n: int, now: int) -> Path:
    """`TRADES_EACH` new trades of the data set's first user, 5 to 10 s before NOW."""
    with users_csv.open(newline="") as f:
        user = next(csv.DictReader(f))["user_id"]
    path = folder / f"catch-up-{round_}-{n}.csv"
    lines = [f"c{round_}-{n}-{i},{user},{iso(now - 5 - i)},{1 + i}.25,0.5\n" for i in range(TRADES_EACH)]
    path.write_text("trade_id,user_id,ts,volume_usdc,pnl_usdc\n" + "".join(lines))
    return path


def lags(
    url: str, listeners: list[Listener], folder: Path, users_csv: Path, now: int, label: str
) -> list[float]:
    """`IMPORTS` imports, each waited for on every listener: every lag in seconds (inf for a miss)."""
    from cymetica_mcp.ingest import import_files
    from cymetica_mcp.store import open_store

    store = open_store(url)
    found: list[float] = []
    try:
        for n in range(IMPORTS):
            ready = max(listener.last() for listener in listeners) + SPACING
            time.sleep(max(0.0, ready - time.perf_counter()))
            path = trades_file(folder, users_csv, label, n, now)
            report = import_files(store, None, path)
            committed = time.perf_counter()
            path.unlink()
            for listener in listeners:
                at = listener.arrival(report.data_version, MISS_AFTER)
                found.append(math.inf if at is None else max(0.0, at - committed))
    finally:
        close(store)
    return found


def measure(url: str, folder: Path, users_csv: Path, now: int, log: Any) -> tuple[list[Row], dict[str, Any]]:
    """Start replicas up to each count, connect a listener to each, time the imports."""
    key = api_key(url, "benchmark-replicas")
    rows: list[Row] = []
    details: dict[str, Any] = {}
    with ExitStack() as stack:
        replicas: list[Serving] = []
        listeners: list[Listener] = []
        for count in COUNTS:
            while len(replicas) < count:
                replica = stack.enter_context(serving(url, f"replica-{len(replicas) + 1}", key, folder, now))
                replicas.append(replica)
                listener = Listener(replica.port, key)
                stack.callback(listener.close)
                if listener.arrival(0, 120) is None:
                    raise RuntimeError(f"replica {len(replicas)}: no first update within 120 s")
                listeners.append(listener)
            log(
                f"  {count} replicas serving (start-up {', '.join(f'{r.startup:.1f}' for r in replicas)} s); {IMPORTS} imports ..."
            )
            found = lags(url, listeners, folder, users_csv, now, f"r{count}")
            p50, worst = statistics.median(found) * 1e3, max(found) * 1e3
            missed = sum(math.isinf(x) for x in found)
            details[str(count)] = {
                "lags_ms": [x * 1e3 if math.isfinite(x) else None for x in found],
                "missed": missed,
            }
            log(f"  {count} replicas: p50 {p50:.0f} ms, worst {worst:.0f} ms, {missed} missed")
            note = (
                f"{IMPORTS} imports of {TRADES_EACH} trades x {count} replicas, each replica's WebSocket push "
                f"of the import's data_version, from the import's commit"
                + (f"; {missed} not pushed within {MISS_AFTER:g} s" if missed else "")
            )
            rows.append(
                absolute(
                    f"pg_catch_up_{count}",
                    f"replica catch-up p50, {count} replicas",
                    p50,
                    "ms",
                    P50_LIMIT,
                    note=note,
                )
            )
            rows.append(
                absolute(
                    f"pg_catch_up_{count}_worst",
                    f"replica catch-up worst, {count} replicas",
                    worst,
                    "ms",
                    WORST_LIMIT,
                )
            )
    return rows, details
