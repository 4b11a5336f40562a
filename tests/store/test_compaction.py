"""Many small imports leave few packed chunks (issue 14), and the chunks still say exactly what the
trades table says: merged only where their ids meet, and only with the import that merges them."""

from __future__ import annotations

import random
import sqlite3
from collections.abc import Sequence
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cymetica_mcp.engine import TradeIndex, compute
from cymetica_mcp.errors import AnalyticsError
from cymetica_mcp.ingest import ImportRefused, import_files
from cymetica_mcp.models import Filter, Period
from cymetica_mcp.store import SQLiteStore
from cymetica_mcp.store import _chunks as chunks
from cymetica_mcp.store._schema import MIGRATIONS
from tests.conftest import NOW
from tests.store.test_chunks import HEADER, columns, rows

USERS = "user_id,kind,capital_usdc,created_at\n" + "".join(
    f"u{i},{'human' if i % 3 else 'agent'},{1_000 + i},2026-01-01T00:00:00Z\n" for i in range(12)
)
SMALL_TAIL: int = (chunks.FAN_IN - 1) * chunks.LEVELS
"""The most small chunks a compacted store keeps after its last large one (or a gap): 45."""


def trade_lines(rng: random.Random, count: int, prefix: str) -> list[str]:
    """`count` trade lines of random users, amounts and times in the 40 days before NOW."""
    lines: list[str] = []
    for _ in range(count):
        ts = datetime.fromtimestamp(NOW - rng.randrange(40 * 86_400), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        volume, pnl = rng.randrange(1, 10**9), rng.randrange(-(10**8), 10**8)
        lines.append(f"{prefix}{len(lines)},u{rng.randrange(12)},{ts},{volume / 1e6:.6f},{pnl / 1e6:.6f}\n")
    return lines


def import_trades(store: SQLiteStore, folder: Path, lines: Sequence[str]) -> None:
    path = folder / "trades.csv"
    path.write_text(HEADER + "".join(lines))
    import_files(store, trades=path)


def spans(store: SQLiteStore) -> list[tuple[int, int]]:
    with store.read() as conn:
        return conn.execute("SELECT first_id, last_id FROM trade_chunks ORDER BY first_id").fetchall()


def small_tail(found: list[tuple[int, int]]) -> int:
    """The most small chunks in a row, ids meeting, after a large chunk or a gap."""
    most = run = 0
    for at, (first, last) in enumerate(found):
        if at and first != found[at - 1][1] + 1:
            run = 0
        run = 0 if last - first + 1 >= chunks.SMALL_ROWS else run + 1
        most = max(most, run)
    return most


def assert_each_chunk_exact(store: SQLiteStore) -> None:
    """Every chunk holds exactly the columns of the trades in its id range, one value per id."""
    with store.read() as conn:
        for first, last, *blobs in conn.execute("SELECT * FROM trade_chunks ORDER BY first_id"):
            stored = conn.execute(
                "SELECT user_ref, ts, volume_micro, pnl_micro FROM trades WHERE id BETWEEN ? AND ?",
                (first, last),
            ).fetchall()
            assert len(stored) == last - first + 1
            packed = np.stack([np.frombuffer(blob, dtype="<i8") for blob in blobs], axis=1)
            assert packed.tolist() == [list(row) for row in stored]


def dashboards(index: TradeIndex) -> list[object]:
    return [compute(index, f, p, NOW) for f in Filter for p in Period]


@pytest.mark.parametrize(
    ("imports", "smallest", "largest", "large_made"), [(300, 1, 5, False), (60, 300, 1_500, True)]
)
def test_many_small_imports_keep_few_chunks_that_read_exactly(
    tmp_path: Path, imports: int, smallest: int, largest: int, large_made: bool
) -> None:
    store, whole = SQLiteStore(tmp_path / "small.db"), SQLiteStore(tmp_path / "whole.db")
    users = tmp_path / "users.csv"
    users.write_text(USERS)
    import_files(store, users=users)
    import_files(whole, users=users)
    rng = random.Random(14)
    every: list[str] = []
    written = np.zeros(imports * largest + 1, dtype=np.int64)  # how many times each row was packed
    for i in range(imports):
        lines = trade_lines(rng, rng.randint(smallest, largest), f"i{i}-")
        before = set(spans(store))
        import_trades(store, tmp_path, lines)
        every += lines
        found = spans(store)
        for first, last in set(found) - before:
            written[first : last + 1] += 1
        assert small_tail(found) <= SMALL_TAIL  # after every import, not just at the end
    assert written.max() <= 2 * chunks.LEVELS + 2  # packed once, then merged at most 2 * LEVELS + 1 times
    import_trades(whole, tmp_path, every)  # the same trades in one import: one chunk

    found = spans(store)
    sizes = [last - first + 1 for first, last in found]
    assert sum(sizes) == len(every)
    large = [at for at, size in enumerate(sizes) if size >= chunks.SMALL_ROWS]
    assert len(found) - (large[-1] + 1 if large else 0) == small_tail(found) <= SMALL_TAIL
    assert len(found) <= len(large) + SMALL_TAIL <= len(every) // chunks.SMALL_ROWS + SMALL_TAIL
    assert bool(large) == large_made  # merged into chunks of SMALL_ROWS rows and more
    assert chunks.plan(found) == []  # settled: another compaction would merge nothing
    assert_each_chunk_exact(store)
    assert columns(store) == rows(store) == rows(whole)
    assert dashboards(TradeIndex.load(store)) == dashboards(TradeIndex.load(whole))


def test_compaction_never_merges_over_rows_that_have_no_chunk(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "store.db")
    users = tmp_path / "users.csv"
    users.write_text(USERS)
    import_files(store, users=users)
    rng = random.Random(7)
    raw: list[int] = []
    for part in range(3):
        for i in range(40):
            import_trades(store, tmp_path, trade_lines(rng, rng.randint(1, 5), f"p{part}-{i}-"))
        with store.write() as conn:  # rows written by other means get no chunk: a gap in the chunks
            cursor = conn.execute(
                "INSERT INTO trades (trade_id, user_ref, ts, volume_micro, pnl_micro) VALUES (?, 1, ?, 5, -5)",
                (f"raw{part}", NOW),
            )
            raw.append(int(cursor.lastrowid or 0))
            conn.execute("UPDATE meta SET value = value + 1 WHERE key = 'data_version'")
    found = spans(store)
    assert not [(first, last) for first, last in found for gap in raw if first <= gap <= last]
    assert len(found) < 3 * 40 // 2  # merged on each side of every gap
    for part, gap in enumerate(raw):  # each side settled on its own
        side = [span for span in found if (raw[part - 1] if part else 0) < span[0] < gap]
        assert side
        assert chunks.plan(side) == []
        assert len(side) <= SMALL_TAIL
    assert chunks.plan(found) == []
    assert_each_chunk_exact(store)
    assert columns(store) == rows(store)
    from_chunks = dashboards(TradeIndex.load(store))
    with store.write() as conn:
        conn.execute("DELETE FROM trade_chunks")
    assert from_chunks == dashboards(TradeIndex.load(store))


def test_merges_stop_at_gaps_and_large_chunks() -> None:
    ones = [(i, i) for i in range(1, 17)]  # sixteen chunks of one row: one chunk of 16
    assert chunks.plan(ones) == [(1, 16)]
    assert chunks.plan([*ones[:8], *((i + 1, i + 1) for i in range(9, 17))]) == []  # a gap at id 9
    assert chunks.plan([(1, 5000), *((i, i) for i in range(5001, 5017))]) == [(5001, 5016)]
    assert chunks.plan([(1, 1), (2, 300)]) == [(1, 300)]  # a lower level just before: taken in
    assert chunks.plan([(1, 1), (3, 300)]) == []
    assert chunks.plan([(1, 300), (301, 301)]) == []
    assert chunks.plan([(1, 300), (301, 5000)]) == [(1, 5000)]  # a large chunk takes in the small ones
    assert [chunks.level(n) for n in (1, 15, 16, 255, 256, 4_095, 4_096, 10**6)] == [0, 0, 1, 1, 2, 2, 3, 3]


def dump(store: SQLiteStore) -> list[str]:
    with store.read() as conn:
        return list(conn.iterdump())


def test_an_import_refused_for_a_bad_row_leaves_the_chunks_as_they_were(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = SQLiteStore(tmp_path / "store.db")
    users = tmp_path / "users.csv"
    users.write_text(USERS)
    import_files(store, users=users)
    rng = random.Random(3)
    for i in range(15):  # the next import's chunk would be the sixteenth of its level
        import_trades(store, tmp_path, trade_lines(rng, 1, f"t{i}-"))
    before, chunked = dump(store), spans(store)
    assert len(chunked) == 15
    packed: list[int] = []
    real = chunks.append_columns

    def append_columns(conn: sqlite3.Connection, first_id: int, *columns: chunks.I64) -> None:
        packed.append(len(columns[1]))
        real(conn, first_id, *columns)

    monkeypatch.setattr(chunks, "append_columns", append_columns)
    lines = [*trade_lines(rng, 40_000, "big-"), "bad,u1,2026-03-20T00:00:00Z,-1,0\n"]
    with pytest.raises(ImportRefused):
        import_trades(store, tmp_path, lines)
    assert packed  # whole blocks of good rows were written and packed before the bad row was met
    assert dump(store) == before
    import_trades(store, tmp_path, trade_lines(rng, 1, "next-"))  # accepted: it merges
    assert len(spans(store)) == 1


def test_compaction_is_rolled_back_with_an_import_refused_after_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = SQLiteStore(tmp_path / "store.db")
    users = tmp_path / "users.csv"
    users.write_text(USERS)
    import_files(store, users=users)
    big = "999999999999"  # four trades of 1e12 USDC fit the engine's range (2^62 micro-USDC), five do not
    import_trades(store, tmp_path, [f"big{i},u1,2026-03-20T10:00:00Z,{big},-1\n" for i in range(4)])
    rng = random.Random(5)
    for i in range(14):
        import_trades(store, tmp_path, trade_lines(rng, 1, f"t{i}-"))
    before, chunked = dump(store), spans(store)
    assert len(chunked) == 15

    seen: list[int] = []
    real = chunks.compact

    def compact(conn: sqlite3.Connection, after: int) -> int:
        fewer = real(conn, after)
        seen.append(conn.execute("SELECT count(*) FROM trade_chunks").fetchone()[0])
        return fewer

    monkeypatch.setattr(chunks, "compact", compact)
    with pytest.raises(AnalyticsError, match="the range the engine sums exactly"):
        import_trades(store, tmp_path, [f"big4,u1,2026-03-20T10:00:00Z,{big},-1\n"])
    assert seen == [1]  # the refused import had merged its sixteen chunks into one...
    assert dump(store) == before  # ...and the merge went with it
    import_trades(store, tmp_path, trade_lines(rng, 1, "next-"))
    assert seen == [1, 1]
    assert_each_chunk_exact(store)
    assert columns(store) == rows(store)


# A property of the merging itself, over a bare chunk table: imports of chunks of any sizes, each
# repeated some times, some after rows that have no chunk.
CHUNK_TABLE = next(script for script in MIGRATIONS if "CREATE TABLE trade_chunks" in script)
SIZES = st.one_of(st.integers(1, 20), st.integers(1, 400), st.integers(1, 6_000))
IMPORTS = st.lists(
    st.tuples(
        st.integers(0, 3).map(lambda n: n == 0), st.lists(SIZES, min_size=1, max_size=4), st.integers(1, 40)
    ),
    max_size=30,
)


@settings(max_examples=100, deadline=None, derandomize=True)
@given(imports=IMPORTS)
def test_compaction_keeps_chunks_exact_settled_and_each_row_rewritten_a_few_times(
    imports: list[tuple[bool, list[int], int]],
) -> None:
    with closing(sqlite3.connect(":memory:")) as conn:
        conn.executescript(CHUNK_TABLE)
        newest, gaps = 0, set()
        rewrites = np.zeros(sum((1 + sum(sizes)) * times for _, sizes, times in imports) + 1, dtype=np.int64)
        for gap, sizes, times in imports:
            if gap:  # a row read from `trades` itself
                newest += 1
                gaps.add(newest)
            for _ in range(times):
                after = newest
                for size in sizes:
                    ids = np.arange(newest + 1, newest + size + 1, dtype=np.int64)
                    chunks.append_columns(conn, newest + 1, ids, 2 * ids, 3 * ids, -ids)
                    newest += size
                before = set(conn.execute("SELECT first_id, last_id FROM trade_chunks").fetchall())
                fewer = chunks.compact(conn, after)
                found = conn.execute(
                    "SELECT first_id, last_id FROM trade_chunks ORDER BY first_id"
                ).fetchall()
                assert len(before) - len(found) == fewer
                for first, last in set(found) - before:
                    rewrites[first : last + 1] += 1
                assert chunks.plan(found) == []
                assert small_tail(found) <= SMALL_TAIL
        # each row climbs at most LEVELS levels, and is merged at most once more at each level
        assert rewrites.max(initial=0) <= 2 * chunks.LEVELS + 1
        covered = 0
        for first, last, *blobs in conn.execute("SELECT * FROM trade_chunks ORDER BY first_id"):
            ids = np.arange(first, last + 1)
            assert not gaps & set(ids.tolist())
            user, ts, volume, pnl = (np.frombuffer(blob, dtype="<i8") for blob in blobs)
            assert user.tolist() == ids.tolist()
            assert (ts == 2 * ids).all() and (volume == 3 * ids).all() and (pnl == -ids).all()
            covered += len(ids)
        assert covered == newest - len(gaps)
