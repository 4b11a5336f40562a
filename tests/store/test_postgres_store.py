"""The PostgreSQL store against a real server: what differs from SQLite in how it is built.

The rules every backend shares (figures, import rules, keys) run on both backends in the suites that
state them; these tests pin what only PostgreSQL does: the URL and its password, migrations shared by
processes, `COPY` with its fallback for repeated trade_ids, dense trade ids across imports that wait
for each other, notifications as the commit stamp, and the two-file import that a PostgreSQL `text`
cannot hold.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import psycopg
import pytest

from cymetica_mcp.engine import open_engine
from cymetica_mcp.errors import AnalyticsError
from cymetica_mcp.ingest import DemoSpec, import_files, write_demo
from cymetica_mcp.models import Filter, Period
from cymetica_mcp.store import SCHEMA_VERSION, PostgresStore, SQLiteStore, open_store
from tests.conftest import NOW


def _rows(url: str, query: str) -> list[tuple[object, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(query.encode()).fetchall()


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


USERS = "user_id,kind,capital_usdc,created_at\nu1,human,100,2026-01-01T00:00:00Z\nu2,agent,50.5,2026-01-02T00:00:00Z\n"


def test_the_url_chooses_postgres_and_the_password_is_never_shown(pg_url: str) -> None:
    store = open_store(pg_url)
    assert isinstance(store, PostgresStore)
    password = str(psycopg.conninfo.conninfo_to_dict(pg_url)["password"])
    assert password
    assert password not in store.location
    assert store.location.startswith("postgresql://cymetica@127.0.0.1:")
    assert store.schema_version() == SCHEMA_VERSION
    assert open_store(pg_url).schema_version() == SCHEMA_VERSION  # migrating again changes nothing

    wrong = pg_url.replace(f":{password}@", ":not-the-password@")
    with pytest.raises(AnalyticsError) as refused:
        open_store(wrong)
    assert refused.value.code == "unavailable"
    assert "not-the-password" not in str(refused.value) and password not in str(refused.value)
    assert "cannot be used" in str(refused.value)


def test_processes_migrating_one_database_at_once_all_succeed(pg_url: str) -> None:
    stores: list[PostgresStore] = []
    errors: list[BaseException] = []

    def open_it() -> None:
        try:
            stores.append(PostgresStore(pg_url))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_it) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert [store.schema_version() for store in stores] == [SCHEMA_VERSION] * 6
    assert _rows(pg_url, "SELECT count(*) FROM cymetica_schema") == [(1,)]


def test_dashboards_equal_sqlite_s_to_the_cent_and_the_rows_are_the_same(pg_url: str, tmp_path: Path) -> None:
    files = write_demo(DemoSpec(users=150, trades=30_000, days=40, seed=5), NOW, tmp_path)
    lite = SQLiteStore(tmp_path / "s.db")
    pg = open_store(pg_url)
    mine_report, their_report = import_files(pg, *files), import_files(lite, *files)
    assert (mine_report.users_inserted, mine_report.trades_inserted, mine_report.data_version) == (
        their_report.users_inserted,
        their_report.trades_inserted,
        their_report.data_version,
    )
    mine = open_engine(pg, now=NOW)
    theirs = open_engine(lite, now=NOW)
    for filter in Filter:
        for period in Period:
            assert mine.dashboard(filter, period) == theirs.dashboard(filter, period), (filter, period)
    with lite.read() as conn:
        expected = conn.execute(
            "SELECT id, trade_id, user_ref, ts, volume_micro, pnl_micro FROM trades ORDER BY id"
        ).fetchall()
    assert _rows(
        pg_url, "SELECT id, trade_id, user_ref, ts, volume_micro, pnl_micro FROM trades ORDER BY id"
    ) == [tuple(row) for row in expected]
    assert pg.check() == []


def test_repeated_trade_ids_keep_the_first_row_across_blocks_files_and_imports(
    pg_url: str, tmp_path: Path
) -> None:
    store = open_store(pg_url)
    users = _write(tmp_path / "users.csv", USERS)
    header = "trade_id,user_id,ts,volume_usdc,pnl_usdc\n"
    first = _write(
        tmp_path / "a.csv",
        header
        + "t1,u1,2026-01-03T00:00:00Z,10,1\n"
        + "t2,u2,2026-01-03T00:00:01Z,20,-2\n"
        + "t1,u2,2026-01-03T00:00:02Z,99,9\n",  # repeated inside the file: the first row wins
    )
    report = import_files(store, users, first)
    assert (report.trades_inserted, report.trades_present) == (2, 1)
    again = _write(
        tmp_path / "b.csv",
        header
        + "t3,u1,2026-01-04T00:00:00Z,30,3\n"
        + "t2,u1,2026-01-04T00:00:01Z,77,7\n"
        + "t4,u2,2026-01-04T00:00:02Z,40,4\n",
    )
    report = import_files(store, trades=again)
    assert (report.trades_inserted, report.trades_present) == (2, 1)
    assert _rows(pg_url, "SELECT id, trade_id, volume_micro FROM trades ORDER BY id") == [
        (1, "t1", 10_000_000),
        (2, "t2", 20_000_000),  # a stored trade never changes
        (3, "t3", 30_000_000),
        (4, "t4", 40_000_000),
    ]
    assert store.check() == []
    totals = {str(k): v for k, v in _rows(pg_url, "SELECT key, value FROM meta WHERE key LIKE 'trade_%'")}
    assert totals == {"trade_volume_micro": 100_000_000, "trade_abs_pnl_micro": 10_000_000}


def test_a_user_repeated_keeps_its_first_created_at_and_takes_the_last_kind_and_capital(
    pg_url: str, tmp_path: Path
) -> None:
    store = open_store(pg_url)
    import_files(store, users=_write(tmp_path / "u.csv", USERS))
    update = "user_id,kind,capital_usdc,created_at\nu1,agent,7,2026-02-01T00:00:00Z\nu1,human,8,2026-02-02T00:00:00Z\nu3,agent,1,2026-02-03T00:00:00Z\nu3,human,2,2026-02-04T00:00:00Z\n"
    report = import_files(store, users=_write(tmp_path / "u2.csv", update))
    assert (report.users_inserted, report.users_updated) == (1, 2)
    rows = _rows(
        pg_url, "SELECT id, user_id, kind, capital_micro, created_at, changed_in FROM users ORDER BY id"
    )
    assert rows == [
        (1, "u1", 0, 8_000_000, 1767225600, 2),
        (2, "u2", 1, 50_500_000, 1767312000, 1),
        (3, "u3", 0, 2_000_000, 1770163200, 2),  # inserted by this import: its last row, whole
    ]


def test_a_refused_import_leaves_nothing_behind(pg_url: str, tmp_path: Path) -> None:
    store = open_store(pg_url)
    import_files(store, users=_write(tmp_path / "u.csv", USERS))
    before = _rows(
        pg_url,
        "SELECT (SELECT count(*) FROM users), (SELECT count(*) FROM trades), (SELECT value FROM meta WHERE key = 'data_version')",
    )
    header = "trade_id,user_id,ts,volume_usdc,pnl_usdc\n"
    bad = _write(
        tmp_path / "t.csv",
        header + "t1,u1,2026-01-03T00:00:00Z,10,1\n" + "t2,nobody,2026-01-03T00:00:00Z,10,1\n",
    )
    with pytest.raises(AnalyticsError) as refused:
        import_files(
            store,
            users=_write(
                tmp_path / "u3.csv", "user_id,kind,capital_usdc,created_at\nu9,human,1,2026-01-01T00:00:00Z\n"
            ),
            trades=bad,
        )
    assert "nobody" in str(refused.value)
    with pytest.raises(AnalyticsError) as nul:
        import_files(
            store, trades=_write(tmp_path / "n.csv", header + "t\x00x,u1,2026-01-03T00:00:00Z,10,1\n")
        )
    assert nul.value.code in ("import_refused", "invalid_argument")
    assert (
        _rows(
            pg_url,
            "SELECT (SELECT count(*) FROM users), (SELECT count(*) FROM trades), (SELECT value FROM meta WHERE key = 'data_version')",
        )
        == before
    )


def test_ids_with_tabs_backslashes_and_newlines_are_stored_exactly(pg_url: str, tmp_path: Path) -> None:
    store = open_store(pg_url)
    users = 'user_id,kind,capital_usdc,created_at\n"a\\b\tc",human,1,2026-01-01T00:00:00Z\n'
    trades = 'trade_id,user_id,ts,volume_usdc,pnl_usdc\n"x\ny\\N\r",a\\b\tc,2026-01-03T00:00:00Z,1,0\n'
    import_files(store, _write(tmp_path / "u.csv", users), _write(tmp_path / "t.csv", trades))
    assert _rows(pg_url, "SELECT user_id FROM users") == [("a\\b\tc",)]
    assert _rows(pg_url, "SELECT trade_id FROM trades") == [("x\ny\\N\r",)]


def test_imports_in_turn_from_two_processes_number_trades_densely(pg_url: str, tmp_path: Path) -> None:
    files = write_demo(DemoSpec(users=50, trades=5_000, days=10, seed=2), NOW, tmp_path)
    import_files(open_store(pg_url), users=files[0])
    header, *lines = files[1].read_text(encoding="utf-8").splitlines()
    parts = [_write(tmp_path / f"part{i}.csv", "\n".join([header, *lines[i::4]]) + "\n") for i in range(4)]
    errors: list[BaseException] = []

    def run(path: Path) -> None:
        try:
            import_files(open_store(pg_url), trades=path)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(part,)) for part in parts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert _rows(pg_url, "SELECT count(*), min(id), max(id), count(DISTINCT trade_id) FROM trades") == [
        (5000, 1, 5000, 5000)
    ]
    assert open_store(pg_url).data_version() == 5
    assert open_store(pg_url).check() == []


def test_the_stamp_moves_when_another_replica_commits(pg_url: str, tmp_path: Path) -> None:
    mine, theirs = open_store(pg_url), open_store(pg_url)
    stamp = mine.stamp()
    try:
        deadline = time.monotonic() + 5
        while stamp.read() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        before = stamp.read()
        assert before is not None
        info = theirs.keys.create("k", "cym_x", b"\x01" * 32, 1)
        seen = _moved(stamp.read, before)
        theirs.keys.revoke(info.id, 2)
        seen = _moved(stamp.read, seen)
        import_files(theirs, users=_write(tmp_path / "u.csv", USERS))
        _moved(stamp.read, seen)
    finally:
        stamp.close()


def _moved(read: object, before: object) -> object:
    assert callable(read)
    deadline = time.monotonic() + 1.0  # CONTRACT.md section 8: within one second
    while time.monotonic() < deadline:
        now = read()
        if now is not None and now != before:
            return now
        time.sleep(0.005)
    raise AssertionError(f"the stamp stayed {before} for a second after another replica committed")


def test_the_jwt_secret_is_made_once_for_every_replica(pg_url: str) -> None:
    made: list[bytes] = []
    stores = [open_store(pg_url) for _ in range(4)]
    results: list[bytes] = []

    def generate() -> bytes:
        made.append(bytes([len(made) + 1]) * 32)  # each asker makes a different one
        return made[-1]

    def ask(store: object) -> None:
        assert isinstance(store, PostgresStore)
        results.append(store.secret("jwt", generate))

    threads = [threading.Thread(target=ask, args=(store,)) for store in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(results)) == 1
    stores[0].replace_secret("jwt", b"y" * 32)
    assert {store.secret("jwt", lambda: b"z" * 32) for store in stores} == {b"y" * 32}


def test_backup_defers_to_pg_dump_and_says_so(pg_url: str, tmp_path: Path) -> None:
    with pytest.raises(AnalyticsError) as deferred:
        open_store(pg_url).backup(tmp_path / "b.db")
    assert "pg_dump" in str(deferred.value)
