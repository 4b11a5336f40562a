"""Dashboards served from PostgreSQL against the same rows served from SQLite, two real servers side by side.

Two `cymetica-mcp serve` processes, one over the SQLite store of the data set (its kept index built
first, as a deployment would), one over the PostgreSQL database our import filled (each replica builds
its index from the database: there is no kept index on PostgreSQL), both with the clock fixed at the
data set's NOW, the per-key rate limit raised (policy, not speed) and the default cache age (1 s):

- start-up: from the process start to the first dashboard answered (information);
- cold: each round asks both servers for the nine dashboards, alternating which goes first, more
  than the cache age after the previous round ended, so every answer is computed again; p50 of each;
- cached: the nine again and again, back to back (the cache age passes about once a second: p50 is the
  cached answer);
- after an import: 10,000 new trades (the data set's extra.csv, new ids each round) imported in this
  process into each store in turn; the time from the import's return (its commit) to the first REST
  answer whose X-Data-Version shows it, polling every 5 ms: the watch, the index refresh and one
  cold dashboard. Median of the rounds.

Targets: cold and after an import within 1.2 x SQLite's, cached within 1.1 x ("as fast", with room for
the noise of a shared machine).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import httpx

from benchmarks.doors import free_port, index_rebuild
from benchmarks.report import Row, info, versus
from benchmarks.suite import ROOT
from cymetica_mcp.windows import iso

PAIRS: Final = [(f, p) for f in ("all", "humans", "agents") for p in ("24h", "7d", "30d")]
PATH: Final = "/api/v1/analytics/dashboard"
COLD_ROUNDS: Final = 8
CACHED_ROUNDS: Final = 60
AFTER_IMPORT_ROUNDS: Final = 3
CACHE_SECONDS: Final = 1.0
START_TIMEOUT: Final = 900.0
COLD_LIMIT: Final = 1.2
CACHED_LIMIT: Final = 1.1


@dataclass(frozen=True, slots=True)
class Serving:
    """A running `serve` process: its port, start-up time and a keep-alive client with the key."""

    label: str
    port: int
    startup: float
    client: httpx.Client
    process: subprocess.Popen[bytes]

    def dashboard(self, filter: str, period: str) -> httpx.Response:
        answer = self.client.get(PATH, params={"filter": filter, "period": period})
        if answer.status_code != 200:
            raise RuntimeError(f"{self.label}: dashboard answered {answer.status_code}: {answer.text[:300]}")
        return answer


def api_key(db: str, name: str) -> str:
    """A new read key in the store at `db` (a path or a URL): its secret."""
    from cymetica_mcp.auth import KeyRing
    from cymetica_mcp.models import Scope
    from cymetica_mcp.store import open_store

    store = open_store(db)
    try:
        return KeyRing(store).create(name, (Scope.READ,))[1]
    finally:
        close(store)


def close(store: object) -> None:
    """Close a store opened here (its pool and listening thread on PostgreSQL)."""
    closing = getattr(store, "close", None)
    if closing is not None:
        closing()


def environment(db: str, now: int) -> dict[str, str]:
    """A server's environment: the store by CYMETICA_DB (a password stays off the process list), the
    clock fixed at `now`."""
    return {**os.environ, "CYMETICA_DB": db, "CYMETICA_NOW": iso(now), "PYTHONPATH": str(ROOT)}


@contextmanager
def serving(db: str, label: str, key: str, folder: Path, now: int) -> Iterator[Serving]:
    """`cymetica-mcp serve` over `db` until the block ends; yields once it answers a dashboard."""
    port = free_port()
    log = folder / f"serve-{label}.log"
    command = [sys.executable, "-m", "cymetica_mcp", "serve", "--port", str(port), "--push-interval", "3600"]
    command += ["--rate-limit", "1e9", "--rate-burst", str(10**9)]
    started = time.monotonic()
    with log.open("ab") as out:
        process = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT, env=environment(db, now)
        )
    client = httpx.Client(
        base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {key}"}, timeout=60
    )
    try:
        deadline = started + START_TIMEOUT
        while True:
            try:
                if client.get(PATH).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"serve ({label}) did not answer: {log.read_text(errors='replace')[-2000:]}"
                )
            time.sleep(0.05)
        yield Serving(label, port, time.monotonic() - started, client, process)
    finally:
        client.close()
        process.terminate()
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def cold(sides: list[Serving]) -> dict[str, list[float]]:
    """Each round: the nine dashboards of every side, alternating which side goes first, the round
    begun more than the cache age after the previous one ended (every answer computed)."""
    times: dict[str, list[float]] = {side.label: [] for side in sides}
    for n in range(COLD_ROUNDS):
        time.sleep(CACHE_SECONDS + 0.1)
        for i, (f, p) in enumerate(PAIRS):
            for side in sides if (n + i) % 2 == 0 else sides[::-1]:
                started = time.perf_counter()
                side.dashboard(f, p)
                times[side.label].append(time.perf_counter() - started)
    return times


def cached(sides: list[Serving]) -> dict[str, list[float]]:
    """The nine dashboards again and again on every side, alternating, after one warm-up round."""
    times: dict[str, list[float]] = {side.label: [] for side in sides}
    for n in range(CACHED_ROUNDS + 1):
        for i, (f, p) in enumerate(PAIRS):
            for side in sides if (n + i) % 2 == 0 else sides[::-1]:
                started = time.perf_counter()
                side.dashboard(f, p)
                if n:
                    times[side.label].append(time.perf_counter() - started)
    return times


def after_import(side: Serving, db: str, trades: Path) -> dict[str, Any]:
    """Import `trades` into `db` in this process; the time from its return to the first answer of
    `side` whose X-Data-Version shows it."""
    from cymetica_mcp.ingest import import_files
    from cymetica_mcp.store import open_store

    store = open_store(db)
    try:
        report = import_files(store, None, trades)
    finally:
        committed = time.perf_counter()
        close(store)
    polls = 0
    while True:
        polls += 1
        answer = side.dashboard("all", "24h")
        if int(answer.headers["X-Data-Version"]) >= report.data_version:
            seconds = time.perf_counter() - committed
            break
        if time.perf_counter() - committed > 60:
            raise RuntimeError(f"{side.label}: the import did not show within 60 s")
        time.sleep(0.005)
    return {
        "seconds": seconds,
        "import_seconds": report.seconds,
        "trades": report.trades_inserted,
        "polls": polls,
    }


def extra_rounds(extra: Path, folder: Path) -> list[Path]:
    """Copies of extra.csv with new trade ids, one a round (each import adds 10,000 new trades)."""
    text = extra.read_text()
    files = []
    for n in range(AFTER_IMPORT_ROUNDS):
        path = folder / f"extra-{n}.csv"
        path.write_text(text.replace("\nx", f"\n{'yzw'[n % 3]}{n}"))
        files.append(path)
    return files


def measure(
    sqlite_store: Path, pg_url: str, extra: Path, folder: Path, now: int, log: Any
) -> tuple[list[Row], dict[str, Any]]:
    """The dashboards part: both servers side by side, cold, cached and after an import."""
    index_rebuild(sqlite_store, now)
    sqlite_key, pg_key = api_key(str(sqlite_store), "benchmark-pg-sqlite"), api_key(pg_url, "benchmark-pg")
    details: dict[str, Any] = {}
    with (
        serving(str(sqlite_store), "sqlite", sqlite_key, folder, now) as lite,
        serving(pg_url, "postgresql", pg_key, folder, now) as pg,
    ):
        log(
            f"  start-up: SQLite (kept index) {lite.startup:.1f} s, PostgreSQL (index from the database) {pg.startup:.1f} s"
        )
        sides = [lite, pg]
        for f, p in PAIRS:  # the same figures on both (the index is the same)
            mine, theirs = pg.dashboard(f, p).json(), lite.dashboard(f, p).json()
            if mine.get("metrics") != theirs.get("metrics"):
                raise RuntimeError(f"{f}/{p}: the PostgreSQL server's figures differ from SQLite's")
        cold_times = cold(sides)
        cached_times = cached(sides)
        rounds: dict[str, list[dict[str, Any]]] = {"sqlite": [], "postgresql": []}
        for n, trades in enumerate(extra_rounds(extra, folder)):
            order = [(lite, str(sqlite_store)), (pg, pg_url)]
            for side, db in order if n % 2 == 0 else order[::-1]:
                rounds[side.label].append(after_import(side, db, trades))
        for trades in folder.glob("extra-*.csv"):
            trades.unlink()
        startup = {side.label: side.startup for side in sides}
    p50 = {
        name: {label: statistics.median(times) * 1e3 for label, times in found.items()}
        for name, found in (("cold", cold_times), ("cached", cached_times))
    }
    fresh = {label: statistics.median(r["seconds"] for r in found) * 1e3 for label, found in rounds.items()}
    details.update(
        startup_seconds=startup,
        cold_ms={k: [t * 1e3 for t in v] for k, v in cold_times.items()},
        cached_p50_ms=p50["cached"],
        after_import=rounds,
    )
    log(
        f"  cold p50: SQLite {p50['cold']['sqlite']:.2f} ms, PostgreSQL {p50['cold']['postgresql']:.2f} ms; "
        f"cached p50: {p50['cached']['sqlite']:.2f} / {p50['cached']['postgresql']:.2f} ms; after an import: "
        f"{fresh['sqlite']:.0f} / {fresh['postgresql']:.0f} ms"
    )
    rows = [
        info(
            "pg_startup",
            "serve start-up, PostgreSQL (index from the database)",
            startup["postgresql"],
            "s",
            note=f"SQLite with its kept index: {startup['sqlite']:.1f} s; to the first dashboard answered",
        ),
        versus(
            "pg_cold",
            "cold REST dashboard p50, PostgreSQL vs SQLite",
            p50["cold"]["postgresql"],
            "ms",
            p50["cold"]["sqlite"],
            "(SQLite server)",
            COLD_LIMIT,
            note=f"{COLD_ROUNDS} rounds of the 9 dashboards on each server, alternating, each round more "
            f"than the cache age ({CACHE_SECONDS:g} s) after the last",
        ),
        versus(
            "pg_cached",
            "cached REST dashboard p50, PostgreSQL vs SQLite",
            p50["cached"]["postgresql"],
            "ms",
            p50["cached"]["sqlite"],
            "(SQLite server)",
            CACHED_LIMIT,
            note=f"{CACHED_ROUNDS} rounds of the 9 on each server, alternating, back to back",
        ),
        versus(
            "pg_after_import",
            "after +10k trades: commit -> REST shows it",
            fresh["postgresql"],
            "ms",
            fresh["sqlite"],
            "(SQLite server)",
            COLD_LIMIT,
            note=f"median of {AFTER_IMPORT_ROUNDS} imports into each store, alternating; each: watch, index "
            "refresh and one cold dashboard, polled every 5 ms",
        ),
    ]
    return rows, details
