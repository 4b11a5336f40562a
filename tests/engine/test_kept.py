"""The index kept beside the store: mapped on start instead of rebuilt, checked against the store,
rebuilt when missing, cut short, foreign, ahead of the store or of another horizon."""

from __future__ import annotations

import fcntl
import json
import random
import shutil
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from cymetica_mcp.engine import Engine, TradeIndex, compute, keep_index, kept_info, prepare_index
from cymetica_mcp.ingest import DemoSpec, import_files, write_demo
from cymetica_mcp.models import Filter, Period
from cymetica_mcp.store import SQLiteStore
from cymetica_mcp.windows import DAY, HOUR, iso
from tests.conftest import NOW

PAIRS = [(f, p) for f in Filter for p in Period]
INSTANTS = (NOW, NOW - 3 * DAY - 17, NOW - 20 * DAY + HOUR // 2)


def figures(index: TradeIndex) -> list[dict[str, object]]:
    return [compute(index, f, p, now).to_wire() for f, p in PAIRS for now in INSTANTS]


def started(store: SQLiteStore, horizon: int = 0) -> Engine:
    """An engine that has made its first index (and finished keeping it)."""
    engine = Engine(store, clock=lambda: NOW, keep_index=True, horizon=horizon)
    engine.index()
    engine.close()  # waits for the file being written
    return engine


def more_trades(store: SQLiteStore, folder: Path, seed: int, trades: int = 300) -> None:
    """`trades` new trades of the store's users over the last 30 days, into `store`."""
    with store.read() as conn:
        users = [row[0] for row in conn.execute("SELECT user_id FROM users ORDER BY id")]
    rng = random.Random(seed)
    rows = [
        f"s{seed}-{i},{rng.choice(users)},{iso(NOW - rng.randrange(30 * DAY))},{rng.randrange(1, 10**4)}.5,"
        f"{rng.randrange(-500, 500)}.25\n"
        for i in range(trades)
    ]
    folder.mkdir()
    path = folder / "trades.csv"
    path.write_text("trade_id,user_id,ts,volume_usdc,pnl_usdc\n" + "".join(rows))
    import_files(store, trades=path)


def test_a_second_start_maps_the_kept_index_and_answers_the_same(demo_store: SQLiteStore) -> None:
    first = started(demo_store)
    assert first.load_source == "store"
    kept = kept_info(demo_store)
    assert kept is not None and kept.version == demo_store.data_version() and kept.trades == 4_000
    second = Engine(demo_store, clock=lambda: NOW, keep_index=True)
    index = second.index()
    assert second.load_source == "kept"
    assert not index.main.key.flags.writeable  # a read-only view of the mapped file, not a copy
    assert figures(index) == figures(TradeIndex.load(demo_store))
    second.close()


def test_a_kept_index_behind_the_store_is_brought_up_to_date(demo_store: SQLiteStore, tmp_path: Path) -> None:
    started(demo_store)
    more_trades(demo_store, tmp_path / "more", seed=21)
    engine = Engine(demo_store, clock=lambda: NOW, keep_index=True)
    index = engine.index()
    assert engine.load_source == "kept"
    assert index.version == demo_store.data_version() and index.trade_count == 4_300
    assert figures(index) == figures(TradeIndex.load(demo_store))
    more_trades(demo_store, tmp_path / "again", seed=22)  # an import while it runs: the delta run
    assert figures(engine.index()) == figures(TradeIndex.load(demo_store))
    engine.close()


def test_a_cut_short_or_foreign_file_is_rebuilt_from_the_rows(demo_store: SQLiteStore) -> None:
    started(demo_store)
    path = demo_store.index_path
    size = path.stat().st_size
    with path.open("r+b") as file:
        file.truncate(size // 2)
    engine = started(demo_store)
    assert engine.load_source == "store"
    assert path.stat().st_size == size  # kept whole again
    path.write_bytes(b"not an index at all")
    assert started(demo_store).load_source == "store"
    assert started(demo_store).load_source == "kept"


def test_a_file_of_another_history_or_horizon_is_not_used(demo_store: SQLiteStore, tmp_path: Path) -> None:
    # another store with as many imports (the same data version) but other trades
    other = SQLiteStore(tmp_path / "other.db")
    users, trades = write_demo(DemoSpec(users=120, trades=4_000, days=70, seed=99), NOW, tmp_path / "o")
    import_files(other, users, trades)
    assert other.data_version() == demo_store.data_version()
    started(other)
    shutil.copy(other.index_path, demo_store.index_path)
    engine = started(demo_store)
    assert engine.load_source == "store"
    assert figures(engine.index()) == figures(TradeIndex.load(demo_store))
    # a file kept with another horizon is rebuilt with this engine's
    assert started(demo_store, horizon=100 * DAY).load_source == "store"
    info = kept_info(demo_store)
    assert info is not None and info.horizon == 100 * DAY


def test_a_file_ahead_of_the_store_is_not_used(demo_store: SQLiteStore, tmp_path: Path) -> None:
    backup = tmp_path / "backup.db"
    demo_store.backup(backup)
    more_trades(demo_store, tmp_path / "more", seed=23)
    started(demo_store)
    # the store restored from its backup: the kept file is now from a later version
    with closing(sqlite3.connect(backup)) as source, closing(sqlite3.connect(demo_store.path)) as target:
        source.backup(target)
    engine = started(demo_store)
    assert engine.load_source == "store"
    assert engine.index().trade_count == 4_000


def test_keep_index_writes_once_per_version(demo_store: SQLiteStore) -> None:
    index = TradeIndex.load(demo_store)
    written = keep_index(demo_store, index)
    assert written is not None and written.version == index.version
    mtime = demo_store.index_path.stat().st_mtime_ns
    assert keep_index(demo_store, index) == written
    assert demo_store.index_path.stat().st_mtime_ns == mtime


@pytest.mark.parametrize("where", ["missing-folder"])
def test_a_file_that_cannot_be_written_leaves_the_engine_working(tmp_path: Path, where: str) -> None:
    store = SQLiteStore(tmp_path / "s.db")
    import_files(store, *write_demo(DemoSpec(users=20, trades=200, days=10, seed=1), NOW, tmp_path / "d"))
    store.index_path.mkdir()  # a folder where the file should be: the write fails, quietly
    engine = started(store)
    assert engine.load_source == "store" and kept_info(store) is None
    assert engine.dashboard(Filter.ALL, Period.H24).metrics.trading_volume.value > 0


def test_a_header_this_program_did_not_write_is_rebuilt(demo_store: SQLiteStore) -> None:
    started(demo_store)
    path = demo_store.index_path
    data = path.read_bytes()
    length = int.from_bytes(data[8:16], "little")
    header = json.loads(data[16 : 16 + length])
    header["runs"] = {"main": {}}  # every key there, the structure wrong
    text = json.dumps(header).encode().ljust(length)
    path.write_bytes(data[:8] + len(text).to_bytes(8, "little") + text + data[16 + length :])
    assert kept_info(demo_store) is not None  # the header reads...
    assert started(demo_store).load_source == "store"  # ...but the index does not: rebuilt


def test_prepare_index_builds_once_and_then_reuses(demo_store: SQLiteStore) -> None:
    assert kept_info(demo_store) is None
    made = prepare_index(demo_store, 120, NOW)
    assert made is not None and made.version == demo_store.data_version()
    again = prepare_index(demo_store, 120, NOW)
    assert again == made  # the same file, not written again
    assert prepare_index(demo_store, 0, NOW) != made  # another horizon: rebuilt
    assert started(demo_store).load_source == "kept"


def test_another_process_writing_the_file_is_left_to_it(demo_store: SQLiteStore) -> None:
    path = demo_store.index_path
    with open(path.with_name(path.name + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # held as a writing process would
        assert keep_index(demo_store, TradeIndex.load(demo_store)) is None
    assert kept_info(demo_store) is None
