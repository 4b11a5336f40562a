"""`cymetica-mcp serve` and `cymetica-mcp token` as users run them: real processes, signals, logs."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import anyio
import httpx
import pytest
from anyio.abc import Process
from anyio.streams.text import TextReceiveStream
from websockets.asyncio.client import connect

from cymetica_mcp.store import SQLiteStore
from tests.conftest import NOW_ISO

from .conftest import Served
from .helpers import close_of, next_of

pytestmark = pytest.mark.anyio

CLI = [sys.executable, "-m", "cymetica_mcp"]


def cli(
    *args: str, env: dict[str, str] | None = None, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args],
        capture_output=True,
        text=True,
        input=stdin,
        env={**os.environ, **(env or {})},
        timeout=60,
    )


@dataclass
class Running:
    process: Process
    url: str
    stdout: list[str] = field(default_factory=list)


@asynccontextmanager
async def serve(store: SQLiteStore | str, *args: str) -> AsyncIterator[Running]:
    """`cymetica-mcp serve --port 0` over `store` (a SQLite store, or a PostgreSQL URL) with CYMETICA_NOW
    fixed; yields once its banner names the URL."""
    env = {**os.environ, "CYMETICA_NOW": NOW_ISO}
    env.pop("CYMETICA_JWT_SECRET", None)
    db = store if isinstance(store, str) else str(store.path)
    command = [*CLI, "--db", db, "serve", "--port", "0", *args]
    async with await anyio.open_process(command, env=env) as process:
        assert process.stdout is not None
        lines: list[str] = []
        text = ""
        with anyio.fail_after(20):
            async for chunk in TextReceiveStream(process.stdout):
                text += chunk
                found = re.search(r" at (http://127\.0\.0\.1:\d+)\n", text)
                if found and "fixed at" in text:
                    break
        assert found, text
        lines.append(text)
        running = Running(process, found.group(1), lines)
        try:
            yield running
        finally:
            if process.returncode is None:
                process.kill()


async def rest(url: str, key: str, **params: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=url) as http:
        return await http.get(
            "/api/v1/analytics/dashboard", params=params, headers={"Authorization": f"Bearer {key}"}
        )


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM])
async def test_serve_answers_like_the_cli_and_stops_gracefully_on_a_signal(
    demo_store: SQLiteStore, api_key: str, stop: signal.Signals
) -> None:
    async with serve(demo_store, "--push-interval", "0.5") as running:
        answers = {
            (f, p): await rest(running.url, api_key, filter=f, period=p)
            for f, p in (("all", "24h"), ("humans", "7d"), ("agents", "30d"))
        }
        async with connect(f"{running.url.replace('http', 'ws')}/ws/analytics?token={api_key}") as ws:
            await next_of(ws, "analytics_update")
            pushed = await next_of(ws, "analytics_update", seconds=3)
            running.process.send_signal(stop)
            code, reason, _ = await close_of(ws)
        with anyio.fail_after(15):
            await running.process.wait()
        assert running.process.stderr is not None and running.process.stdout is not None
        err = (await running.process.stderr.receive(1 << 20)).decode()
        out = "".join(running.stdout) + (await running.process.stdout.receive(1 << 20)).decode()
    assert (code, reason) == (1001, "server shutting down")
    assert running.process.returncode == {signal.SIGINT: 130, signal.SIGTERM: 0}[stop]
    for (f, p), resp in answers.items():
        done = cli(
            "--db",
            str(demo_store.path),
            "dashboard",
            "--filter",
            f,
            "--period",
            p,
            "--now",
            NOW_ISO,
            "--json",
        )
        assert resp.status_code == 200 and resp.json() == json.loads(done.stdout), (f, p)
    assert pushed["data"] == answers[("all", "24h")].json()
    logs = out + err
    assert '"WebSocket /ws/analytics?token=[redacted]" [accepted]' in logs
    assert "GET /api/v1/analytics/dashboard?filter=humans&period=7d" in logs
    assert api_key not in logs and api_key[4:20] not in logs
    assert "Traceback" not in logs


async def test_serve_refuses_bad_options_with_a_clear_error(demo_store: SQLiteStore) -> None:
    done = cli("--db", str(demo_store.path), "serve", "--push-interval", "0")
    assert (
        done.returncode == 2 and "error (invalid_argument)" in done.stderr and "push_interval" in done.stderr
    )
    taken = cli("--db", str(demo_store.path), "serve", "--host", "203.0.113.1", "--port", "8000")
    assert taken.returncode == 2 and "cannot listen on 203.0.113.1:8000" in taken.stderr


async def test_token_prints_a_jwt_the_server_accepts(served: Served, api_key: str) -> None:
    db = str(served.store.path)
    by_flag = cli("--db", db, "token", "--key", api_key)
    by_env = cli("--db", db, "token", env={"CYMETICA_API_KEY": api_key})
    by_stdin = cli("--db", db, "token", "--key", "-", stdin=api_key + "\n")
    for done in (by_flag, by_env, by_stdin):
        assert done.returncode == 0, done.stderr
        token = done.stdout.strip()
        assert token.count(".") == 2 and "valid for 3600 s" in done.stderr
        assert (await rest(served.url, token, filter="humans")).status_code == 200
    jwt_for_jwt = cli("--db", db, "token", "--key", by_flag.stdout.strip())
    wrong = cli("--db", db, "token", "--key", "cym_" + "Z" * 43)
    missing = cli("--db", db, "token", env={"CYMETICA_API_KEY": ""})
    assert jwt_for_jwt.returncode == 2 and "error (forbidden)" in jwt_for_jwt.stderr
    assert wrong.returncode == 2 and "error (unauthorized): invalid or revoked API key" in wrong.stderr
    assert missing.returncode == 2 and "CYMETICA_API_KEY" in missing.stderr
    assert not wrong.stdout and not missing.stdout
