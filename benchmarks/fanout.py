"""WebSocket fan-out clients: many sessions over the nine preference pairs, timing every update.

    python -m benchmarks.fanout --port 8123 --token KEY --clients 1000 --seconds 12 [--ticks-path P]
                                [--ready-file F] [--stop-file G]

Opens `clients` sessions to /ws/analytics (client i follows pair i mod 9), waits until every one has
had an `analytics_update` for its own pair, then records for `seconds` the CLOCK_MONOTONIC instant of
every update each session receives (the server's tick times are on the same clock). With
`--ticks-path`, the server's tick report (see benchmarks.web_server) is read when the measured span
begins and when it ends. With `--ready-file`, that file is written once every session is live (so
another process can act while they listen); with `--stop-file`, the measured span ends early once
that file exists (`seconds` stays the upper bound). Messages are not parsed beyond their type and
pair, so that the client stays cheap next to the server it measures. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

PAIRS: Final = tuple((f, p) for f in ("all", "humans", "agents") for p in ("24h", "7d", "30d"))
UPDATE: Final = '{"type":"analytics_update"'
CONNECT_AT_ONCE: Final = 50
STOP_CHECK: Final = 0.1
"""Seconds between two looks for the stop file."""


@dataclass
class Session:
    """One client: its pair, when it went live, and when each later update arrived."""

    number: int
    filter: str
    period: str
    live: asyncio.Event = field(default_factory=asyncio.Event)
    updates: list[float] = field(default_factory=list)
    error: str | None = None

    def mine(self, text: str) -> bool:
        """Whether an update message is for this session's pair (read from the metrics' head)."""
        head = text[:2000]
        return f'"filter":"{self.filter}"' in head and f'"period":"{self.period}"' in head


async def follow(url: str, session: Session, gate: asyncio.Semaphore, stop: asyncio.Event) -> None:
    """Connect, set the pair, then timestamp every update for it until `stop`."""
    import websockets

    try:
        async with gate:
            ws = await websockets.connect(url, max_size=2**24, open_timeout=60, ping_interval=None)
            await ws.send(
                json.dumps({"type": "set_preferences", "filter": session.filter, "period": session.period})
            )
        async with ws:
            while not stop.is_set():
                try:
                    text = await asyncio.wait_for(ws.recv(), timeout=0.5)
                except TimeoutError:
                    continue
                at = time.monotonic()
                if isinstance(text, str) and text.startswith(UPDATE) and session.mine(text):
                    if session.live.is_set():
                        session.updates.append(at)
                    else:
                        session.live.set()
    except Exception as exc:
        session.error = f"{type(exc).__name__}: {exc}"
        session.live.set()


def wait_for(path: Path, deadline: float) -> None:
    """Return once `path` exists, or at `deadline` (CLOCK_MONOTONIC) at the latest."""
    while (left := deadline - time.monotonic()) > 0 and not path.exists():
        time.sleep(min(STOP_CHECK, left))


def ticks(port: int, path: str | None) -> Any:
    """The server's tick report, or None without a path."""
    if path is None:
        return None
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=30) as response:
        return json.loads(response.read())


async def fan_out(
    port: int,
    token: str,
    clients: int,
    seconds: float,
    ready_timeout: float,
    ticks_path: str | None,
    ready_file: Path | None = None,
    stop_file: Path | None = None,
) -> dict[str, Any]:
    """Run the sessions; their update times (measured span only) and any errors."""
    url = f"ws://127.0.0.1:{port}/ws/analytics?token={token}"
    sessions = [Session(i, *PAIRS[i % len(PAIRS)]) for i in range(clients)]
    gate = asyncio.Semaphore(CONNECT_AT_ONCE)
    stop = asyncio.Event()
    started = time.monotonic()
    tasks = [asyncio.create_task(follow(url, s, gate, stop)) for s in sessions]
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.gather(*(s.live.wait() for s in sessions)), ready_timeout)
    ready = sum(1 for s in sessions if s.live.is_set() and s.error is None)
    live_at = time.monotonic()
    for s in sessions:  # count only what arrives from here on
        s.updates.clear()
    before = await asyncio.to_thread(ticks, port, ticks_path)
    if ready_file is not None:  # whole or absent: written aside, then renamed
        partial = ready_file.with_name(ready_file.name + ".partial")
        partial.write_text(f"{ready} {live_at}\n")
        partial.replace(ready_file)
    if stop_file is None:
        await asyncio.sleep(seconds)
    else:
        await asyncio.to_thread(wait_for, stop_file, time.monotonic() + seconds)
    after = await asyncio.to_thread(ticks, port, ticks_path)
    ended = time.monotonic()
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    errors = [f"client {s.number}: {s.error}" for s in sessions if s.error]
    return {
        "clients": clients,
        "ready": ready,
        "ready_seconds": live_at - started,
        "window": [live_at, ended],
        "server_before": before,
        "server_after": after,
        "updates": [s.updates for s in sessions],
        "pairs": [f"{s.filter}/{s.period}" for s in sessions],
        "errors": errors[:20],
        "error_count": len(errors),
    }


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments, run the sessions, print the JSON line."""
    parser = argparse.ArgumentParser(description="WebSocket fan-out clients")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=12.0)
    parser.add_argument("--ready-timeout", type=float, default=120.0)
    parser.add_argument("--ticks-path", help="the server's tick report, e.g. /bench/ticks")
    parser.add_argument("--ready-file", type=Path, help="written once every session is live")
    parser.add_argument("--stop-file", type=Path, help="end the measured span early once this file exists")
    args = parser.parse_args(argv)
    result = asyncio.run(
        fan_out(
            args.port,
            args.token,
            args.clients,
            args.seconds,
            args.ready_timeout,
            args.ticks_path,
            args.ready_file,
            args.stop_file,
        )
    )
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
