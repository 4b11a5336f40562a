"""Start-up: how long `cymetica-mcp serve` takes from launch to its first dashboard, and its memory.

    python -m benchmarks.startup STORE [--workers N]

Runs the real command (`cymetica-mcp --db COPY serve --port 0`, clock fixed at the data's NOW) on a
copy of STORE twice: first with no index kept beside the store (the server builds it from the rows
and keeps it), then again (the server maps the kept file). Each time: the seconds from launching the
process to the first `200` of `GET /api/v1/analytics/dashboard` (polled every 20 ms), then the nine
dashboards once, then the server's resident memory from /proc (VmRSS, split into anonymous and file
pages, and VmHWM, the peak). Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Final

import httpx

from benchmarks.data import NOW
from benchmarks.report import Row, absolute, info
from cymetica_mcp.windows import iso

ROOT: Final = Path(__file__).resolve().parent.parent
PAIRS: Final = [(f, p) for f in ("all", "humans", "agents") for p in ("24h", "7d", "30d")]


def memory(pid: int) -> dict[str, float]:
    """VmRSS, RssAnon, RssFile and VmHWM of a process, in MB (summed over its children too)."""
    found = {"VmRSS": 0.0, "RssAnon": 0.0, "RssFile": 0.0, "VmHWM": 0.0}
    for each in [pid, *children(pid)]:
        try:
            for line in Path(f"/proc/{each}/status").read_text().splitlines():
                name, _, value = line.partition(":")
                if name in found:
                    found[name] += int(value.split()[0]) / 1024
        except OSError:
            continue
    return {
        "rss_mb": found["VmRSS"],
        "anon_mb": found["RssAnon"],
        "file_mb": found["RssFile"],
        "peak_mb": found["VmHWM"],
    }


def children(pid: int) -> list[int]:
    """The process's direct children (a `--workers` supervisor's workers)."""
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(x) for x in text.split()]


def command(db: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "cymetica_mcp", "--db", str(db), *args]


def start(db: Path, key: str, workers: int) -> dict[str, Any]:
    """Launch a server, time its first dashboard, then the nine, then read its memory; stop it."""
    env = {**os.environ, "CYMETICA_NOW": iso(NOW), "CYMETICA_LOG_LEVEL": "WARNING"}
    args = ["serve", "--port", "0"] + (["--workers", str(workers)] if workers > 1 else [])
    began = time.perf_counter()
    server = subprocess.Popen(command(db, *args), cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        url = server.stdout.readline().split(" at ")[-1].strip()
        headers = {"Authorization": f"Bearer {key}"}
        with httpx.Client(base_url=url, headers=headers, timeout=600) as client:
            while True:
                try:
                    answer = client.get(
                        "/api/v1/analytics/dashboard", params={"filter": "all", "period": "24h"}
                    )
                except httpx.TransportError:
                    answer = None
                if answer is not None and answer.status_code == 200:
                    break
                if server.poll() is not None:
                    raise RuntimeError(f"the server exited with {server.returncode}")
                time.sleep(0.02)
            first = time.perf_counter() - began
            for f, p in PAIRS:
                client.get(
                    "/api/v1/analytics/dashboard", params={"filter": f, "period": p}
                ).raise_for_status()
            nine = time.perf_counter() - began - first
        return {"first_dashboard_seconds": first, "nine_more_seconds": nine, "memory": memory(server.pid)}
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=120)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def measure(store: Path, workers: int = 1) -> dict[str, Any]:
    """Both starts on a copy of `store` (the original is never touched)."""
    with tempfile.TemporaryDirectory(dir=store.parent, prefix="startup-") as scratch:
        db = Path(scratch) / "store.db"
        shutil.copyfile(store, db)
        key = subprocess.run(
            command(db, "keys", "create", "--name", "startup"),
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        cold = start(db, key, workers)
        kept = db.with_name(db.name + ".index")
        kept_bytes = kept.stat().st_size if kept.exists() else 0
        ready = start(db, key, workers)
        return {
            "from_rows": cold,
            "from_kept_index": ready,
            "kept_index_bytes": kept_bytes,
            "workers": workers,
        }


FIRST_DASHBOARD_SECONDS: Final = 15.0
PEAK_OVER_STEADY: Final = 1.5
BYTES_PER_TRADE: Final = 26.0
BYTES_PER_TRADE_AT: Final = 100_000_000
"""The memory-per-trade target holds from this many trades (issue 16: at 100M)."""


def rows(found: dict[str, Any], trades: int) -> list[Row]:
    """Issue 16's start-up targets: first dashboard after launch, load peak against steady RSS, and
    steady memory per trade (all from the kept index), plus the start from the rows for comparison."""
    rows_start, kept_start = found["from_rows"], found["from_kept_index"]
    kept_memory = kept_start["memory"]
    steady = kept_memory["rss_mb"]
    return [
        absolute(
            "startup_first_dashboard",
            "serve: launch to first dashboard (kept index)",
            kept_start["first_dashboard_seconds"],
            "s",
            FIRST_DASHBOARD_SECONDS,
            note=f"from the rows (no kept index): {rows_start['first_dashboard_seconds']:.1f} s; "
            f"kept index file {found['kept_index_bytes'] / 1e6:,.0f} MB",
        ),
        absolute(
            "startup_peak",
            "serve: load peak / steady RSS (kept index)",
            kept_memory["peak_mb"] / steady,
            "x",
            PEAK_OVER_STEADY,
            note=f"peak {kept_memory['peak_mb']:.0f} MB, steady {steady:.0f} MB after the 9 dashboards "
            f"({kept_memory['anon_mb']:.0f} MB anonymous, {kept_memory['file_mb']:.0f} MB of the mapped file); "
            f"from the rows: peak {rows_start['memory']['peak_mb']:.0f} MB, steady {rows_start['memory']['rss_mb']:.0f} MB",
        ),
        absolute(
            "steady_bytes_per_trade",
            "serve: steady RSS per trade (kept index)",
            steady * 1024 * 1024 / trades,
            "B",
            BYTES_PER_TRADE,
            note=f"steady RSS {steady:.0f} MiB over {trades:,} trades",
        )
        if trades >= BYTES_PER_TRADE_AT
        else info(
            "steady_bytes_per_trade",
            "serve: steady RSS per trade (kept index)",
            steady * 1024 * 1024 / trades,
            "B",
            note=f"target <= {BYTES_PER_TRADE:g} B at 100M trades (the interpreter's ~60 MB weighs more at 10M)",
        ),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Server start-up time and memory, from the rows and from the kept index."
    )
    parser.add_argument("store", type=Path)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args(argv)
    print(json.dumps(measure(args.store, args.workers)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
