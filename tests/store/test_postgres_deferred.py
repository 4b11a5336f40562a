"""An import into an empty PostgreSQL `trades` loads its trades unchecked and builds its primary key
and unique trade_id index at the end (`PostgresTrades`' bulk load); a repeated trade_id found then
rolls the load back and the trades are read again, checked as they come: what it stores is SQLite's,
row for row, whichever way the load ends; a refused import leaves the schema of a freshly migrated
database; readers never see a half state."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import psycopg
import pytest

from cymetica_mcp.errors import AnalyticsError
from cymetica_mcp.ingest import import_files
from cymetica_mcp.store import SQLiteStore, open_store
from cymetica_mcp.store.postgres import _deferred
from tests.postgres import Cluster

USERS = "user_id,kind,capital_usdc,created_at\nu1,human,100,2026-01-01T00:00:00Z\nu2,agent,50.5,2026-01-02T00:00:00Z\n"
HEADER = "trade_id,user_id,ts,volume_usdc,pnl_usdc\n"
COLUMNS = "id, trade_id, user_ref, ts, volume_micro, pnl_micro"
SCHEMA = """
    SELECT 'index', indexname, indexdef FROM pg_indexes WHERE tablename = 'trades'
    UNION ALL
    SELECT 'constraint', conname, pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = 'trades'::regclass
    ORDER BY 1, 2
