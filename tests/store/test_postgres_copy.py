"""The PostgreSQL import's binary `COPY`: what the fast path prepares ahead (numbered as if every row
before were new) is renumbered when a block before it kept only part of its rows, and the row by row
path writes any text a trade_id may hold; both store exactly what SQLite stores."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import psycopg
import pytest
from hypothesis import given
from hypothesis import strategies as st

from cymetica_mcp.errors import AnalyticsError
from cymetica_mcp.ingest import import_files
from cymetica_mcp.store import AsciiIds, SQLiteStore, open_store
from cymetica_mcp.store.postgres._copy import binary_trades

USERS = "user_id,kind,capital_usdc,created_at\nu1,human,100,2026-01-01T00:00:00Z\nu2,agent,50.5,2026-01-02T00:00:00Z\n"
HEADER = "trade_id,user_id,ts,volume_usdc,pnl_usdc\n"
COLUMNS = "id, trade_id, user_ref, ts, volume_micro, pnl_micro"


def _same_rows(pg_url: str, lite: SQLiteStore) -> list[tuple[object, ...]]:
    with lite.read() as conn:
        expected = [tuple(row) for row in conn.execute(f"SELECT {COLUMNS} FROM trades ORDER BY id")]
    with psycopg.connect(pg_url) as conn:
        found = conn.execute(f"SELECT {COLUMNS} FROM trades ORDER BY id".encode()).fetchall()
    assert found == expected
    return found


def test_blocks_after_a_repeated_trade_id_are_renumbered_densely(pg_url: str, tmp_path: Path) -> None:
    lines = [
        f"t{i},u{1 + i % 2},2026-01-03T{i // 3600 % 24:02d}:{i // 60 % 60:02d}:{i % 60:02d}Z,{1 + i % 97}.5,-{i % 13}\n"
        for i in range(60_000)
    ]  # ids of 2 to 6 characters: some 2.7 MB, three blocks of the fast path and more
    lines[30_000] = lines[10].replace("2026-01-03", "2026-01-04")  # a later block repeats an earlier row's id
    lines[45_000] = lines[44_990]  # and a block repeats one of its own
    trades = tmp_path / "t.csv"
    trades.write_text(HEADER + "".join(lines), encoding="utf-8")
    users = tmp_path / "u.csv"
    users.write_text(USERS, encoding="utf-8")
    pg, lite = open_store(pg_url), SQLiteStore(tmp_path / "s.db")
    mine, theirs = import_files(pg, users, trades), import_files(lite, users, trades)
    assert (mine.trades_inserted, mine.trades_present) == (theirs.trades_inserted, theirs.trades_present)
    assert (mine.trades_inserted, mine.trades_present) == (59_998, 2)
    rows = _same_rows(pg_url, lite)
    assert [row[0] for row in rows] == list(range(1, 59_999))
    assert pg.check() == []
    with psycopg.connect(pg_url) as conn:  # the table's own sequence follows the ids the import gave
        assert conn.execute("SELECT nextval(pg_get_serial_sequence('trades', 'id'))").fetchone() == (59_999,)


def test_any_text_a_trade_id_may_hold_is_stored_exactly_row_by_row(pg_url: str, tmp_path: Path) -> None:
    ids = ["é€😀", "a\\b\tc", '"x\ny\\N\r"', "z" * 64, "q"]
    trades = tmp_path / "t.csv"
    trades.write_text(
        HEADER + "".join(f"{tid},u1,2026-01-03T00:00:0{n}Z,{n + 1},-{n}\n" for n, tid in enumerate(ids)),
        encoding="utf-8",
    )
    users = tmp_path / "u.csv"
    users.write_text(USERS, encoding="utf-8")
    pg, lite = open_store(pg_url), SQLiteStore(tmp_path / "s.db")
    import_files(pg, users, trades)
    import_files(lite, users, trades)
    rows = _same_rows(pg_url, lite)
    assert [row[1] for row in rows] == ["é€😀", "a\\b\tc", "x\ny\\N\r", "z" * 64, "q"]


@pytest.mark.parametrize("as_bytes", [False, True], ids=["strings", "ASCII bytes"])
@pytest.mark.parametrize(
    "trade_ids",
    [["aa", "bb", "cc"], ["a", "bbb", "cc"], ["é", "b", "ü€"]],
    ids=["one width", "widths differ", "not ASCII"],
)
def test_binary_rows_renumbered_hold_the_ids_asked_for(
    pg_url: str, trade_ids: list[str], as_bytes: bool
) -> None:
    numbers = [
        np.array(v, dtype=np.int64) for v in ([1, 2, 3], [-(2**63), 2**63 - 1, 0], [4, 5, 6], [-7, 0, 7])
    ]
    ids = AsciiIds.of(trade_ids) if as_bytes else trade_ids
    if ids is None:
        assert not all(tid.isascii() for tid in trade_ids)
        return
    block = binary_trades(41, ids, numbers)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE t (id bigint, trade_id text, user_ref bigint, ts bigint, volume_micro bigint, pnl_micro bigint)"
        )
        for first in (41, 1000, 41):
            conn.execute("TRUNCATE t")
            with (
                conn.cursor() as cursor,
                cursor.copy(f"COPY t ({COLUMNS}) FROM STDIN (FORMAT BINARY)") as copy,
            ):
                copy.write(block.numbered(first))
            expected = [(first + i, tid, *(int(n[i]) for n in numbers)) for i, tid in enumerate(trade_ids)]
            assert conn.execute("SELECT * FROM t ORDER BY id").fetchall() == expected


def test_a_trade_id_holding_nul_is_refused_naming_the_column() -> None:
    for ids in (["ok", "n\x00"], AsciiIds.of(["ok", "n\x00"])):
        assert ids is not None
        with pytest.raises(AnalyticsError, match="a trade_id holds the character NUL"):
            binary_trades(1, ids, [np.zeros(2, dtype=np.int64)] * 4)
    # zero padding is not NUL: "a" beside a wider id copies as "a"
    assert binary_trades(1, AsciiIds.of(["a", "bcd"]) or [], [np.zeros(2, dtype=np.int64)] * 4).count == 2


@given(st.lists(st.text(st.characters(max_codepoint=127), max_size=64), min_size=1, max_size=40))
def test_ascii_ids_hold_the_texts_given(ids: list[str]) -> None:
    packed = AsciiIds.of(ids)
    if any("\n" in i for i in ids):
        assert packed is None  # line breaks: the texts are copied as strings instead
        return
    assert packed is not None and packed.texts() == ids
    assert packed.lengths.tolist() == [len(i) for i in ids]
    assert packed.text.shape == (len(ids), max(len(i) for i in ids) or 0)


def _primary_key(pg_url: str) -> list[tuple[object, ...]]:
    with psycopg.connect(pg_url) as conn:
        return conn.execute(
            "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint"
            " WHERE conrelid = 'trades'::regclass AND contype IN ('p', 'u') ORDER BY conname"
        ).fetchall()


def test_the_primary_key_built_at_the_end_of_a_first_import_is_the_schema_s(
    pg_url: str, tmp_path: Path
) -> None:
    store = open_store(pg_url)
    schema = _primary_key(pg_url)
    assert schema == [("trades_pkey", "PRIMARY KEY (id)"), ("trades_trade_id_key", "UNIQUE (trade_id)")]
    users = tmp_path / "u.csv"
    users.write_text(USERS, encoding="utf-8")
    import_files(store, users)
    bad = tmp_path / "bad.csv"  # refused after a first batch of 10,000 rows was written: rolled back whole
    rows = "".join(f"b{i},u1,2026-01-03T00:00:00Z,1,0\n" for i in range(10_000))
    bad.write_text(HEADER + rows + "t2,nobody,2026-01-03T00:00:00Z,1,0\n")
    with pytest.raises(AnalyticsError):
        import_files(store, trades=bad)
    assert _primary_key(pg_url) == schema
    good = tmp_path / "good.csv"
    good.write_text(HEADER + "t1,u1,2026-01-03T00:00:00Z,1,0\n" + "t2,u2,2026-01-03T00:00:01Z,2,0\n")
    assert import_files(store, trades=good).trades_inserted == 2
    assert _primary_key(pg_url) == schema
    with psycopg.connect(pg_url) as conn, pytest.raises(psycopg.errors.UniqueViolation):
        conn.execute(
            "INSERT INTO trades (id, trade_id, user_ref, ts, volume_micro, pnl_micro) VALUES (2, 'n', 1, 0, 1, 0)"
        )
    assert store.check() == []
