"""The throwaway PostgreSQL cluster every PostgreSQL test stands on (tests/postgres.py, the `pg_cluster`
and `pg_url` fixtures): reachable with the URL it gives, password-checked, isolated per test, surviving a
restart and a crash, running as an unprivileged user, and gone after the session."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest

from tests.postgres import Cluster, process_alive, require_postgres

ROOT = Path(__file__).resolve().parents[2]


def one(url: str, query: bytes) -> object:
    """The first column of the first row of `query` on `url`."""
    with psycopg.connect(url, connect_timeout=10) as conn:
        row = conn.execute(query).fetchone()
    assert row is not None
    return row[0]


def test_a_fresh_database_is_reachable_as_the_unprivileged_owner(pg_url: str) -> None:
    parts = urlsplit(pg_url)
    assert (parts.scheme, parts.hostname, parts.username) == ("postgresql", "127.0.0.1", "cymetica")
    with psycopg.connect(pg_url, connect_timeout=10) as conn:
        user, superuser, tables = conn.execute(
            b"SELECT current_user, current_setting('is_superuser'),"
            b" (SELECT count(*) FROM pg_tables WHERE schemaname = 'public')"
        ).fetchone() or (None, None, None)
        assert (user, superuser, tables) == ("cymetica", "off", 0)
        conn.execute(b"CREATE TABLE trades (trade_id text PRIMARY KEY, amount bigint NOT NULL)")
        conn.execute(b"INSERT INTO trades VALUES ('t1', 9223372036854775807)")
        assert conn.execute(b"SELECT amount FROM trades").fetchone() == (2**63 - 1,)


def test_the_password_is_checked(pg_cluster: Cluster, pg_url: str) -> None:
    database = urlsplit(pg_url).path.lstrip("/")
    wrong = pg_url.replace(f":{pg_cluster.password}@", ":not-the-password@")
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(wrong, connect_timeout=10)
    with pytest.raises(psycopg.OperationalError, match="no password supplied"):
        psycopg.connect(f"postgresql://cymetica@127.0.0.1:{pg_cluster.port}/{database}", connect_timeout=10)
    assert one(pg_url, b"SELECT 1") == 1
    assert pg_cluster.password not in pg_cluster.log_text()


def test_databases_are_isolated(pg_cluster: Cluster, pg_url: str) -> None:
    other = pg_cluster.create_database()
    try:
        assert other != pg_url
        with psycopg.connect(pg_url, connect_timeout=10) as conn:
            conn.execute(b"CREATE TABLE only_here (x int)")
        assert one(pg_url, b"SELECT to_regclass('only_here') IS NOT NULL") is True
        assert one(other, b"SELECT to_regclass('only_here') IS NULL") is True
    finally:
        pg_cluster.drop_database(other)
    with pytest.raises(psycopg.OperationalError, match="does not exist"):
        psycopg.connect(other, connect_timeout=10)


def test_restart_keeps_the_data_and_the_port(pg_cluster: Cluster, pg_url: str) -> None:
    port, pid = pg_cluster.port, pg_cluster.pid
    with psycopg.connect(pg_url, connect_timeout=10) as conn:
        conn.execute(b"CREATE TABLE kept AS SELECT 42 AS answer")
        held = psycopg.connect(pg_url, connect_timeout=10)
    try:
        pg_cluster.restart()
        assert (pg_cluster.running, pg_cluster.port) == (True, port)
        assert pg_cluster.pid != pid
        with pytest.raises(psycopg.OperationalError):  # the old session was cut, as in a real restart
            held.execute(b"SELECT 1")
    finally:
        held.close()
    assert one(pg_url, b"SELECT answer FROM kept") == 42


def test_kill_then_start_recovers_the_last_commit(pg_cluster: Cluster, pg_url: str) -> None:
    with psycopg.connect(pg_url, connect_timeout=10) as conn:
        conn.execute(b"CREATE TABLE survivor (n int)")
        conn.commit()
        conn.execute(b"INSERT INTO survivor VALUES (7)")
        conn.commit()
        pg_cluster.kill()  # at once after the commit: no checkpoint, no time for a background flush
    assert not pg_cluster.running
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(pg_url, connect_timeout=10)
    pg_cluster.start()
    assert "automatic recovery in progress" in pg_cluster.log_text()
    assert one(pg_url, b"SELECT n FROM survivor") == 7


def test_the_server_runs_unprivileged_on_loopback_only(pg_cluster: Cluster, pg_url: str) -> None:
    pid = pg_cluster.pid
    assert pid is not None
    uid = int(Path(f"/proc/{pid}/status").read_text().split("\nUid:", 1)[1].split()[1])
    assert uid != 0
    assert uid == (os.geteuid() if pg_cluster.account is None else pg_cluster.account.pw_uid)
    assert os.stat(pg_cluster.data_dir).st_mode & 0o077 == 0
    assert pg_cluster.admin_sql("SHOW listen_addresses") == [("127.0.0.1",)]
    assert pg_cluster.admin_sql("SHOW unix_socket_directories") == [("",)]
    assert pg_cluster.admin_sql("SELECT rolsuper, rolcreatedb FROM pg_roles WHERE rolname = 'cymetica'") == [
        (False, False)
    ]


CHILD = """
import sys
from tests.postgres import Cluster
cluster = Cluster()
cluster.start()
print(cluster.pid, cluster.folder, flush=True)
raise SystemExit("a session that fails without stopping its cluster")
"""


def test_no_server_outlives_the_interpreter() -> None:
    require_postgres()
    child = subprocess.run(
        [sys.executable, "-c", CHILD],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert child.returncode == 1, child.stderr
    pid, folder = child.stdout.split()
    deadline = time.monotonic() + 10
    while process_alive(int(pid)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not process_alive(int(pid))
    assert not Path(folder).exists()
