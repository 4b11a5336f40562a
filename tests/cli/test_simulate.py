"""`cymetica-mcp simulate` without a server: live batches straight into the store."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from cymetica_mcp.engine import Engine
from cymetica_mcp.models import Filter, Period
from cymetica_mcp.store import SQLiteStore
from tests.conftest import clean_env


def test_it_imports_a_batch_a_second_of_new_users_and_trades(tmp_path: Path) -> None:
    db = tmp_path / "live.db"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "cymetica_mcp",
            "--db",
            str(db),
            "simulate",
            "--rate",
            "30",
            "--duration",
            "1.5",
        ],
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert (
        1 <= len(lines) <= 2 and lines[0].startswith("sent ") and ", 60 new users: data version 2" in lines[0]
    )
    sent = sum(int(line.split()[1]) for line in lines)
    store = SQLiteStore(db)
    with store.read() as conn:
        assert conn.execute("SELECT count(*) FROM trades").fetchone()[0] == sent > 0
    engine = Engine(store)
    board = engine.dashboard(Filter.ALL, Period.H24)  # the real clock: the trades are now
    engine.close()
    assert board.metrics.active_users.value > 0


def test_a_url_must_be_http(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "cymetica_mcp",
            "--db",
            str(tmp_path / "x.db"),
            "simulate",
            "--url",
            "file:///etc/passwd",
            "--key",
            "cym_x",
        ],
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=60,
        check=False,
    )
    assert done.returncode == 2 and "--url must start with http:// or https://" in done.stderr
