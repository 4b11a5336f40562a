"""`copy-store`, `check` and `backup` on PostgreSQL as a user runs them: a real subprocess, a real
server, and the URL's password in no output."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import psycopg

from cymetica_mcp.auth import KeyRing
from cymetica_mcp.store import SQLiteStore, open_store


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CYMETICA_")}
    return subprocess.run(
        [sys.executable, "-m", "cymetica_mcp", *args], capture_output=True, text=True, env=env, timeout=120
    )


def _password(url: str) -> str:
    password = str(psycopg.conninfo.conninfo_to_dict(url)["password"])
    assert len(password) >= 8
    return password


def test_copy_store_moves_up_refuses_a_full_target_replaces_it_and_never_shows_the_password(
    demo_store: SQLiteStore, pg_url: str, tmp_path: Path
) -> None:
    password = _password(pg_url)
    KeyRing(demo_store).create("carried over")
    shown = open_store(pg_url).location
    done = cli("copy-store", "--from", str(demo_store.path), "--to", pg_url)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(
        f"copied {demo_store.location} to {shown}: 120 users, 4,000 trades, 1 API key, 0 settings,"
    )
    assert f"data version {demo_store.data_version()}" in done.stdout

    again = cli("copy-store", "--from", str(demo_store.path), "--to", pg_url)
    assert again.returncode == 2
    assert again.stderr.startswith(
        f"error (invalid_argument): the target {shown} is not empty: it holds 120 users, 4,000 trades, 1 API key"
    )
    assert "--replace" in again.stderr and "Traceback" not in again.stderr
    assert open_store(pg_url).keys.all()[0].name == "carried over"  # untouched

    other = SQLiteStore(tmp_path / "other.db")
    KeyRing(other).create("replacing")
    replaced = cli("copy-store", "--from", str(other.path), "--to", pg_url, "--replace")
    assert replaced.returncode == 0, replaced.stderr
    assert replaced.stdout.startswith(f"emptied {shown} first: it held 120 users, 4,000 trades, 1 API key")
    assert [k.name for k in open_store(pg_url).keys.all()] == ["replacing"]
    assert open_store(pg_url).data_version() == 0

    down = cli("copy-store", "--from", pg_url, "--to", str(tmp_path / "down.db"))
    assert down.returncode == 0, down.stderr
    unreachable = cli(
        "copy-store",
        "--from",
        str(other.path),
        "--to",
        re.sub(r"@127\.0\.0\.1:\d+/", "@127.0.0.1:1/", pg_url),
    )
    assert unreachable.returncode == 2 and "cannot be used" in unreachable.stderr
    for run in (done, again, replaced, down, unreachable):
        assert password not in run.stdout + run.stderr


def test_check_on_postgresql_says_what_it_checks_and_finds_wrong_totals(
    pg_url: str, demo_store: SQLiteStore
) -> None:
    cli("copy-store", "--from", str(demo_store.path), "--to", pg_url)
    done = cli("--db", pg_url, "check")
    assert done.returncode == 0, done.stderr
    assert done.stdout == (
        f"{open_store(pg_url).location}: ok (data version, dense trade ids, totals against the rows; PostgreSQL"
        " enforces the constraints itself, and its pages and indexes are checked by its own tool:"
        " pg_amcheck DATABASE)\n"
    )
    with psycopg.connect(pg_url) as conn:
        conn.execute("UPDATE meta SET value = value + 1 WHERE key = 'trade_volume_micro'")
    damaged = cli("--db", pg_url, "check")
    assert damaged.returncode == 2
    assert "1 problem(s)" in damaged.stderr and "meta.trade_volume_micro is" in damaged.stderr
    assert _password(pg_url) not in done.stdout + done.stderr + damaged.stdout + damaged.stderr


def test_backup_on_postgresql_points_to_pg_dump_and_copy_store(pg_url: str, tmp_path: Path) -> None:
    done = cli("--db", pg_url, "backup", str(tmp_path / "copy.db"))
    assert done.returncode == 2
    assert done.stderr.startswith("error (invalid_argument): `cymetica-mcp backup` copies SQLite stores;")
    assert (
        "pg_dump --format=custom" in done.stderr
        and "cymetica-mcp copy-store --from URL --to FILE.db" in done.stderr
    )
    assert not (tmp_path / "copy.db").exists()
    assert _password(pg_url) not in done.stdout + done.stderr
