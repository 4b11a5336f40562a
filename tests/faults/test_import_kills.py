"""Imports killed (SIGKILL) at seeded points of their life, through every import path.

The command line's `import` (trades as CSV read row by row, as JSON Lines, as CSV big enough for the
numpy fast path; users) is killed as soon as it opened the store, at three seeded instants between
opening the store and its normal exit, and once in the middle of writing its commit to the WAL. `cymetica-mcp serve` is killed as an
ingest request is sent and at three seeded instants of it (trades through the fast path, users). After every kill the store,
opened again, is exactly as before the import or exactly as after it (rows hashed, nine dashboards),
sound by `PRAGMA integrity_check` and the store's own check; an import that got a 2xx is there; and the
import, run again, goes through.
"""

from __future__ import annotations

import os
import random
import re
import signal
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import closing, contextmanager
from multiprocessing.process import BaseProcess
from pathlib import Path

import anyio
import httpx
import pytest

from cymetica_mcp.ingest import import_files
from cymetica_mcp.store import SQLiteStore
from tests.faults import _child
from tests.faults.conftest import SEED, Workload, state_of

CLI_PATHS = ("csv", "jsonl", "fast", "users")
HTTP_PATHS = ("fast", "users")
TIMED_KILLS = 3
HTTP_KILLS = 3
LATE = 1.2
"""Kill instants are drawn up to this share of the import's own duration: some land after it ended."""


def shm(db: Path) -> Path:
    return db.with_name(db.name + "-shm")


def wal(db: Path) -> Path:
    return db.with_name(db.name + "-wal")


def outcome(db: Path, workload: Workload, name: str) -> str:
    """'before' or 'after': which whole state the killed import left (anything else fails)."""
    state = state_of(db)
    if state == workload.before:
        return "before"
    assert state == workload.after(name), f"{name}: the store is neither as before nor as after the import"
    return "after"


def measured(workload: Workload, name: str, folder: Path) -> tuple[float, int]:
    """(seconds the import takes once the store is open, bytes of WAL its commit writes), in this process,
    with a reader holding the store open so that the WAL keeps its size."""
    db = workload.fresh(folder / "measure.db")
    path = workload.paths[name]
    with closing(SQLiteStore(db).connect()) as reader:
        reader.execute("SELECT count(*) FROM meta").fetchone()
        started = time.perf_counter()
        store = SQLiteStore(db)
        if name == "users":
            import_files(store, users=path.file)
        else:
            import_files(store, trades=path.file)
        seconds = time.perf_counter() - started
        size = wal(db).stat().st_size
    return seconds, size


def start(argv: list[str], output: Path) -> BaseProcess:
    """`cymetica-mcp ARGV` in a child process (forked from the fork server), its output in `output`."""
    output.write_bytes(b"")
    child = _child.forks().Process(target=_child.run, args=(argv, str(output)))
    child.start()
    return child


def stop(child: BaseProcess) -> None:
    """SIGKILL, unless it already ended; then reap it."""
    if child.is_alive() and child.pid is not None:
        os.kill(child.pid, signal.SIGKILL)
    child.join(30)
    assert not child.is_alive()


def start_import(db: Path, workload: Workload, name: str) -> BaseProcess:
    return start(["--db", str(db), "import", *workload.paths[name].args], db.with_name(db.name + ".out"))


def kill_after_open(db: Path, workload: Workload, name: str, delay: float) -> bool:
    """Run the import; SIGKILL it `delay` seconds after it opened the store. False: it ended first."""
    child = start_import(db, workload, name)
    try:
        deadline = time.monotonic() + 60
        while not shm(db).exists():  # the store is open once SQLite made its shared-memory file
            assert child.is_alive(), "the import ended before it opened the store"
            assert time.monotonic() < deadline, "the import did not open the store within 60 s"
            time.sleep(0.001)
        time.sleep(delay)  # the seeded kill point itself, not a wait for a condition
        return child.is_alive()
    finally:
        stop(child)


def kill_mid_commit(db: Path, workload: Workload, name: str, wal_bytes: int) -> bool:
    """Run the import; stop it (SIGSTOP) once its WAL holds half its commit, then SIGKILL it. False:
    it ended before the test saw the WAL that large."""
    child = start_import(db, workload, name)
    try:
        deadline = time.monotonic() + 60
        while child.is_alive() and child.pid is not None:
            assert time.monotonic() < deadline, "the import neither wrote nor ended within 60 s"
            if _size(wal(db)) >= wal_bytes // 2:
                os.kill(child.pid, signal.SIGSTOP)
                return True
            time.sleep(0.0005)
        return False
    finally:
        stop(child)


