"""The import contract (CONTRACT.md section 1) through real SQLite files and real PostgreSQL databases."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import psycopg
import pytest

from cymetica_mcp.engine import TradeIndex, compute
from cymetica_mcp.errors import AnalyticsError
from cymetica_mcp.ingest import MAX_LISTED_ERRORS, ImportRefused, import_files
from cymetica_mcp.models import Filter, Period
from cymetica_mcp.store import Store
from cymetica_mcp.store import _connection as sqlite_connection
from cymetica_mcp.store.postgres import _connect as pg_connect
from cymetica_mcp.store.postgres import _imports as pg_imports
from tests.backends import content, execute, rows
from tests.conftest import NOW

USERS = "user_id,kind,capital_usdc,created_at\n"
TRADES = "trade_id,user_id,ts,volume_usdc,pnl_usdc\n"


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text)
    return path


@pytest.fixture
def store(any_store: Store) -> Store:
    """Every test here runs on both backends (the `backend` fixture): the rules are every store's."""
    return any_store


@pytest.fixture
def seeded(store: Store, tmp_path: Path) -> Store:
    users = write(
        tmp_path,
        "u0.csv",
        USERS + "alice,human,1000,2026-01-01T00:00:00Z\nbot1,agent,0,2026-01-02T00:00:00Z\n",
    )
    trades = write(tmp_path, "t0.csv", TRADES + "t1,alice,2026-03-20T10:00:00Z,100,5\n")
    import_files(store, users, trades)
    return store


def test_amounts_are_stored_as_exact_micro_usdc(store: Store, tmp_path: Path) -> None:
    users = write(tmp_path, "u.csv", USERS + "u1,human,1234.567891,2026-01-01T00:00:00Z\n")
    trades = write(
        tmp_path,
        "t.csv",
        TRADES + "a,u1,2026-03-20T10:00:00Z,0.000001,-12.5\nb,u1,2026-03-20T10:00:00Z,100,0\n",
    )
    report = import_files(store, users, trades)
    assert (report.users_inserted, report.trades_inserted, report.trades_present) == (1, 2, 0)
    assert rows(store, "SELECT capital_micro FROM users") == [(1_234_567_891,)]
    assert rows(store, "SELECT volume_micro, pnl_micro FROM trades ORDER BY trade_id") == [
        (1, -12_500_000),
        (100_000_000, 0),
    ]


def test_reimport_is_idempotent_and_users_are_updated(seeded: Store, tmp_path: Path) -> None:
    users = write(tmp_path, "u1.csv", USERS + "alice,agent,2500.5,2020-01-01T00:00:00Z\n")
    trades = write(
        tmp_path,
        "t1.csv",
        TRADES
        + "t1,alice,2026-03-20T11:00:00Z,999,9\nt2,alice,2026-03-20T11:00:00Z,1,1\nt2,bot1,2026-03-20T12:00:00Z,2,2\n",
    )
    report = import_files(seeded, users, trades)
    assert (report.users_inserted, report.users_updated) == (0, 1)
    assert (report.trades_inserted, report.trades_present) == (1, 2)
    assert rows(seeded, "SELECT kind, capital_micro, created_at FROM users WHERE user_id = 'alice'") == [
        (1, 2_500_500_000, 1767225600)
    ]
    # t1 kept its first content; of the repeated t2 the first row counts
    assert rows(seeded, "SELECT trade_id, volume_micro FROM trades ORDER BY trade_id") == [
        ("t1", 100_000_000),
        ("t2", 1_000_000),
    ]


def test_a_user_repeated_in_one_file_takes_the_last_row(store: Store, tmp_path: Path) -> None:
    users = write(
        tmp_path, "u.csv", USERS + "x,human,1,2026-01-01T00:00:00Z\nx,agent,2,2026-01-02T00:00:00Z\n"
    )
    report = import_files(store, users)
    assert rows(store, "SELECT kind, capital_micro, created_at FROM users") == [(1, 2_000_000, 1767312000)]
    assert (report.users_inserted, report.users_updated) == (1, 0)  # one new user
    # a user already stored keeps its created_at: only kind and capital are updated
    report = import_files(store, write(tmp_path, "u2.csv", USERS + "x,human,3,2026-02-01T00:00:00Z\n"))
    assert rows(store, "SELECT kind, capital_micro, created_at FROM users") == [(0, 3_000_000, 1767312000)]
    assert (report.users_inserted, report.users_updated) == (0, 1)


