"""Faults injected under the store, shared by the tests of this folder.

- `Workload`: a store of users and trades (with an ingest key) and the files of one import through each
  path: trades as CSV read row by row, as JSON Lines, as CSV big enough for the numpy fast path, and users;
- `State`: everything an import may change (data version, every row of every table, hashed, and the nine
  dashboards at NOW), so that "exactly as before or exactly as after" is one comparison;
- `tmpfs`: a small RAM disk, mounted for the test (a real full disk: ENOSPC, not a simulation);
- `unwritable`: a file or folder that this process may not write, root included (`chattr +i`);
- `damage`: a b-tree's root page overwritten with seeded garbage.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, NoReturn

import anyio
import pytest
from anyio.abc import Process
from anyio.streams.text import TextReceiveStream

from cymetica_mcp.auth import KeyRing, jwt_secret
from cymetica_mcp.engine import TradeIndex, compute
from cymetica_mcp.ingest import DemoSpec, import_files, write_demo
from cymetica_mcp.ingest._fastpath import FAST_PATH_BYTES
from cymetica_mcp.models import Filter, Period, Scope
from cymetica_mcp.store import SQLiteStore
from tests.conftest import NOW, NOW_ISO, clean_env

SEED: Final = 13
"""Every random choice of these tests (kill points, free room, damaged bytes) comes from this seed."""
BASE_TRADES: Final = 2_000
ROW_TRADES: Final = 3_000  # a CSV this size is read row by row (under FAST_PATH_BYTES)
FAST_TRADES: Final = 40_000  # and this one by the numpy fast path
TABLES: Final = {
    "meta": "key, value",
    "users": "*",
    "trades": "*",
    "trade_chunks": "*",
    "settings": "*",
    # last use is recorded on every authenticated request: it is not the import's doing
    "api_keys": "id, name, prefix, secret_hash, created_at, revoked_at, scopes, expires_at",
}


@dataclass(frozen=True)
class State:
    """What an import may change, comparable as a whole."""

    data_version: int
    counts: dict[str, int]
    digest: str
    dashboards: list[dict[str, Any]] = field(repr=False)


def state_of(db: Path) -> State:
    """The state of the store at `db`, opened as a server opens it (a WAL a killed writer left is
    recovered), after SQLite's integrity and foreign key checks and the store's own check pass."""
    store = SQLiteStore(db)
    assert store.check() == [], f"{db} is not sound"
    counts: dict[str, int] = {}
    digest = hashlib.sha256()
    with store.read() as conn:
        conn.execute("BEGIN")
        for table, columns in TABLES.items():
            rows = conn.execute(f"SELECT {columns} FROM {table} ORDER BY 1").fetchall()
            counts[table] = len(rows)
            digest.update(repr((table, rows)).encode())
        version = store.data_version(conn)
    index = TradeIndex.load(store)
    views = [compute(index, f, p, NOW).to_wire() for f in Filter for p in Period]
    return State(version, counts, digest.hexdigest(), views)


def copy_store(source: Path, target: Path) -> Path:
    """A copy of the store at `source` as the new file `target` (SQLite's backup API: one committed state)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with closing(sqlite3.connect(source)) as src, closing(sqlite3.connect(target)) as dst:
        src.backup(dst)
    return target


def file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass(frozen=True)
class ImportPath:
    """One way in: the command line's arguments and the HTTP route and media type for the same file."""

    name: str
    args: tuple[str, ...]
    file: Path
    route: str
    media_type: str


@dataclass
class Workload:
    """The store every fault starts from, and the file each import path brings."""

    folder: Path
    base: Path
    key: str
    paths: dict[str, ImportPath]
    before: State
    _after: dict[str, State] = field(default_factory=dict)

    def fresh(self, target: Path) -> Path:
        """A private copy of the starting store."""
        return copy_store(self.base, target)

    def after(self, name: str) -> State:
        """The state an import through path `name` leaves when nothing goes wrong (computed once)."""
        if name not in self._after:
            db = self.fresh(self.folder / f"after-{name}" / "store.db")
            path = self.paths[name]
            if path.name == "users":
                import_files(SQLiteStore(db), users=path.file)
            else:
                import_files(SQLiteStore(db), trades=path.file, fmt="jsonl" if path.name == "jsonl" else None)
            self._after[name] = state_of(db)
        return self._after[name]


def _trades_jsonl(csv_file: Path, target: Path) -> Path:
    lines = csv_file.read_text().splitlines()
    header = lines[0].split(",")
    target.write_text(
        "".join(json.dumps(dict(zip(header, line.split(","), strict=True))) + "\n" for line in lines[1:])
    )
    return target


@pytest.fixture(scope="session")
def workload(tmp_path_factory: pytest.TempPathFactory) -> Workload:
    """300 users and 2,000 trades with an ingest key; files of 3,000 trades (CSV, JSON Lines), 40,000
    trades (CSV, the fast path) and 300 users (200 changed, 100 new)."""
    folder = tmp_path_factory.mktemp("faults")
    users, trades = write_demo(DemoSpec(users=300, trades=FAST_TRADES, days=30, seed=SEED), NOW, folder)
    lines = trades.read_text().splitlines(keepends=True)
    earlier = folder / "earlier.csv"
    earlier.write_text(lines[0] + "".join("pre-" + line for line in lines[1 : BASE_TRADES + 1]))
    base = folder / "base.db"
    store = SQLiteStore(base)
    import_files(store, users, earlier)
    key = KeyRing(store).create("faults", scopes=(Scope.READ, Scope.INGEST))[1]
    jwt_secret(store, None)  # the server's generated secret, stored once here rather than at its start
    rows = folder / "rows.csv"
    rows.write_text("".join(lines[: ROW_TRADES + 1]))
    assert rows.stat().st_size < FAST_PATH_BYTES <= trades.stat().st_size
    user_lines = users.read_text().splitlines(keepends=True)
    changed = [line.replace(",human,", ",agent,", 1) for line in user_lines[1:201]]
    new = [f"n{i:07d},{'human' if i % 3 else 'agent'},{i}.5,2026-02-01T00:00:00Z\n" for i in range(100)]
    people = folder / "people.csv"
    people.write_text(user_lines[0] + "".join(changed + new))
    paths = {
        "csv": ImportPath("csv", ("--trades", str(rows)), rows, "/api/v1/ingest/trades", "text/csv"),
        "jsonl": ImportPath(
            "jsonl",
            ("--trades", str(_trades_jsonl(rows, folder / "rows.jsonl"))),
            folder / "rows.jsonl",
            "/api/v1/ingest/trades",
            "application/x-ndjson",
        ),
        "fast": ImportPath("fast", ("--trades", str(trades)), trades, "/api/v1/ingest/trades", "text/csv"),
        "users": ImportPath("users", ("--users", str(people)), people, "/api/v1/ingest/users", "text/csv"),
    }
    return Workload(folder, base, key, paths, state_of(base))


def skip_or_fail(reason: str) -> NoReturn:
    """Skip for `reason` on a developer's machine; under CI (CI=true) the suite's hook turns the skip
    into a failure (tests/conftest.py), so a missing capability cannot pass CI unseen."""
    pytest.skip(reason)


@contextmanager
def tmpfs(folder: Path, size: int) -> Iterator[Path]:
    """A tmpfs of `size` bytes mounted at `folder` for the block: a disk that really fills up."""
    if os.geteuid() != 0:
        skip_or_fail("a full disk is a small tmpfs, and mounting one needs root: run the tests as root")
    folder.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(folder)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        skip_or_fail(f"cannot mount a tmpfs at {folder} ({mounted.stderr.strip()}): it needs CAP_SYS_ADMIN")
    try:
        yield folder
    finally:
        if subprocess.run(["umount", str(folder)], check=False).returncode != 0:
            subprocess.run(["umount", "-l", str(folder)], check=True)


def fill(disk: Path, room: int) -> None:
    """Take every free byte of the file system at `disk` but `room` (rounded down to whole blocks)."""
    stat = os.statvfs(disk)
    free = stat.f_bavail * stat.f_frsize
    filler = disk / "filler"
    with filler.open("wb") as out:
        out.truncate(0)
        remaining = max(0, free - room)
        block = b"\0" * (1 << 20)
        while remaining:
            remaining -= out.write(block[: min(remaining, len(block))])


def free_up(disk: Path) -> None:
    (disk / "filler").unlink(missing_ok=True)


@contextmanager
def unwritable(path: Path) -> Iterator[None]:
    """`path` (a file or a folder) that this process may not write: `chattr +i` (immutable, which binds
    root too) when run as root, else the write permission taken away."""
    if os.geteuid() != 0:
        mode = path.stat().st_mode
        path.chmod(mode & ~0o222)
        try:
            yield
        finally:
            path.chmod(mode)
        return
    if shutil.which("chattr") is None:
        skip_or_fail("chattr is missing: apt-get install e2fsprogs")
    done = subprocess.run(["chattr", "+i", str(path)], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        skip_or_fail(
            f"chattr +i {path} failed ({done.stderr.strip()}): the file system has no immutable flag"
        )
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)


def damage(db: Path, btree: str, seed: int) -> None:
    """Overwrite the root page of the table or index `btree` with seeded garbage, once every page is in
    the main file (a checkpoint first, so the damaged page is the one readers get)."""
    with closing(sqlite3.connect(db)) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        root = conn.execute("SELECT rootpage FROM sqlite_schema WHERE name = ?", (btree,)).fetchone()[0]
        page = conn.execute("PRAGMA page_size").fetchone()[0]
    garbage = random.Random(seed).randbytes(page)
    with db.open("r+b") as raw:
        raw.seek((root - 1) * page)
        raw.write(garbage)


@dataclass
class ServerProcess:
    """`cymetica-mcp serve` running as a process of its own, as users run it."""

    process: Process
    url: str
    log: Path

    @property
    def ws_url(self) -> str:
        return "ws" + self.url.removeprefix("http") + "/ws/analytics"


@asynccontextmanager
async def server_process(db: Path | str, *args: str, log: Path | None = None) -> AsyncIterator[ServerProcess]:
    """`cymetica-mcp --db DB serve --port 0 ARGS` (clock fixed at NOW); yields once its banner names
    its URL; killed at the end if still running. Its log goes to `log`, by default a file beside the
    store (a pipe nobody reads would stop it once full)."""
    env = {**clean_env(), "CYMETICA_NOW": NOW_ISO}
    if log is None:
        assert isinstance(db, Path), "a store that is not a file needs a `log` path"
        log = db.with_name(db.name + ".log")
    command = [sys.executable, "-m", "cymetica_mcp", "--db", str(db), "serve", "--port", "0", *args]
    with log.open("wb") as err:
        process = await anyio.open_process(command, env=env, stdout=subprocess.PIPE, stderr=err)
    try:
        assert process.stdout is not None
        text = ""
        found = None
        with anyio.fail_after(30):
            async for chunk in TextReceiveStream(process.stdout):
                text += chunk
                found = re.search(r" at (http://127\.0\.0\.1:\d+)\n", text)
                if found and "fixed at" in text:
                    break
        assert found, text + log.read_text()
        yield ServerProcess(process, found.group(1), log)
    finally:
        if process.returncode is None:
            process.kill()
        with anyio.fail_after(30):
            await process.wait()
        await process.aclose()