def _size(path: Path) -> int:
    """The file's size, 0 if it is not there (SQLite removes the WAL when its last connection closes,
    which may come between any look and the next)."""
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


@pytest.mark.parametrize("name", CLI_PATHS)
def test_a_killed_command_line_import_leaves_the_store_as_before_or_as_after(
    workload: Workload, name: str, tmp_path: Path
) -> None:
    seconds, wal_bytes = measured(workload, name, tmp_path)
    rng = random.Random(f"{SEED}-kill-{name}")
    # The first kill comes as soon as the store is open, before the import can have written anything:
    # however fast this machine runs the import, one kill surely lands inside it.
    delays = [0.0, *sorted(rng.uniform(0, LATE * seconds) for _ in range(TIMED_KILLS))]
    results: Counter[str] = Counter()
    again: Path | None = None
    for point, delay in enumerate(delays):
        db = workload.fresh(tmp_path / f"timed{point}.db")
        killed = kill_after_open(db, workload, name, delay)
        left = outcome(db, workload, name)
        results[f"{left}{'' if killed else ' (ended first)'}"] += 1
        again = again or (db if left == "before" else None)
    db = workload.fresh(tmp_path / "commit.db")
    killed = kill_mid_commit(db, workload, name, wal_bytes)
    left = outcome(db, workload, name)
    results[f"{left} (mid-commit){'' if killed else ' (ended first)'}"] += 1
    again = again or (db if left == "before" else None)
    print(f"kills of import {name}: {dict(results)}", file=sys.__stderr__)
    assert results["before"] + results["before (mid-commit)"] >= 1, results  # some kill hit the import

    assert again is not None
    path = workload.paths[name]
    store = SQLiteStore(again)
    import_files(store, users=path.file) if name == "users" else import_files(store, trades=path.file)
    assert state_of(again) == workload.after(name)


async def post(url: str, workload: Workload, name: str) -> int | None:
    """POST the path's file to its ingest route: the status, or None if the server went away."""
    path = workload.paths[name]
    headers = {"Authorization": f"Bearer {workload.key}", "Content-Type": path.media_type}
    async with httpx.AsyncClient(base_url=url, timeout=60) as http:
        try:
            response = await http.post(path.route, content=path.file.read_bytes(), headers=headers)
        except httpx.TransportError:
            return None
    return response.status_code


async def killed_during_post(db: Path, workload: Workload, name: str, delay: float) -> int | None:
    """Serve `db`, POST the path's file and SIGKILL the server `delay` seconds after sending: the answer."""
    answers: list[int | None] = []
    with forked_server(db) as (url, child):

        async def send() -> None:
            answers.append(await post(url, workload, name))

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(send)
            await anyio.sleep(delay)  # the seeded kill point itself, not a wait for a condition
            stop(child)
    return answers[0]


@contextmanager
def forked_server(db: Path) -> Iterator[tuple[str, BaseProcess]]:
    """`cymetica-mcp serve --port 0` on `db` in a child process: its URL, once its banner names it."""
    output = db.with_name(db.name + ".out")
    child = start(["--db", str(db), "serve", "--port", "0"], output)
    try:
        deadline = time.monotonic() + 30
        while not (found := re.search(r" at (http://127\.0\.0\.1:\d+)\n", output.read_text())):
            assert child.is_alive(), output.read_text()
            assert time.monotonic() < deadline, "the server did not start within 30 s"
            time.sleep(0.01)
        yield found.group(1), child
    finally:
        stop(child)


@pytest.mark.anyio
async def test_a_server_killed_during_an_ingest_request_loses_no_answered_import(
    workload: Workload, tmp_path: Path
) -> None:
    durations: dict[str, float] = {}
    with forked_server(workload.fresh(tmp_path / "measure.db")) as (url, _):
        for name in HTTP_PATHS:
            started = time.perf_counter()
            assert await post(url, workload, name) == 200
            durations[name] = time.perf_counter() - started

    for name in HTTP_PATHS:
        rng = random.Random(f"{SEED}-http-{name}")
        results: Counter[str] = Counter()
        # The first kill comes as the request is sent: one surely lands before the import commits.
        delays = [0.0, *(rng.uniform(0, LATE * durations[name]) for _ in range(HTTP_KILLS))]
        for point, delay in enumerate(delays):
            db = workload.fresh(tmp_path / f"{name}{point}.db")
            answer = await killed_during_post(db, workload, name, delay)
            left = outcome(db, workload, name)
            if answer is not None:
                assert answer == 200 and left == "after", (answer, left)
            results[f"{left} ({answer or 'no answer'})"] += 1
        print(
            f"kills of serve during POST {workload.paths[name].route}: {dict(results)}", file=sys.__stderr__
        )
        assert results["before (no answer)"] >= 1, results
