"""`cymetica-mcp import` on a store that fails under it, through every import path.

A full disk (a real tmpfs filled to a seeded amount of free room), a read-only file, a read-only folder
(where SQLite must create the -wal and -shm files), a file that is not SQLite and a file with damaged
pages: each gives exit status 2 and one line `error (unavailable): the store cannot be used: <the
fault>; nothing was written: <what to do>`, no traceback, and leaves the store exactly as it was
before (or, where the fault let the import through, exactly as after), sound by `PRAGMA
integrity_check` and the store's own check.
"""

from __future__ import annotations

import random
import shutil
from contextlib import closing
from pathlib import Path

import pytest

from cymetica_mcp.cli import main
from cymetica_mcp.store import SQLiteStore
from tests.faults.conftest import (
    SEED,
    Workload,
    damage,
    file_digest,
    fill,
    free_up,
    state_of,
    tmpfs,
    unwritable,
)

PATHS = ("csv", "jsonl", "fast", "users")
ROOMS_PER_PATH = 4
DISK_BYTES = 24 << 20

FULL = "its disk is full"
READ_ONLY = "it may not be written"
CANNOT_OPEN = "it cannot be opened"
NOT_SQLITE = "it is not a SQLite database"
DAMAGED = "it is damaged"


def run_import(
    db: Path, workload: Workload, path: str, capsys: pytest.CaptureFixture[str]
) -> tuple[int, str]:
    """The command line, in this process: its exit status and what it wrote to stderr."""
    capsys.readouterr()
    status = main(["--db", str(db), "import", *workload.paths[path].args])
    return status, capsys.readouterr().err


def assert_refused(status: int, err: str, fault: str) -> None:
    assert status == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith("error (unavailable): the store cannot be used: "), err
    assert fault in lines[0] and "nothing was written" in lines[0], err


@pytest.mark.parametrize("path", PATHS)
def test_a_full_disk_refuses_the_import_whole_at_every_amount_of_room(
    workload: Workload, path: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with tmpfs(tmp_path / "disk", DISK_BYTES) as disk:
        # what the import takes on this disk when it has room: the file's growth, its -wal and -shm
        # files (kept whole by a reader holding the store open, as a server does)
        db = workload.fresh(disk / "store.db")
        start = db.stat().st_size
        with closing(SQLiteStore(db).connect()) as server:
            server.execute("SELECT count(*) FROM meta").fetchone()
            status, err = run_import(db, workload, path, capsys)
            assert status == 0, err
            need = sum(p.stat().st_size for p in disk.iterdir()) - start
        assert state_of(db) == workload.after(path)
        for name in ("store.db", "store.db-wal", "store.db-shm"):
            (disk / name).unlink(missing_ok=True)

        rng = random.Random(f"{SEED}-{path}")
        rooms = sorted(rng.randrange(0, need + need // 4) for _ in range(ROOMS_PER_PATH))
        outcomes = []
        for room in rooms:
            db = workload.fresh(disk / "store.db")
            fill(disk, room)
            status, err = run_import(db, workload, path, capsys)
            free_up(disk)
            if status == 0:
                assert state_of(db) == workload.after(path), room
                outcomes.append("after")
            else:
                assert_refused(status, err, FULL)
                assert state_of(db) == workload.before, room
                outcomes.append("before")
            for name in ("store.db", "store.db-wal", "store.db-shm"):
                (disk / name).unlink(missing_ok=True)
        assert outcomes[0] == "before", (rooms, outcomes)  # the least room: the disk did fill up

        # room again: the same import goes through
        db = workload.fresh(disk / "store.db")
        status, err = run_import(db, workload, path, capsys)
        assert status == 0, err
        assert state_of(db) == workload.after(path)


@pytest.mark.parametrize("path", PATHS)
def test_a_read_only_file_refuses_the_import_and_stays_as_it_was(
    workload: Workload, path: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = workload.fresh(tmp_path / "store.db")
    before = file_digest(db)
    with unwritable(db):
        status, err = run_import(db, workload, path, capsys)
    assert_refused(status, err, READ_ONLY)
    assert file_digest(db) == before
    assert state_of(db) == workload.before


@pytest.mark.parametrize("path", PATHS)
def test_a_read_only_folder_refuses_the_import_unless_the_log_is_already_there(
    workload: Workload, path: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "store"
    db = workload.fresh(folder / "store.db")
    before = file_digest(db)
    with unwritable(folder):  # SQLite cannot create store.db-wal and store.db-shm beside the file
        status, err = run_import(db, workload, path, capsys)
    assert_refused(status, err, CANNOT_OPEN)
    assert sorted(p.name for p in folder.iterdir()) == ["store.db"]
    assert file_digest(db) == before
    assert state_of(db) == workload.before

    # with the -wal and -shm files already there (a server has the store open), the import can write
    # them, and does: all of it, even though SQLite could not create them now
    db = workload.fresh(tmp_path / "open" / "store.db")
    with closing(SQLiteStore(db).connect()) as server:
        server.execute("SELECT count(*) FROM meta").fetchone()
        with unwritable(db.parent):
            status, err = run_import(db, workload, path, capsys)
    assert status == 0, err
    assert state_of(db) == workload.after(path)


@pytest.mark.parametrize("path", PATHS)
def test_a_file_that_is_not_sqlite_is_named_as_such_and_left_alone(
    workload: Workload, path: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # the usual mistake: --db pointed at a data file
    db = tmp_path / "trades.csv"
    shutil.copyfile(workload.paths["csv"].file, db)
    before = file_digest(db)
    status, err = run_import(db, workload, path, capsys)
    assert_refused(status, err, NOT_SQLITE)
    assert file_digest(db) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["trades.csv"]


# the data version, read first by every import; and the unique index each import path writes through
DAMAGED_BTREES = [(path, "meta") for path in PATHS] + [
    (path, "sqlite_autoindex_users_1" if path == "users" else "sqlite_autoindex_trades_1") for path in PATHS
]


@pytest.mark.parametrize(("path", "btree"), DAMAGED_BTREES)
def test_damaged_pages_are_named_and_the_file_is_left_as_it_was(
    workload: Workload, path: str, btree: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = workload.fresh(tmp_path / "store.db")
    damage(db, btree, SEED)
    before = file_digest(db)
    status, err = run_import(db, workload, path, capsys)
    assert_refused(status, err, DAMAGED)
    assert file_digest(db) == before
    wal = db.with_name(db.name + "-wal")
    assert not wal.exists() or wal.stat().st_size == 0  # no frame of the refused import was kept