def test_times_are_converted_to_utc_and_fractions_dropped(store: Store, tmp_path: Path) -> None:
    users = write(tmp_path, "u.csv", USERS + "u,human,1,2026-01-01T00:00:00+02:00\n")
    trades = write(tmp_path, "t.csv", TRADES + "a,u,2026-03-20T12:34:56.999+01:30,1,0\n")
    import_files(store, users, trades)
    assert rows(store, "SELECT created_at FROM users") == [(1767218400,)]
    assert rows(store, "SELECT ts FROM trades") == [(1774004696,)]  # 11:04:56Z


def test_csv_columns_may_come_in_any_order(store: Store, tmp_path: Path) -> None:
    users = write(tmp_path, "u.csv", "created_at,capital_usdc,kind,user_id\n2026-01-01T00:00:00Z,5,agent,b\n")
    trades = write(
        tmp_path, "t.csv", "pnl_usdc,volume_usdc,ts,user_id,trade_id\n-1,2,2026-03-20T00:00:00Z,b,x\n"
    )
    report = import_files(store, users, trades)
    assert (report.users_inserted, report.trades_inserted) == (1, 1)


def test_json_lines_read_numbers_exactly(store: Store, tmp_path: Path) -> None:
    users = write(
        tmp_path,
        "u.jsonl",
        json.dumps(
            {"user_id": "j", "kind": "human", "capital_usdc": "0.1", "created_at": "2026-01-01T00:00:00Z"}
        )
        + "\n\n",
    )
    trades = write(
        tmp_path,
        "t.jsonl",
        '{"trade_id": "a", "user_id": "j", "ts": "2026-03-20T00:00:00Z", "volume_usdc": 0.3, "pnl_usdc": -0.000001}\n'
        '{"trade_id": "b", "user_id": "j", "ts": "2026-03-20T00:00:00Z", "volume_usdc": 12345678.123456, "pnl_usdc": 7}\n',
    )
    import_files(store, users, trades)
    assert rows(store, "SELECT volume_micro, pnl_micro FROM trades ORDER BY trade_id") == [
        (300_000, -1),
        (12_345_678_123_456, 7_000_000),
    ]


def test_ids_given_as_json_numbers_are_refused_naming_the_string_to_write(
    store: Store, tmp_path: Path
) -> None:
    user = {"user_id": 42, "kind": "human", "capital_usdc": 1, "created_at": "2026-01-01T00:00:00Z"}
    trade = {"trade_id": 7, "user_id": "u", "ts": "2026-03-20T00:00:00Z", "volume_usdc": 1, "pnl_usdc": 0}
    users = write(tmp_path, "u.jsonl", json.dumps(user) + "\n" + json.dumps({**user, "user_id": "u"}) + "\n")
    with pytest.raises(ImportRefused) as refused:
        import_files(store, users, write(tmp_path, "t.jsonl", json.dumps(trade) + "\n"))
    assert [(e.file, e.line, e.reason) for e in refused.value.errors] == [
        ("u.jsonl", 1, 'user_id must be text, a JSON string such as "42", got the number 42'),
        ("t.jsonl", 1, 'trade_id must be text, a JSON string such as "7", got the number 7'),
    ]
    assert rows(store, "SELECT count(*) FROM users") == [(0,)]


BAD_TRADES = [
    ("t9,ghost,2026-03-20T10:00:00Z,1,0", "unknown user_id 'ghost'"),
    ("t9,alice,2026-03-20T10:00:00,1,0", "no UTC offset"),
    ("t9,alice,yesterday,1,0", "not an ISO 8601 time"),
    ("t9,alice,2026-03-20T10:00:00Z,0,0", "volume_usdc must be > 0"),
    ("t9,alice,2026-03-20T10:00:00Z,1e3,0", "plain decimal"),
    ('t9,alice,2026-03-20T10:00:00Z,"1,000",0', "plain decimal"),
    ("t9,alice,2026-03-20T10:00:00Z,1.1234567,0", "more than 6 decimals"),
    ("t9,alice,2026-03-20T10:00:00Z,1,", "pnl_usdc must be a plain decimal"),
    (",alice,2026-03-20T10:00:00Z,1,0", "trade_id must be text of 1 to 64 characters"),
    ("t9,alice,2026-03-20T10:00:00Z,1", "expected 5 fields, found 4"),
]


