"""The store under stress from other processes: queued writers, a first open by many, a killed import.

SQLite gives one writer at a time and atomic, durable commits; these tests check that the store keeps
both promises through real files and real processes: writers wait their turn (busy_timeout) instead
of failing with "database is locked", readers see whole imports or none, and an import killed in the
middle of its commit leaves the store exactly as it was and importable again.
"""

from __future__ import annotations

import multiprocessing
import os
import re
import signal
import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

import pytest

from cymetica_mcp.auth import Authenticator, KeyRing, jwt_secret
from cymetica_mcp.engine import Engine
from cymetica_mcp.ingest import DemoSpec, import_files, write_demo
from cymetica_mcp.models import Dashboard, Filter, Period
from cymetica_mcp.store import SQLiteStore
from cymetica_mcp.windows import DAY, iso
from tests.conftest import NOW, clean_env, import_command

USERS_HEADER = "user_id,kind,capital_usdc,created_at\n"
TRADES_HEADER = "trade_id,user_id,ts,volume_usdc,pnl_usdc\n"
WRITERS = 4
TRADES_EACH = 15_000
NEW_USERS_EACH = 25
BASE_USERS = 200
HOLD_AT_MOST = 3.0  # seconds the test holds the write lock while the writers start (busy_timeout is 10 s)
CRASH_TRADES = 300_000
MID_COMMIT = 1 << 20  # WAL bytes that show the import is writing its commit
CRASH_ATTEMPTS = 3
OPENERS = 4
OPEN_ROUNDS = 40


@contextmanager
def reaped(processes: Sequence[subprocess.Popen[Any]]) -> Iterator[None]:
    """Whatever happens in the test, no child outlives it."""
    try:
        yield
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
            process.wait(timeout=30)


def dashboards(store: SQLiteStore) -> dict[tuple[Filter, Period], Dashboard]:
    """Every dashboard at NOW, from an engine built afresh."""
    engine = Engine(store, clock=lambda: NOW)
    try:
        return {(f, p): engine.dashboard(f, p, NOW) for f in Filter for p in Period}
    finally:
        engine.close()


def integrity(store: SQLiteStore) -> list[tuple[object, ...]]:
    with store.read() as conn:
        return (
            conn.execute("PRAGMA integrity_check").fetchall()
            + conn.execute("PRAGMA foreign_key_check").fetchall()
        )


def count(store: SQLiteStore, table: str) -> int:
    with store.read() as conn:
        return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


