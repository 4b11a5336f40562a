"""The workers curve: REST requests per second of `cymetica-mcp serve --workers N` for N = 1, 2, 4.

    python -m benchmarks.workers STORE      # one JSON line; the suite runs it after the door targets

Each N: the real command on 127.0.0.1 (clock fixed at the data's NOW, INFO logs and the access log
to a file as a deployment would have them, the per-key rate limit raised: it is policy, not speed),
then a closed-loop load generator (`wrk` where installed, else the REST target's own
`benchmarks.load`; 16 keep-alive connections, a process of its own) for 3 rounds of 4 s after a 1 s warm-up each, on the cached 24h
dashboard. The three servers run side by side and their rounds alternate (1, 2, 4, 1, 2, 4, ...), so
a busy neighbour on a shared machine slows each worker count alike; each count's figure is the
median of its rounds. The generator shares the machine's cores with the workers, so on 2 cores the curve shows
what a second process buys when the client takes its share too. Target: 2 workers >= 1.3 x one.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any, Final

import httpx

from benchmarks.doors import (
    DASHBOARD,
    REST_CONNECTIONS,
    REST_SECONDS,
    api_key,
    free_port,
    index_rebuild,
    load,
)
from benchmarks.report import Row, versus
from cymetica_mcp.windows import iso

ROOT: Final = Path(__file__).resolve().parent.parent
COUNTS: Final = (1, 2, 4)
ROUNDS: Final = 3
START_TIMEOUT: Final = 180.0
TARGET: Final = 1.3


@contextmanager
def running(store: Path, workers: int, key: str, now: int) -> Iterator[int]:
    """`serve --workers N` over `store` until the block ends; yields its port once it answers."""
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
        while True:
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
        yield port
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def generator() -> str:
    """The load generator: `wrk` where installed (a C client costing a fraction of what the server
    spends on a request, so that the workers, not the client, are what is measured), else the
    suite's own Python one (`benchmarks.load`), whose share of the 2 cores caps the curve."""
    return "wrk" if shutil.which("wrk") else "benchmarks.load"


def wrk(port: int, key: str) -> dict[str, Any]:
    """One round of `wrk`: 16 keep-alive connections on one thread, 1 s warm-up then 4 s measured."""
    url = f"http://127.0.0.1:{port}{DASHBOARD}"
    base = ["wrk", "-t1", f"-c{REST_CONNECTIONS}", "-H", f"Authorization: Bearer {key}"]
    subprocess.run([*base, "-d1s", url], capture_output=True, check=True, timeout=60)
    done = subprocess.run(
        [*base, f"-d{REST_SECONDS:g}s", url], capture_output=True, text=True, check=True, timeout=60
    )
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", done.stdout).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", done.stdout)
    statuses = {"200": 1} if errors is None else {"200": 1, "other": int(errors.group(1))}
    return {"rps": rps, "statuses": statuses, "output": done.stdout}


def curve(store: Path, now: int) -> dict[int, dict[str, Any]]:
    """The rate for each worker count: the three servers run side by side (idle but for the one
    under load) and their rounds alternate, so a busy neighbour slows each count alike."""
    key = api_key(store, "benchmark-workers")
    index_rebuild(store, now)  # one kept index for all three, before any starts
    found: dict[int, list[dict[str, Any]]] = {n: [] for n in COUNTS}
    with ExitStack() as stack:
        ports = {n: stack.enter_context(running(store, n, key, now)) for n in COUNTS}
        for _ in range(ROUNDS):
            for n in COUNTS:
                if generator() == "wrk":
                    result = wrk(ports[n], key)
                else:
                    result = load(ports[n], [f"Authorization: Bearer {key}"])
                if set(result["statuses"]) != {"200"}:
                    raise RuntimeError(f"serve --workers {n} answered other than 200: {result['statuses']}")
                found[n].append(result)
    return {
        n: {"rps": statistics.median(r["rps"] for r in rounds), "rounds": rounds}
        for n, rounds in found.items()
    }


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
            f"(4/1 = {four / one:.2f} x); 16 keep-alive connections from {generator()} on the same cores, "
            "3 alternating rounds of 4 s, median",
        )
    ]


def main(argv: list[str]) -> int:
    from benchmarks.data import NOW

    print(json.dumps({str(n): figures["rps"] for n, figures in curve(Path(argv[0]), NOW).items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