@pytest.mark.parametrize(("line", "reason"), BAD_TRADES)
def test_a_bad_row_refuses_the_whole_file_and_changes_nothing(
    seeded: Store, tmp_path: Path, line: str, reason: str
) -> None:
    before = content(seeded)
    users = write(tmp_path, "u2.csv", USERS + "carol,human,5,2026-01-01T00:00:00Z\n")
    trades = write(tmp_path, "t2.csv", TRADES + "t5,alice,2026-03-20T10:00:00Z,1,0\n" + line + "\n")
    with pytest.raises(ImportRefused) as refused:
        import_files(seeded, users, trades)
    assert [(e.file, e.line) for e in refused.value.errors] == [("t2.csv", 3)]
    assert reason in refused.value.errors[0].reason
    assert content(seeded) == before


def test_bad_users_are_refused_with_their_reasons(seeded: Store, tmp_path: Path) -> None:
    before = content(seeded)
    users = write(
        tmp_path,
        "u.csv",
        USERS
        + "ok,human,1,2026-01-01T00:00:00Z\nz,robot,1,2026-01-01T00:00:00Z\nw,agent,-1,2026-01-01T00:00:00Z\n",
    )
    with pytest.raises(ImportRefused) as refused:
        import_files(seeded, users)
    assert [(e.line, e.reason.split(",")[0]) for e in refused.value.errors] == [
        (3, "kind must be 'human' or 'agent'"),
        (4, "capital_usdc must be >= 0"),
    ]
    assert "the store is unchanged" in refused.value.message
    assert content(seeded) == before


@pytest.mark.parametrize(
    ("header", "named"),
    [
        ("trade_id,user_id,ts,volume_usdc", "missing column pnl_usdc"),
        ("trade_id,user_id,ts,volume_usdc,pnl_usdc,fee", "unknown column fee"),
        ("trade_id,user_id,ts,volume_usdc,pnl_usdc,ts", "repeated column ts"),
    ],
)
def test_a_missing_or_unknown_column_refuses_the_file_naming_it(
    seeded: Store, tmp_path: Path, header: str, named: str
) -> None:
    before = content(seeded)
    trades = write(tmp_path, "t.csv", header + "\n")
    with pytest.raises(ImportRefused) as refused:
        import_files(seeded, trades=trades)
    assert refused.value.errors[0].line == 1
    assert named in refused.value.errors[0].reason
    assert content(seeded) == before


def test_many_bad_rows_are_counted_and_the_list_is_capped(seeded: Store, tmp_path: Path) -> None:
    bad = "".join(f"x{i},nobody,2026-03-20T10:00:00Z,1,0\n" for i in range(MAX_LISTED_ERRORS + 50))
    with pytest.raises(ImportRefused) as refused:
        import_files(seeded, trades=write(tmp_path, "t.csv", TRADES + bad))
    assert refused.value.total == MAX_LISTED_ERRORS + 50
    assert len(refused.value.errors) == MAX_LISTED_ERRORS
    assert "and 50 more" in refused.value.message


def test_a_refused_import_does_not_bump_the_data_version(seeded: Store, tmp_path: Path) -> None:
    version = seeded.data_version()
    with pytest.raises(ImportRefused):
        import_files(seeded, trades=write(tmp_path, "t.csv", TRADES + "q,ghost,2026-03-20T10:00:00Z,1,0\n"))
    assert seeded.data_version() == version
    import_files(seeded, trades=write(tmp_path, "t2.csv", TRADES + "q,alice,2026-03-20T10:00:00Z,1,0\n"))
    assert seeded.data_version() == version + 1


def test_unknown_format_and_missing_files_are_clear_errors(store: Store, tmp_path: Path) -> None:
    with pytest.raises(AnalyticsError, match=r"use a \.csv or \.jsonl file"):
        import_files(store, users=write(tmp_path, "u.txt", USERS))
    with pytest.raises(AnalyticsError, match="no such file"):
        import_files(store, users=tmp_path / "absent.csv")