def has_open(pid: int, path: Path) -> bool:
    """Does process `pid` hold `path` open (Linux)? False when it cannot be told."""
    try:
        links = [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")]
    except OSError:
        return False
    return os.path.realpath(path) in links


# -- (a) writers in several processes queue up; a reader sees whole imports only -----------------------


def writer_files(folder: Path, w: int) -> tuple[Path, Path]:
    """Writer w's own new users and trades (by its users and the base users): disjoint from the others'."""
    users = folder / f"users{w}.csv"
    users.write_text(
        USERS_HEADER
        + "".join(
            f"w{w}u{j},{'agent' if j % 2 else 'human'},{100 + j}.5,{iso(NOW - 40 * DAY)}\n"
            for j in range(NEW_USERS_EACH)
        )
    )
    trades = folder / f"trades{w}.csv"
    rows = (
        f"w{w}t{i},{f'w{w}u{i % NEW_USERS_EACH}' if i % 3 == 0 else f'base{(w * 31 + i * 7) % BASE_USERS}'},"
        f"{iso(NOW - (i * 7_919 + w * 13) % (30 * DAY))},{i % 97 + 1}.5,{(i * 13) % 41 - 20}.25\n"
        for i in range(TRADES_EACH)
    )
    trades.write_text(TRADES_HEADER + "".join(rows))
    return users, trades


def test_queued_writers_all_land_and_readers_see_whole_imports(store: SQLiteStore, tmp_path: Path) -> None:
    base = tmp_path / "base.csv"
    base.write_text(
        USERS_HEADER
        + "".join(
            f"base{i},{'agent' if i % 3 == 0 else 'human'},{i * 10},{iso(NOW - 60 * DAY)}\n"
            for i in range(BASE_USERS)
        )
    )
    base_version = import_files(store, users=base).data_version
    files = [writer_files(tmp_path, w) for w in range(WRITERS)]
    engine = Engine(store, clock=lambda: NOW, max_age=0)
    ring = KeyRing(store)
    authenticator = Authenticator(store, jwt_secret(store, None))
    key_errors: list[BaseException] = []
    keys_made = 0
    stop = threading.Event()

    def keys() -> None:  # small writes of another kind, contending with the imports
        nonlocal keys_made
        try:
            while True:
                info, secret = ring.create(f"during-import-{keys_made}")
                keys_made += 1
                assert authenticator.authenticate(secret).key_id == info.id
                if stop.wait(0.05):
                    return
        except BaseException as exc:  # reported by the main thread
            key_errors.append(exc)

    # the test holds the write lock while the writers start, so they must queue behind it and each other
    blocker = store.connect()
    blocker.execute("BEGIN IMMEDIATE")
    started = time.monotonic()
    writers = [
        subprocess.Popen(
            import_command(store.path, "--users", str(users), "--trades", str(trades)),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=clean_env(),
        )
        for users, trades in files
    ]
    helper = threading.Thread(target=keys)
    seen = [engine.index().version]
    with reaped(writers):
        try:
            while time.monotonic() - started < HOLD_AT_MOST and not all(
                has_open(w.pid, store.path) for w in writers
            ):
                engine.dashboard(Filter.ALL, Period.H24, NOW)  # reading is never blocked by the writer
                seen.append(engine.index().version)
            time.sleep(0.3)
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        helper.start()
        deadline = time.monotonic() + 60
        try:
            while any(w.poll() is None for w in writers):
                assert time.monotonic() < deadline, "the imports did not finish within 60 s"
                index = engine.index()
                landed = index.version - base_version
                # one snapshot: the version and the trades agree, so no import is ever seen in part
                assert 0 <= landed <= WRITERS
                assert index.trade_count == landed * TRADES_EACH
                with store.read() as conn:  # and straight from the store, the same holds
                    conn.execute("BEGIN")
                    version = store.data_version(conn)
                    trades = conn.execute("SELECT count(*) FROM trades").fetchone()[0]
                    conn.execute("COMMIT")
                assert trades == (version - base_version) * TRADES_EACH
                engine.dashboard(Filter.ALL, Period.H24, NOW)
                engine.dashboard(Filter.AGENTS, Period.D7, NOW)
                seen.append(index.version)
        finally:
            stop.set()
            helper.join(timeout=30)
        outcomes = [w.communicate(timeout=30) for w in writers]
    assert not key_errors, key_errors
    versions = []
    for writer, (out, err) in zip(writers, outcomes, strict=True):
        assert writer.returncode == 0, err
        assert "locked" not in err + out
        assert f"users: {NEW_USERS_EACH} inserted" in out
        assert f"trades: {TRADES_EACH} inserted, 0 already present" in out
        found = re.search(r"data version (\d+)", out)
        assert found is not None, out
        versions.append(int(found.group(1)))
    assert sorted(versions) == list(range(base_version + 1, base_version + WRITERS + 1))
    assert seen == sorted(seen) and seen[0] == base_version  # versions only move forward
    assert store.data_version() == base_version + WRITERS
    assert count(store, "trades") == WRITERS * TRADES_EACH
    assert count(store, "users") == BASE_USERS + WRITERS * NEW_USERS_EACH
    assert count(store, "api_keys") == keys_made > 0
    assert integrity(store) == [("ok",)]
    kept = {(f, p): engine.dashboard(f, p, NOW) for f in Filter for p in Period}
    engine.close()
    authenticator.close()
    assert kept == dashboards(store)


# -- a brand-new store opened by several processes at once ----------------------------------------------


def test_opening_a_new_store_waits_for_a_writer_instead_of_failing(tmp_path: Path) -> None:
    # Another process switching a new file to WAL holds its write lock for a moment (so does any
    # writer of a file still in rollback mode): opening the store must wait, as busy_timeout promises.
    path = tmp_path / "new.db"
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    release = threading.Timer(0.3, lambda: other.execute("ROLLBACK"))
    release.start()
    started = time.monotonic()
    try:
        store = SQLiteStore(path)
    finally:
        release.join()
        other.close()
    assert time.monotonic() - started >= 0.25  # it waited for the lock rather than ignoring it
    assert store.data_version() == 0


def open_store(folder: str, rounds: int, barrier: threading.Barrier) -> list[str]:
    """In a child process: each round, open that round's new store at the same moment as the others."""
    failures = []
    for r in range(rounds):
        barrier.wait(timeout=30)
        try:
            SQLiteStore(Path(folder) / f"round{r}.db")
        except Exception as exc:  # reported to the parent
            failures.append(f"round {r}: {type(exc).__name__}: {exc}")
    return failures


def test_processes_opening_a_new_store_at_once_all_succeed(tmp_path: Path) -> None:
    # e.g. the web and MCP doors started together on a store that does not exist yet
    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager:
        barrier = manager.Barrier(OPENERS)
        with context.Pool(OPENERS) as pool:
            pending = [
                pool.apply_async(open_store, (str(tmp_path), OPEN_ROUNDS, barrier)) for _ in range(OPENERS)
            ]
            failures = [f for p in pending for f in p.get(timeout=60)]
    assert failures == []
    for r in range(OPEN_ROUNDS):
        store = SQLiteStore(tmp_path / f"round{r}.db")
        assert store.data_version() == 0
        assert integrity(store) == [("ok",)]


# -- (b) an import killed in the middle of its commit ------------------------------------------------------


def content(store: SQLiteStore) -> list[str]:
    """Everything the store holds, as SQL: equal lists mean equal content."""
    with store.read() as conn:
        return list(conn.iterdump())


def users_dump(store: SQLiteStore) -> list[tuple[object, ...]]:
    with store.read() as conn:
        return conn.execute("SELECT * FROM users ORDER BY id").fetchall()


def stopped_mid_commit(db: Path, trades: Path, version: int) -> tuple[bool, int]:
    """Run the import of `trades` and SIGKILL it while it writes its commit to the WAL.

    Returns (whether it was caught before committing, the WAL size when it was stopped). The child is
    stopped (SIGSTOP) as soon as the WAL grows, and only killed if a reader still sees the old version.
    """
    wal = db.with_name(db.name + "-wal")
    child = subprocess.Popen(
        import_command(db, "--trades", str(trades)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=clean_env(),
    )
    with reaped([child]):
        deadline = time.monotonic() + 60
        while child.poll() is None:
            assert time.monotonic() < deadline, "the import neither wrote nor finished within 60 s"
            size = wal.stat().st_size if wal.exists() else 0
            if size >= MID_COMMIT:
                os.kill(child.pid, signal.SIGSTOP)
                with closing(sqlite3.connect(db)) as reader:
                    seen = reader.execute("SELECT value FROM meta WHERE key = 'data_version'").fetchone()[0]
                stopped_at = wal.stat().st_size
                os.kill(child.pid, signal.SIGKILL)
                child.wait(timeout=30)
                return seen == version, stopped_at
            time.sleep(0.001)
    return False, 0  # it finished before the test saw it write


def test_an_import_killed_mid_commit_leaves_the_store_as_it_was(tmp_path: Path) -> None:
    users, trades = write_demo(
        DemoSpec(users=300, trades=CRASH_TRADES, days=30, seed=5), NOW, tmp_path / "demo"
    )
    lines = trades.read_text().splitlines(keepends=True)
    earlier = tmp_path / "earlier.csv"
    earlier.write_text(lines[0] + "".join("pre-" + line for line in lines[1:2_001]))
    pristine = SQLiteStore(tmp_path / "pristine.db")
    import_files(pristine, users, earlier)
    KeyRing(pristine).create("kept")

    for attempt in range(CRASH_ATTEMPTS):
        store = SQLiteStore(tmp_path / f"attempt{attempt}.db")
        with (
            closing(sqlite3.connect(pristine.path)) as source,
            closing(sqlite3.connect(store.path)) as target,
        ):
            source.backup(target)
        version = store.data_version()
        before, before_users, before_views = content(store), users_dump(store), dashboards(store)
        caught, wal_size = stopped_mid_commit(store.path, trades, version)
        if caught:
            break
    else:
        pytest.fail(f"in {CRASH_ATTEMPTS} attempts the import committed before it could be stopped")

    # the killed writer left its uncommitted frames behind in the WAL: reopening must ignore them
    assert store.path.with_name(store.path.name + "-wal").stat().st_size >= wal_size >= MID_COMMIT
    reopened = SQLiteStore(store.path)
    assert integrity(reopened) == [("ok",)]
    assert reopened.data_version() == version
    assert count(reopened, "trades") == 2_000
    assert count(reopened, "users") == 300
    assert users_dump(reopened) == before_users
    assert content(reopened) == before
    assert dashboards(reopened) == before_views

    done = subprocess.run(
        import_command(reopened.path, "--trades", str(trades)),
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert f"trades: {CRASH_TRADES} inserted, 0 already present" in done.stdout
    assert reopened.data_version() == version + 1
    assert integrity(reopened) == [("ok",)]
    assert count(reopened, "trades") == 2_000 + CRASH_TRADES
    with reopened.read() as conn:
        # the new rows follow the old ones with no gap, and the packed chunks cover every one of them
        assert conn.execute("SELECT max(id) FROM trades").fetchone()[0] == 2_000 + CRASH_TRADES
        assert conn.execute("SELECT sum(last_id - first_id + 1) FROM trade_chunks").fetchone()[0] == (
            2_000 + CRASH_TRADES
        )
    assert users_dump(reopened) == before_users
    assert dashboards(reopened) != before_views
