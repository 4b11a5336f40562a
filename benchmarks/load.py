"""A small HTTP/1.1 keep-alive load generator, run in a process of its own next to the server.

    python -m benchmarks.load --port 8123 --path /api/v1/analytics/dashboard \\
        --header "Authorization: Bearer KEY" --connections 16 --seconds 5

Each connection sends a request, reads the whole response (Content-Length framed) and sends the next:
closed-loop, no pipelining; with `--rate`, the connections together send at most that many requests a
second, each on a schedule of its own (an open-loop attacker rather than a saturating one). A header
may say `{connection}`: each connection sends its own number there (one client address each behind a
trusted proxy, say). Prints one JSON line: requests/s over the measured span (after a warm-up),
status counts and latency percentiles. Plain asyncio streams keep the client cheap, so on a small
machine the server, not the client, is what saturates.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections import Counter
from typing import Any


async def _connection(
    host: str,
    port: int,
    request: bytes,
    start: float,
    stop: float,
    latencies: list[float],
    statuses: Counter[int],
    gap: float = 0.0,
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    due = time.perf_counter()
    try:
        while True:
            if gap:
                due += gap
                await asyncio.sleep(max(0.0, due - time.perf_counter()))
            sent = time.perf_counter()
            if sent >= stop:
                return
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            length = -1
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            if length < 0:
                raise RuntimeError("response without Content-Length")
            await reader.readexactly(length)
            done = time.perf_counter()
            if sent >= start:
                latencies.append(done - sent)
                statuses[status] += 1
    finally:
        writer.close()


def _request(host: str, port: int, path: str, headers: list[str], connection: int) -> bytes:
    """The request one connection sends, its number put in the headers that ask for it."""
    lines = [f"GET {path} HTTP/1.1", f"Host: {host}:{port}", "Connection: keep-alive"]
    lines += [header.replace("{connection}", str(connection)) for header in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def hammer(
    host: str,
    port: int,
    path: str,
    headers: list[str],
    connections: int,
    seconds: float,
    warmup: float,
    rate: float | None = None,
) -> dict[str, Any]:
    """Run `connections` clients (closed-loop, or paced to `rate` requests/s in all) for warmup +
    seconds; figures over the last `seconds`."""
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    start = time.perf_counter() + warmup
    stop = start + seconds
    gap = connections / rate if rate else 0.0
    await asyncio.gather(
        *(
            _connection(
                host, port, _request(host, port, path, headers, i), start, stop, latencies, statuses, gap
            )
            for i in range(connections)
        )
    )
    latencies.sort()
    count = len(latencies)

    def pct(q: float) -> float:
        return latencies[min(count - 1, int(count * q))] * 1e3 if count else float("nan")

    return {
        "requests": count,
        "seconds": seconds,
        "rps": count / seconds,
        "statuses": {str(k): v for k, v in statuses.items()},
        "latency_ms": {"p50": pct(0.5), "p90": pct(0.9), "p99": pct(0.99)},
        "connections": connections,
    }


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments, run the load, print the JSON line."""
    parser = argparse.ArgumentParser(description="closed-loop HTTP/1.1 keep-alive load generator")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", default="/")
    parser.add_argument("--header", action="append", default=[], help="'Name: value', repeatable")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument(
        "--rate", type=float, help="requests/s of all connections together (default: as fast as answered)"
    )
    args = parser.parse_args(argv)
    result = asyncio.run(
        hammer(
            args.host,
            args.port,
            args.path,
            args.header,
            args.connections,
            args.seconds,
            args.warmup,
            args.rate,
        )
    )
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
