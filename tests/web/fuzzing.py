"""What the fuzz tests of `/ws/analytics` and `/mcp` share: the server under fuzz (a real `cymetica-mcp
serve` process, so that its RSS is its own), the dashboards it must serve, and a well-behaved client
that stays connected on both doors while the fuzz runs and checks every answer it gets.
"""

from __future__ import annotations

import fcntl
import itertools
import json
import os
import select
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import anyio
import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from websockets.asyncio.client import ClientConnection, connect

from cymetica_mcp.auth import KeyRing
from cymetica_mcp.engine import open_engine
from cymetica_mcp.mcp_server import TOOL_NAME
from cymetica_mcp.models import Filter, Period
from cymetica_mcp.store import SQLiteStore
from tests.conftest import NOW, NOW_ISO

START_SECONDS = 30.0
PREFERENCES = [(f.value, p.value) for f in Filter for p in Period]
KEYS = ("fuzz-ws", "fuzz-flood", "fuzz-mcp", "bystander")


def rss_bytes(pid: int) -> int:
    """Resident set size of process `pid`, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


@dataclass
class Server:
    """`cymetica-mcp serve` in a process of its own, with a key per client and the expected dashboards."""

    process: subprocess.Popen[str]
    url: str
    keys: dict[str, str]
    expected: dict[tuple[str, str], dict[str, Any]]
    log: Path
    baseline_rss: int = 0
    """RSS after the whole warm-up, the largest inputs included: what the run's growth is measured from."""
    quiet_rss: int = 0
    """RSS after the warm-up's well-behaved clients, before its largest inputs."""
    cases: dict[str, int] = field(default_factory=dict)

    @property
    def ws_url(self) -> str:
        return "ws" + self.url.removeprefix("http") + "/ws/analytics"

    def rss(self) -> int:
        return rss_bytes(self.process.pid)


@contextmanager
def fuzz_server(original: Path, folder: Path) -> Iterator[Server]:
    """A copy of the demo store served with a 1 s push, limits high enough that the fuzz is not simply
    rate limited (the limits have tests of their own), and CYMETICA_NOW fixed so every answer is known.

    Its standard output (the banner, then uvicorn's access log, a line per request) is read to the end
    and copied to `serve.out`: a pipe nobody reads fills up (64 KiB, about 1,200 requests) and the
    server's event loop then blocks in the access log's write, so every client times out. The pipe is
    shrunk to one page, so that a harness that stopped reading it would stall the warm-up at once
    rather than a long run by chance."""
    db = folder / "fuzz.db"
    shutil.copy(original, db)
    store = SQLiteStore(db)
    ring = KeyRing(store)
    keys = {name: ring.create(name)[1] for name in KEYS}
    engine = open_engine(store, now=NOW)
    try:
        expected = {(f, p): engine.dashboard(Filter(f), Period(p), NOW).to_wire() for f, p in PREFERENCES}
    finally:
        engine.close()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CYMETICA_")}
    env["CYMETICA_NOW"] = NOW_ISO
    log = folder / "serve.log"
    command = [sys.executable, "-m", "cymetica_mcp", "--db", str(db), "serve", "--port", "0"]
    command += ["--push-interval", "1", "--rate-limit", "6000000", "--rate-burst", "100000"]
    with log.open("w") as errors:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=errors, text=True, env=env)
    assert process.stdout is not None
    drain = threading.Thread(target=_copy_to, args=(process.stdout, folder / "serve.out"), daemon=True)
    try:
        url = _banner_url(process)
        fcntl.fcntl(process.stdout.fileno(), fcntl.F_SETPIPE_SZ, 4096)
        drain.start()
        yield Server(process, url, keys, expected, log)
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
        if drain.is_alive():
            drain.join(10)  # the copy ends at the pipe's end of file, once the process has exited
        process.stdout.close()


def _copy_to(stream: IO[str], path: Path) -> None:
    """Copy `stream` to the file `path` until its end."""
    with path.open("w") as out:
        shutil.copyfileobj(stream, out)


def _banner_url(process: subprocess.Popen[str]) -> str:
    """The URL the server's banner names, read within START_SECONDS."""
    assert process.stdout is not None
    deadline = time.monotonic() + START_SECONDS
    text = ""
    while time.monotonic() < deadline:
        ready, _, _ = select.select([process.stdout], [], [], 0.1)
        if ready:
            line = process.stdout.readline()
            if not line:
                break
            text += line
            if " at http://" in line:
                return line.rsplit(" at ", 1)[1].strip()
    raise RuntimeError(f"the server did not start: {text!r}, exit {process.poll()}")


class Bystander:
    """A well-behaved client on both doors during the whole fuzz: a WebSocket that switches preferences
    and reads every push, and an MCP session (the SDK's client) calling the tool; every dashboard it gets
    must be the expected one, and nothing may close or fail."""

    def __init__(self, server: Server, rounds: int | None = None) -> None:
        self.server = server
        self.rounds = rounds
        self.stop = anyio.Event()
        self.checked = {"ws_updates": 0, "mcp_calls": 0, "pongs": 0}

    async def run(self) -> dict[str, int]:
        key = self.server.keys["bystander"]
        async with (
            connect(f"{self.server.ws_url}?token={key}") as ws,
            httpx2.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=30) as http,
            Client(streamable_http_client(f"{self.server.url}/mcp", http_client=http)) as mcp,
            anyio.create_task_group() as tasks,
        ):
            tasks.start_soon(self._read, ws)
            for round, (f, p) in enumerate(itertools.cycle(PREFERENCES)):
                if self.stop.is_set() or round == self.rounds:
                    break
                await ws.send(json.dumps({"type": "set_preferences", "filter": f, "period": p}))
                await ws.send('{"type": "ping"}')
                result = await mcp.call_tool(TOOL_NAME, {"filter": f, "period": p})
                content = result.structured_content
                assert not result.is_error and content is not None, result
                assert content["data"] == self.server.expected[(f, p)], (f, p)
                self.checked["mcp_calls"] += 1
                with anyio.move_on_after(0.2):  # pacing: a person's client, not a load test
                    await self.stop.wait()
            tasks.cancel_scope.cancel()
        return self.checked

    async def _read(self, ws: ClientConnection) -> None:
        current = ("all", "24h")
        async for raw in ws:
            message = json.loads(raw)
            kind = message["type"]
            if kind == "preferences_ack":
                current = (message["filter"], message["period"])
            elif kind == "analytics_update":
                assert message["data"] == self.server.expected[current], current
                self.checked["ws_updates"] += 1
            elif kind == "pong":
                self.checked["pongs"] += 1
            else:
                assert kind in ("connected", "heartbeat"), message


def check_log(server: Server) -> None:
    """No traceback and no error-level record from the server while it was fuzzed."""
    text = server.log.read_text()
    assert "Traceback" not in text, text[-4000:]
    bad = [line for line in text.splitlines() if " ERROR " in line or line.startswith("ERROR")]
    assert not bad, bad[:5]