"""


def _line(i: int, trade_id: str | None = None, user: str | None = None) -> str:
    return (
        f"{trade_id or f't{i}'},{user or f'u{1 + i % 2}'},"
        f"2026-01-03T{i // 3600 % 24:02d}:{i // 60 % 60:02d}:{i % 60:02d}Z,{1 + i % 97}.25,-{i % 13}\n"
    )


def _files(tmp_path: Path, lines: Sequence[str]) -> tuple[Path, Path]:
    users, trades = tmp_path / "u.csv", tmp_path / "t.csv"
    users.write_text(USERS, encoding="utf-8")
    trades.write_text(HEADER + "".join(lines), encoding="utf-8")
    return users, trades


class Builds:
    """What `_deferred` did during imports: each drop (unique or not) and each build, with the number
    of rows `trades` held when the indexes were built (on the import's own connection)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.drops: list[list[str]] = []
        self.adds: list[tuple[list[str], int]] = []
        drop, add = _deferred.drop, _deferred.add

        def dropping(conn: Any, unique: bool) -> dict[str, str]:
            dropped = drop(conn, unique)
            self.drops.append(sorted(dropped))
            return dropped

        def adding(conn: Any, constraints: dict[str, str]) -> None:
            held = conn.execute("SELECT count(*) FROM trades").fetchone()[0]
            self.adds.append((sorted(constraints), int(held)))
            add(conn, constraints)

        monkeypatch.setattr(_deferred, "drop", dropping)
        monkeypatch.setattr(_deferred, "add", adding)


def _compare(pg_url: str, tmp_path: Path, users: Path, trades: Path) -> list[tuple[Any, ...]]:
    """Import into PostgreSQL and SQLite; the reports and every row the same; returns the rows."""
    pg, lite = open_store(pg_url), SQLiteStore(tmp_path / "s.db")
    mine, theirs = import_files(pg, users, trades), import_files(lite, users, trades)
    assert (mine.trades_inserted, mine.trades_present) == (theirs.trades_inserted, theirs.trades_present)
    with lite.read() as conn:
        expected = [tuple(row) for row in conn.execute(f"SELECT {COLUMNS} FROM trades ORDER BY id")]
    with psycopg.connect(pg_url) as conn:
        found = conn.execute(f"SELECT {COLUMNS} FROM trades ORDER BY id".encode()).fetchall()
    assert found == expected
    assert [row[0] for row in found] == list(range(1, len(found) + 1))
    assert pg.check() == []
    pg.close()
    return found


def _schema(url: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(SCHEMA.encode()).fetchall()


@pytest.fixture
def migrated(pg_cluster: Cluster) -> Iterator[list[tuple[Any, ...]]]:
    """The schema of a freshly migrated database (indexes and constraints of `trades`)."""
    url = pg_cluster.create_database()
    try:
        open_store(url).close()
        yield _schema(url)
    finally:
        pg_cluster.drop_database(url)


def test_a_first_import_without_repeats_builds_both_indexes_once_at_the_end(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, migrated: Any
) -> None:
    builds = Builds(monkeypatch)
    rows = _compare(pg_url, tmp_path, *_files(tmp_path, [_line(i) for i in range(60_000)]))
    assert len(rows) == 60_000
    assert builds.drops == [["trades_pkey", "trades_trade_id_key"]]
    assert builds.adds == [(["trades_pkey", "trades_trade_id_key"], 60_000)]
    assert _schema(pg_url) == migrated
    with psycopg.connect(pg_url) as conn:  # the table's own sequence follows the ids the import gave
        assert conn.execute("SELECT nextval(pg_get_serial_sequence('trades', 'id'))").fetchone() == (60_001,)
        analyzed = conn.execute("SELECT last_analyze FROM pg_stat_user_tables WHERE relname = 'trades'")
        assert analyzed.fetchone() != (None,)  # ANALYZE after a first import: the planner's statistics
        pages = conn.execute(
            "SELECT relpages, relallvisible FROM pg_class WHERE relname = 'trades'"
        ).fetchone()
        assert pages is not None and pages[0] > 0 and pages[1] == pages[0]  # COPY FREEZE: every page
        # marked all-visible (and all-frozen) as written: nothing left for a vacuum to do


@pytest.mark.parametrize("at", [7, 200_000])
def test_a_repeat_rolls_the_bulk_load_back_and_reads_again_keeping_the_first_row_as_sqlite_does(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, migrated: Any, at: int
) -> None:
    builds = Builds(monkeypatch)
    lines = [_line(i) for i in range(230_000)]  # some 10 MB: a dozen blocks of the fast path
    lines[at] = _line(at, trade_id="t5")  # repeats a trade_id of the first block (in it, or much later)
    lines[at + 1] = _line(at + 1, trade_id=f"t{at + 2}")  # and then one of its own block
    progress: list[tuple[int, int]] = []
    pg, lite = open_store(pg_url), SQLiteStore(tmp_path / "s.db")
    users, trades = _files(tmp_path, lines)
    mine = import_files(pg, users, trades, progress=lambda done, total: progress.append((done, total)))
    theirs = import_files(lite, users, trades)
    assert (
        (mine.rows, mine.trades_inserted, mine.trades_present)
        == (
            theirs.rows,
            theirs.trades_inserted,
            theirs.trades_present,
        )
        == (230_002, 229_998, 2)  # rows: both files
    )
    with lite.read() as conn:
        expected = [tuple(row) for row in conn.execute(f"SELECT {COLUMNS} FROM trades ORDER BY id")]
    with psycopg.connect(pg_url) as conn:
        assert conn.execute(f"SELECT {COLUMNS} FROM trades ORDER BY id".encode()).fetchall() == expected
    assert expected[5][1] == "t5" and [row[0] for row in expected] == list(range(1, 229_999))
    assert pg.check() == []
    pg.close()
    # the bulk load dropped both and failed to build the unique index over all 230,000 rows; the second
    # reading deferred the primary key alone
    assert builds.drops == [["trades_pkey", "trades_trade_id_key"], ["trades_pkey"]]
    assert builds.adds == [(["trades_pkey", "trades_trade_id_key"], 230_000), (["trades_pkey"], 229_998)]
    assert _schema(pg_url) == migrated
    assert progress[-1][0] == progress[-1][1]


def test_rows_the_fast_path_does_not_take_end_the_bulk_load_with_the_index_built_first(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, migrated: Any
) -> None:
    builds = Builds(monkeypatch)
    lines = [_line(i) for i in range(120_000)]
    lines[100_000] = _line(100_000, trade_id='"t100000"')  # a quoted field: that block is read row by row
    rows = _compare(pg_url, tmp_path, *_files(tmp_path, lines))
    assert len(rows) == 120_000
    assert builds.drops == [["trades_pkey", "trades_trade_id_key"]]
    (built, held), (rest, _) = builds.adds
    assert built == ["trades_trade_id_key"] and rest == ["trades_pkey"]
    assert 60_000 < held <= 100_000  # the whole blocks before the one read row by row
    assert _schema(pg_url) == migrated
    lines[50_000] = _line(50_000, trade_id="t3")  # a repeat before that block: the build fails, read again
    builds.drops.clear()
    builds.adds.clear()
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("TRUNCATE trades")
        conn.execute("UPDATE meta SET value = 0 WHERE key <> 'data_version'")
    lite = tmp_path / "s.db"
    for suffix in ("", "-wal", "-shm"):
        Path(str(lite) + suffix).unlink(missing_ok=True)
    rows = _compare(pg_url, tmp_path, *_files(tmp_path, lines))
    assert len(rows) == 119_999
    assert builds.drops == [["trades_pkey", "trades_trade_id_key"], ["trades_pkey"]]
    assert [names for names, _ in builds.adds] == [["trades_trade_id_key"], ["trades_pkey"]]


def test_a_refused_first_import_leaves_the_schema_of_a_fresh_database(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, migrated: Any
) -> None:
    builds = Builds(monkeypatch)
    lines = [_line(i) for i in range(120_000)]
    lines[110_000] = _line(110_000, user="nobody")  # refused late, after blocks written without indexes
    users, trades = _files(tmp_path, lines)
    store = open_store(pg_url)
    with pytest.raises(AnalyticsError, match=re.escape("t.csv:110002: unknown user_id 'nobody'")):
        import_files(store, users, trades)
    assert builds.drops == [["trades_pkey", "trades_trade_id_key"]]
    assert _schema(pg_url) == migrated
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT count(*) FROM trades").fetchone() == (0,)
    lines[110_000] = _line(110_000)
    trades.write_text(HEADER + "".join(lines), encoding="utf-8")
    assert import_files(store, users, trades).trades_inserted == 120_000
    assert _schema(pg_url) == migrated
    store.close()


def test_readers_wait_for_a_first_import_and_then_see_it_whole(pg_url: str, tmp_path: Path) -> None:
    users, trades = _files(tmp_path, [_line(i) for i in range(120_000)])
    store = open_store(pg_url)
    import_files(store, users)
    seen: list[object] = []
    reader: list[threading.Thread] = []

    def read() -> None:
        with psycopg.connect(pg_url) as conn:
            seen.append(conn.execute("SELECT count(*), count(DISTINCT trade_id) FROM trades").fetchone())

    def waiting() -> bool:
        with psycopg.connect(pg_url) as conn:
            row = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                " AND query LIKE 'SELECT count(*), count(DISTINCT%%'"
            ).fetchone()
            return row is not None and row[0] == 1

    def progress(done: int, total: int) -> None:
        if reader or done == total:
            return
        reader.append(threading.Thread(target=read))  # mid-import, after the first block
        reader[0].start()
        _until(waiting, "the reader waits for the import's lock")

    assert import_files(store, trades=trades, progress=progress).trades_inserted == 120_000
    reader[0].join(timeout=30)
    assert seen == [(120_000, 120_000)]
    store.close()


def _until(condition: Callable[[], bool], what: str, seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {seconds} s: {what}")
        time.sleep(0.01)