def test_one_bad_user_row_does_not_make_later_users_unknown(store: Store, tmp_path: Path) -> None:
    users = write(
        tmp_path,
        "u.csv",
        USERS
        + "u1,robot,1,2026-01-01T00:00:00Z\nu2,human,1,2026-01-01T00:00:00Z\nu3,agent,1,2026-01-01T00:00:00Z\n",
    )
    trades = write(
        tmp_path, "t.csv", TRADES + "a,u2,2026-03-20T00:00:00Z,1,0\nb,u3,2026-03-20T00:00:00Z,1,0\n"
    )
    with pytest.raises(ImportRefused) as refused:
        import_files(store, users, trades)
    assert [(e.file, e.line) for e in refused.value.errors] == [("u.csv", 2)]


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (TRADES + "a,alice,2026-03-20T00:00:00Z,1000000000000,0\n", "out of range"),
        (TRADES.encode() + b"a,alice,2026-03-20T00:00:00Z,1,\xff\n", "not UTF-8"),
        (TRADES + "a,alice,2026-03-20T00:00:00Z," + "9" * 200_000 + ",0\n", "not readable as CSV"),
    ],
    ids=["amount-too-large", "not-utf8", "huge-field"],
)
def test_unreadable_or_out_of_range_input_is_refused_not_crashed(
    seeded: Store, tmp_path: Path, data: str | bytes, reason: str
) -> None:
    path = tmp_path / "t.csv"
    path.write_bytes(data if isinstance(data, bytes) else data.encode())
    before = content(seeded)
    with pytest.raises(ImportRefused) as refused:
        import_files(seeded, trades=path)
    assert reason in refused.value.errors[0].reason
    assert content(seeded) == before


def test_deeply_nested_json_is_a_bad_row(store: Store, tmp_path: Path) -> None:
    path = write(tmp_path, "u.jsonl", "[" * 100_000 + "\n")
    with pytest.raises(ImportRefused) as refused:
        import_files(store, users=path)
    assert refused.value.errors[0].line == 1


BIG = "999999999999"  # the largest whole amount a row may hold: 1e12 USDC less 1


def big_trades(folder: Path, name: str, ids: range, fmt: str = "csv") -> Path:
    """Trades of alice's of BIG USDC each (pnl -1): four of them and the seeded one fit the engine's
    range, five do not."""
    fields = [(f"big{i}", "alice", "2026-03-20T10:00:00Z", BIG, "-1") for i in ids]
    if fmt == "jsonl":
        lines = [json.dumps(dict(zip(TRADES.strip().split(","), f, strict=True))) for f in fields]
        return write(folder, name, "\n".join(lines) + "\n")
    return write(folder, name, TRADES + "".join(",".join(f) + "\n" for f in fields))


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])  # the block reader and the row reader
def test_an_import_taking_the_totals_past_the_engine_range_is_refused_and_changes_nothing(
    seeded: Store, tmp_path: Path, fmt: str
) -> None:
    import_files(seeded, trades=big_trades(tmp_path, f"t1.{fmt}", range(4), fmt))
    before = content(seeded)
    # 4 + 1 trades of 1e12 USDC pass 2^62 micro-USDC (4.6e12 USDC): the fifth is refused
    with pytest.raises(AnalyticsError) as refused:
        import_files(seeded, trades=big_trades(tmp_path, f"t2.{fmt}", range(4, 5), fmt))
    assert refused.value.code == "import_refused"
    assert "5,000,000,000,095.000000 USDC of volume and 10.000000 USDC of |pnl|" in refused.value.message
    assert "4,611,686,018,427.387904 USDC" in refused.value.message
    assert "the store is unchanged" in refused.value.message
    assert content(seeded) == before
    # and the store stays one the engine computes
    figures = compute(TradeIndex.load(seeded), Filter.ALL, Period.H24, NOW).metrics
    assert figures.trading_volume.value == 4 * float(BIG) + 100


@pytest.mark.parametrize(("volume", "pnl"), [(BIG, "0"), ("0.000001", f"-{BIG}")])
def test_one_file_past_the_engine_range_is_refused_whole(
    store: Store, tmp_path: Path, volume: str, pnl: str
) -> None:
    import_files(store, write(tmp_path, "u.csv", USERS + "alice,human,1,2026-01-01T00:00:00Z\n"))
    before = content(store)
    trades = "".join(f"big{i},alice,2026-03-20T10:00:00Z,{volume},{pnl}\n" for i in range(5))
    with pytest.raises(AnalyticsError, match="the range the engine sums exactly"):
        import_files(store, trades=write(tmp_path, "t.csv", TRADES + trades))
    assert content(store) == before


