"""`backup` while imports commit gives one committed state; `check` finds every kind of damage."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
import threading
from contextlib import closing
from pathlib import Path

import pytest

from cymetica_mcp.engine import TradeIndex, compute
from cymetica_mcp.ingest import import_files
from cymetica_mcp.models import Filter, Period
from cymetica_mcp.store import SQLiteStore
from cymetica_mcp.store._schema import MIGRATIONS
from cymetica_mcp.windows import iso
from tests.conftest import NOW, clean_env
from tests.ingest.test_ingest import TRADES, USERS, write

BATCHES = 40
PER_BATCH = 500


def batch(folder: Path, number: int) -> Path:
    rows = "".join(
        f"b{number}-{i},u{i % 7},2026-03-20T{i % 12:02}:{number % 60:02}:00Z,{i + 1}.25,{(-1) ** i * i}\n"
        for i in range(PER_BATCH)
    )
    return write(folder, f"t{number}.csv", TRADES + rows)


def dashboards(store: SQLiteStore) -> list[dict[str, object]]:
    index = TradeIndex.load(store)
    return [compute(index, f, p, NOW).to_wire() for f in Filter for p in Period]


def test_a_backup_taken_while_imports_commit_is_one_committed_state(tmp_path: Path) -> None:
    users = write(
        tmp_path,
        "u.csv",
        USERS + "".join(f"u{i},{'human' if i % 2 else 'agent'},100,2026-01-01T00:00:00Z\n" for i in range(7)),
    )
    store = SQLiteStore(tmp_path / "live.db")
    import_files(store, users)
    files = [batch(tmp_path, n) for n in range(BATCHES)]
    started = threading.Event()

    def importing() -> None:
        for n, path in enumerate(files):
            import_files(store, trades=path)
            if n == 3:
                started.set()

    writer = threading.Thread(target=importing)
    writer.start()
    assert started.wait(30)
    version = store.backup(tmp_path / "copy.db")
    writer.join(60)
    committed = version - 1  # the users' import made version 1, each batch one more
    assert 4 <= committed <= BATCHES
    restored = tmp_path / "restored.db"
    shutil.copy(tmp_path / "copy.db", restored)
    copy = SQLiteStore(restored)
    assert copy.check() == []
    with copy.read() as conn:
        assert conn.execute("SELECT count(*) FROM trades").fetchone()[0] == committed * PER_BATCH
    again = SQLiteStore(tmp_path / "again.db")  # the same imports, stopped where the backup was taken
    import_files(again, users)
    for path in files[:committed]:
        import_files(again, trades=path)
    assert dashboards(copy) == dashboards(again)


@pytest.mark.parametrize(
    ("damage", "says"),
    [
        (
            "UPDATE trade_chunks SET ts = zeroblob(length(ts)) WHERE first_id = 1",
            "columns differ",
        ),
        ("UPDATE trades SET volume_micro = volume_micro + 1 WHERE id = 3", "columns differ"),
        ("DELETE FROM trades WHERE id = 2", "trades stored in that range"),
        (
            "UPDATE meta SET value = value + 1 WHERE key = 'trade_volume_micro'",
            "kept total trade_volume_micro",
        ),
        ("DELETE FROM users WHERE user_id = 'u1'", "names no user"),
    ],
)
def test_check_finds_each_kind_of_damage(tmp_path: Path, damage: str, says: str) -> None:
    store = SQLiteStore(tmp_path / "s.db")
    import_files(
        store,
        write(tmp_path, "u.csv", USERS + "".join(f"u{i},human,100,2026-01-01T00:00:00Z\n" for i in range(7))),
        batch(tmp_path, 0),
    )
    assert store.check() == []
    with closing(sqlite3.connect(store.path)) as conn:
        conn.execute(damage)
        conn.commit()
    problems = store.check()
    assert problems and any(says in problem for problem in problems), problems
    done = subprocess.run(
        [sys.executable, "-m", "cymetica_mcp", "--db", str(store.path), "check"],
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=60,
        check=False,
    )
    assert done.returncode == 2 and says in done.stderr


@pytest.mark.parametrize("schema", [1, 2, 3])
def test_a_store_written_by_an_earlier_schema_opens_migrates_and_gives_the_same_dashboards(
    tmp_path: Path, schema: int
) -> None:
    """Written as that version's code wrote it: its tables only, rows by plain SQL (no packed chunks
    before schema 3, no kept totals before they existed)."""
    users = [(f"u{i}", i % 2, 100_000_000 + i, 1_767_225_600) for i in range(7)]
    trades = [(f"o{i}", 1 + i % 7, NOW - 60 * i, 1_000_000 + i, (-1) ** i * 10_000 * i) for i in range(300)]
    old = tmp_path / "old.db"
    with closing(sqlite3.connect(old)) as conn:
        for script in MIGRATIONS[:schema]:
            conn.executescript(script)
        conn.executemany(
            "INSERT INTO users (user_id, kind, capital_micro, created_at, changed_in) VALUES (?, ?, ?, ?, 1)",
            users,
        )
        conn.executemany(
            "INSERT INTO trades (trade_id, user_ref, ts, volume_micro, pnl_micro) VALUES (?, ?, ?, ?, ?)",
            trades,
        )
        conn.execute("UPDATE meta SET value = 1 WHERE key = 'data_version'")
        conn.execute(f"PRAGMA user_version = {schema}")
        conn.commit()
    migrated = SQLiteStore(old)
    assert migrated.schema_version() == len(MIGRATIONS) and migrated.check() == []
    fresh = SQLiteStore(tmp_path / "fresh.db")

    def decimal(micro: int) -> str:
        return f"{micro / 1_000_000:.6f}"

    import_files(
        fresh,
        write(
            tmp_path,
            "u.csv",
            USERS
            + "".join(
                f"{u},{'agent' if k else 'human'},{decimal(c)},2026-01-01T00:00:00Z\n" for u, k, c, _ in users
            ),
        ),
        write(
            tmp_path,
            "t.csv",
            TRADES
            + "".join(
                f"{t},u{(ref - 1)},{iso(ts)},{decimal(v)},{decimal(p)}\n" for t, ref, ts, v, p in trades
            ),
        ),
    )
    assert dashboards(migrated) == dashboards(fresh)
    more = write(tmp_path, "more.csv", TRADES + f"n1,u1,{iso(NOW - 5)},7,1\n")
    assert import_files(migrated, trades=more).trades_inserted == 1  # and it takes imports
    assert migrated.check() == []
