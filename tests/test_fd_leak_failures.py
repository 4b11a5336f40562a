"""Failure paths give their file descriptors back too (the habit of Datasette's test_fd_leak.py).

tests/test_fd_leak.py repeats the work that succeeds; this repeats what goes wrong or takes the
unusual branch: a missing file, an import refused after some of its rows were written, bytes that are
not UTF-8, a store written by a newer program, an engine refreshed across an import, every kind of
refused credential, a key used while the store's writer is busy, and the command line's error exit.
"""

from __future__ import annotations

import os
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from cymetica_mcp import cli
from cymetica_mcp.auth import Authenticator, KeyRing, jwt_secret
from cymetica_mcp.engine import Engine
from cymetica_mcp.errors import AnalyticsError
from cymetica_mcp.ingest import ImportRefused, _sink, import_files
from cymetica_mcp.models import Filter, Period
from cymetica_mcp.store import SQLiteStore

from .conftest import NOW, NOW_ISO

FD_DIR = Path("/proc/self/fd")
ROUNDS = 30
SLACK = 2  # descriptors a library may open lazily once, after the warm-up round
USERS = "user_id,kind,capital_usdc,created_at\n"
TRADES = "trade_id,user_id,ts,volume_usdc,pnl_usdc\n"

pytestmark = pytest.mark.skipif(
    not FD_DIR.is_dir(), reason="counting descriptors needs /proc/self/fd (Linux)"
)


def open_fds() -> int:
    return len(os.listdir(FD_DIR))


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text)
    return path


def unauthorized(authenticator: Authenticator, credential: str | None) -> None:
    with pytest.raises(AnalyticsError) as refused:
        authenticator.authenticate(credential)
    assert refused.value.code == "unauthorized"


def test_a_leaked_connection_shows_in_the_count(store: SQLiteStore) -> None:
    # the instrument itself: were a connection left open, the count would say so
    before = open_fds()
    conn = store.connect()
    try:
        conn.execute("SELECT count(*) FROM users").fetchone()
        assert open_fds() > before
    finally:
        conn.close()
    assert open_fds() <= before


def test_failures_and_refusals_leave_no_descriptor_open(
    store: SQLiteStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(_sink, "BATCH", 10)  # so a refused import has written rows before it is refused
    import_files(
        store,
        write(
            tmp_path,
            "users.csv",
            USERS + "u,human,100,2026-01-01T00:00:00Z\nbot,agent,5,2026-01-01T00:00:00Z\n",
        ),
    )
    good = "".join(f"g{i},u,2026-03-20T0{i % 10}:00:00Z,1,0\n" for i in range(35))
    late_refusal = write(tmp_path, "late.csv", TRADES + good + "bad,nobody,2026-03-20T00:00:00Z,1,0\n")
    not_utf8 = tmp_path / "not-utf8.csv"
    not_utf8.write_bytes((TRADES + good).encode() + b"x,u,2026-03-20T00:00:00Z,1,\xff\n")
    newer = tmp_path / "newer.db"
    with closing(sqlite3.connect(newer)) as conn:
        conn.execute("PRAGMA user_version = 99")
    secret_key = jwt_secret(store, None)
    expired = Authenticator(store, secret_key, lifetime=-60)
    ring = KeyRing(store)

    def work(round: int) -> None:
        version = store.data_version()
        with pytest.raises(AnalyticsError):
            import_files(store, trades=tmp_path / "missing.csv")
        with pytest.raises(ImportRefused):
            import_files(store, trades=late_refusal)
        # the contract's refusal, never a raw decoding error
        with pytest.raises(ImportRefused, match="not UTF-8 text"):
            import_files(store, trades=not_utf8)
        assert store.data_version() == version  # every failed import was rolled back
        with pytest.raises(RuntimeError, match="newer"):
            SQLiteStore(newer)

        engine = Engine(store, clock=lambda: NOW, max_age=0)
        engine.dashboard(Filter.ALL, Period.H24, NOW)
        fresh = write(tmp_path, f"fresh{round}.csv", TRADES + f"r{round},bot,2026-03-20T12:00:00Z,2,1\n")
        assert import_files(store, trades=fresh).trades_inserted == 1
        for f in Filter:  # the kept index is refreshed across the import
            engine.dashboard(f, Period.D7, NOW)
        engine.close()

        authenticator = Authenticator(store, secret_key)
        info, secret = ring.create(f"k{round}")
        token, _ = authenticator.issue(authenticator.authenticate(secret))
        late, _ = expired.issue(authenticator.authenticate(token))
        for credential in (None, " ", "nonsense", "cym_not-a-key", "a.b.c", token[:-4] + "AAAA", late):
            unauthorized(authenticator, credential)
        busy = store.connect()  # the writer is busy: recording the key's use is skipped, not waited for
        busy.execute("BEGIN IMMEDIATE")
        newcomer = Authenticator(store, secret_key)  # has not recorded this key's use yet
        try:
            assert newcomer.authenticate(secret).key_id == info.id
        finally:
            newcomer.close()
            busy.execute("ROLLBACK")
            busy.close()
        ring.revoke(info.id)
        unauthorized(authenticator, secret)
        unauthorized(authenticator, token)
        with pytest.raises(AnalyticsError):
            ring.revoke(10_000 + round)
        authenticator.close()

        assert cli.main(["--db", str(store.path), "import", "--trades", str(late_refusal)]) == 2
        assert cli.main(["--db", str(store.path), "dashboard", "--now", NOW_ISO]) == 0
        capsys.readouterr()

    work(0)  # warm-up: modules, locale and the like open their files once, for good
    baseline = open_fds()
    for round in range(1, ROUNDS):
        work(round)
    expired.close()
    assert open_fds() <= baseline + SLACK