def test_the_kept_totals_count_only_inserted_trades_and_are_summed_for_an_older_store(
    seeded: Store, tmp_path: Path
) -> None:
    def kept() -> tuple[object, ...]:
        found: dict[object, object] = {
            key: value for key, value in rows(seeded, "SELECT key, value FROM meta WHERE key LIKE 'trade_%'")
        }
        return found.get("trade_volume_micro"), found.get("trade_abs_pnl_micro")

    def summed() -> tuple[object, ...]:
        return rows(seeded, "SELECT sum(volume_micro), sum(abs(pnl_micro)) FROM trades")[0]

    execute(
        seeded, "DELETE FROM meta WHERE key LIKE 'trade_%'"
    )  # a store written before the totals were kept
    import_files(seeded, trades=write(tmp_path, "t1.csv", TRADES + "t2,alice,2026-03-20T10:00:00Z,3,-7\n"))
    assert kept() == summed() == (103_000_000, 12_000_000)
    # t1 and t2 are present already: only t3 counts (the block reader, then the row reader)
    again = [
        "t1,alice,2026-03-20T10:00:00Z,100,5",
        "t3,bot1,2026-03-20T11:00:00Z,0.5,-0.25",
        "t2,alice,2026-03-20T10:00:00Z,3,-7",
    ]
    import_files(seeded, trades=write(tmp_path, "t2.csv", TRADES + "\n".join(again) + "\n"))
    t4 = {
        "trade_id": "t4",
        "user_id": "bot1",
        "ts": "2026-03-20T11:00:00Z",
        "volume_usdc": "1",
        "pnl_usdc": "2",
    }
    import_files(seeded, trades=write(tmp_path, "t3.jsonl", json.dumps(t4) + "\n"))
    assert kept() == summed() == (104_500_000, 14_250_000)


def test_nul_in_an_id_is_kept_by_sqlite_and_refused_whole_by_postgresql(
    store: Store, backend: str, tmp_path: Path
) -> None:
    """The one documented difference between the backends: a PostgreSQL `text` cannot hold NUL
    (U+0000), so that store refuses the import whole (`import_refused`, nothing written), naming it."""
    users = write(tmp_path, "u.csv", USERS + "ok,human,1,2026-01-01T00:00:00Z\n")
    import_files(store, users)
    before = content(store)
    for name, users_text, trades_text in [
        ("user_id", USERS + "n\x00u,agent,2,2026-01-01T00:00:00Z\n", None),
        ("trade_id", None, TRADES + "a\x00b,ok,2026-03-20T10:00:00Z,1,0\n"),
    ]:
        u = write(tmp_path, f"{name}.csv", users_text) if users_text else None
        t = write(tmp_path, f"{name}-t.csv", trades_text) if trades_text else None
        if backend == "sqlite":
            import_files(store, u, t)
            continue
        with pytest.raises(AnalyticsError) as refused:
            import_files(store, u, t)
        assert refused.value.code == "import_refused"
        assert f"a {name} holds the character NUL (U+0000)" in refused.value.message
        assert "the store is unchanged" in refused.value.message
        assert content(store) == before
    if backend == "sqlite":
        assert rows(store, "SELECT user_id FROM users ORDER BY id") == [("ok",), ("n\x00u",)]
        assert rows(store, "SELECT trade_id FROM trades") == [("a\x00b",)]


def test_the_store_itself_refuses_a_trade_naming_no_user(store: Store) -> None:
    """Behind the importer's own check, each store's `TradeWriter.finish` refuses a trade whose user is
    not stored (SQLite: a foreign key check; PostgreSQL: one query over the users named), and the
    import is rolled back."""
    before = content(store)

    def import_an_orphan() -> None:
        with store.importing() as tx:
            tx.set_data_version(tx.data_version() + 1)
            writer = tx.trades()
            assert writer.write([("t1", 999, 1_774_000_000, 1_000_000, 0)]) == 1
            writer.finish()

    with pytest.raises((sqlite3.IntegrityError, psycopg.errors.ForeignKeyViolation)):
        import_an_orphan()
    assert content(store) == before
    assert store.data_version() == 0


def test_an_import_waiting_too_long_for_another_is_unavailable_with_one_message(
    store: Store, backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An import that waits past the store's wait for another writer (10 s; 1 s here) gets `unavailable`
    saying so, in the same words on both backends, and writes nothing."""
    monkeypatch.setattr(sqlite_connection, "BUSY_TIMEOUT_MS", 1_000)
    monkeypatch.setattr(pg_connect, "LOCK_SECONDS", 1)
    monkeypatch.setattr(pg_imports, "BEGIN", ("SET LOCAL lock_timeout = '1s'", *pg_imports.BEGIN[1:]))
    users = write(tmp_path, "u.csv", USERS + "x,human,1,2026-01-01T00:00:00Z\n")
    before = content(store)
    with store.importing(), pytest.raises(AnalyticsError) as refused:  # another import holds the store
        import_files(store, users)
    assert refused.value.code == "unavailable"
    assert refused.value.message == "another write has held the store for over 1 s; retry when it is done"
    assert content(store) == before
