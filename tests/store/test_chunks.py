"""The packed trade columns always say exactly what the trades table says."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cymetica_mcp.engine import TradeIndex, compute
from cymetica_mcp.ingest import import_files
from cymetica_mcp.models import Filter, Period
from cymetica_mcp.store import SQLiteStore
from cymetica_mcp.store import _chunks as chunks
from tests.conftest import NOW

HEADER = "trade_id,user_id,ts,volume_usdc,pnl_usdc\n"


def columns(store: SQLiteStore) -> list[list[int]]:
    with store.read() as conn:
        last = conn.execute("SELECT coalesce(max(id), 0) FROM trades").fetchone()[0]
        blocks = list(chunks.read_columns(conn, 0, last))
    return [np.concatenate([b[i] for b in blocks]).tolist() if blocks else [] for i in range(4)]


def rows(store: SQLiteStore) -> list[list[int]]:
    with store.read() as conn:
        found = conn.execute(
            "SELECT user_ref, ts, volume_micro, pnl_micro FROM trades ORDER BY id"
        ).fetchall()
    return [list(column) for column in zip(*found, strict=True)]


def test_chunks_match_the_rows_through_duplicates_and_raw_inserts(
    demo_store: SQLiteStore, tmp_path: Path
) -> None:
    with demo_store.read() as conn:
        user = conn.execute("SELECT user_id FROM users ORDER BY id LIMIT 1").fetchone()[0]
        first_trade = conn.execute("SELECT trade_id FROM trades ORDER BY id LIMIT 1").fetchone()[0]
    again = tmp_path / "again.csv"  # already-present trades interleaved with new ones
    again.write_text(
        HEADER
        + f"{first_trade},{user},2026-03-20T00:00:00Z,1,1\n"
        + "".join(f"r{i},{user},2026-03-20T0{i % 10}:00:00Z,{i + 1},-{i}\n" for i in range(25))
        + f"r3,{user},2026-03-20T00:00:00Z,7,7\n"
    )
    report = import_files(demo_store, trades=again)
    assert (report.trades_inserted, report.trades_present) == (25, 2)
    with demo_store.write() as conn:  # rows written by other means get no chunk
        conn.execute(
            "INSERT INTO trades (trade_id, user_ref, ts, volume_micro, pnl_micro) VALUES ('raw', 1, ?, 5, 5)",
            (NOW,),
        )
        conn.execute("UPDATE meta SET value = value + 1 WHERE key = 'data_version'")
    more = tmp_path / "more.csv"
    more.write_text(HEADER + f"after-raw,{user},2026-03-20T01:00:00Z,3,3\n")
    import_files(demo_store, trades=more)
    assert columns(demo_store) == rows(demo_store)


def test_an_index_loaded_from_chunks_equals_one_loaded_from_rows(demo_store: SQLiteStore) -> None:
    from_chunks = TradeIndex.load(demo_store)
    with demo_store.write() as conn:
        conn.execute("DELETE FROM trade_chunks")
    from_rows = TradeIndex.load(demo_store)
    for f in Filter:
        for p in Period:
            assert compute(from_chunks, f, p, NOW) == compute(from_rows, f, p, NOW)
