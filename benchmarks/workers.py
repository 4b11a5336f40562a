"""The workers curve: REST requests per second of `cymetica-mcp serve --workers N` for N = 1, 2, 4.

    python -m benchmarks.workers STORE      # one JSON line; the suite runs it after the door targets

Each N: the real command on 127.0.0.1 (clock fixed at the data's NOW, INFO logs and the access log
to a file as a deployment would have them, the per-key rate limit raised: it is policy, not speed),
then the same closed-loop load generator as the REST target (`benchmarks.load`, 16 keep-alive
connections, a process of its own) for 2 rounds of 4 s after a 1 s warm-up, on the cached 24h
dashboard. The generator shares the machine's cores with the workers, so on 2 cores the curve shows
what a second process buys when the client takes its share too. Target: 2 workers >= 1.3 x one.
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Final

import httpx

from benchmarks.doors import DASHBOARD, api_key, free_port, load
from benchmarks.report import Row, versus
from cymetica_mcp.windows import iso

ROOT: Final = Path(__file__).resolve().parent.parent
COUNTS: Final = (1, 2, 4)
ROUNDS: Final = 2
START_TIMEOUT: Final = 180.0
TARGET: Final = 1.3


def rate(store: Path, workers: int, key: str, now: int) -> dict[str, Any]:
    """The REST rate of `serve --workers N` over `store`."""
    port = free_port()
    log = store.with_name(f"workers-{workers}.log")
    command = [sys.executable, "-m", "cymetica_mcp", "--db", str(store), "serve", "--port", str(port)]
    command += ["--workers", str(workers), "--rate-limit", "1e9", "--rate-burst", str(10**9)]
    with log.open("ab") as out:
        server = subprocess.Popen(
            command,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            env={**os.environ, "CYMETICA_NOW": iso(now)},
        )
    try:
        deadline = time.monotonic() + START_TIMEOUT
        headers = {"Authorization": f"Bearer {key}"}
        while True:  # every worker computes the dashboard once; then the load reads it cached
            try:
                if (
                    httpx.get(f"http://127.0.0.1:{port}{DASHBOARD}", headers=headers, timeout=5).status_code
                    == 200
                ):
                    break
            except httpx.TransportError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"serve --workers {workers} did not answer: {log.read_text()[-2000:]}")
            time.sleep(0.2)
        rounds = [load(port, [f"Authorization: Bearer {key}"]) for _ in range(ROUNDS)]
        bad = [r["statuses"] for r in rounds if set(r["statuses"]) != {"200"}]
        if bad:
            raise RuntimeError(f"serve --workers {workers} answered other than 200: {bad}")
        return {"rps": statistics.median(r["rps"] for r in rounds), "rounds": rounds}
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def curve(store: Path, now: int) -> dict[int, dict[str, Any]]:
    """The rate for each worker count, on one key."""
    key = api_key(store, "benchmark-workers")
    return {n: rate(store, n, key, now) for n in COUNTS}


def rows(found: dict[int, dict[str, Any]]) -> list[Row]:
    """The curve as a row: 2 workers against one (the target), 4 in the note."""
    one, two, four = (found[n]["rps"] for n in COUNTS)
    return [
        versus(
            "workers_rest",
            "REST req/s, serve --workers 2 vs 1",
            two,
            "req/s",
            one,
            "(--workers 1)",
            TARGET,
            at_least=True,
            note=f"curve: 1 worker {one:,.0f}, 2 workers {two:,.0f}, 4 workers {four:,.0f} req/s "
            f"(4/1 = {four / one:.2f} x); 16 keep-alive connections, the load generator on the same cores",
        )
    ]


def main(argv: list[str]) -> int:
    from benchmarks.data import NOW

    print(json.dumps({str(n): figures["rps"] for n, figures in curve(Path(argv[0]), NOW).items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
