"""Shared fixtures: a real SQLite store in a temporary folder, filled with deterministic demo data.

Also the rule for tests that need something outside Python (a program, a browser, a Node package):
they call `require_system(tool, install_command)`. Outside CI a missing tool skips the test with the
command that installs it; under CI (`CI=true`, set by `.ci/run` and by CI services) every skip fails the
run unless its test is in `ALLOWED_CI_SKIPS`, because `.ci/run` installs everything the tests need.
"""

from __future__ import annotations

import fnmatch
import os
import shutil
import sqlite3
import sys
from collections.abc import Callable, Generator, Iterator
from contextlib import AbstractContextManager, closing
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Final

import pytest

from cymetica_mcp.engine import Engine, open_engine
from cymetica_mcp.ingest import DemoSpec, import_files, write_demo
from cymetica_mcp.store import PostgresStore, SQLiteStore, Store
from cymetica_mcp.windows import parse_instant
from tests.backends import BACKENDS, fresh_store, pg_copy

if TYPE_CHECKING:
    from tests.postgres import Cluster

NOW_ISO = "2026-03-20T12:34:56Z"
NOW = parse_instant(NOW_ISO)

ALLOWED_CI_SKIPS: Final[dict[str, str]] = {}
"""Tests (node-id patterns, `fnmatch` style) that may skip under CI, each with the reason why it must.
Empty: `.ci/run` installs every system package a test asks for (see /work/notes/ci-skips.md when adding
a test that needs one: add its install command to `.ci/run`, not an entry here)."""


def under_ci(environ: dict[str, str] | None = None) -> bool:
    """Whether this run is CI's (`CI` set to true, 1 or yes, as CI services and `.ci/run` do)."""
    value = (os.environ if environ is None else environ).get("CI", "")
    return value.strip().lower() in ("true", "1", "yes")


def require_system(tool: str, install: str, *, path: Path | None = None) -> str:
    """The program `tool` (found on PATH, or the file `path` when given), or skip the test saying how to
    install it: `install` is the command that does (`.ci/run` runs it on CI machines)."""
    found = (str(path) if path.is_file() else None) if path is not None else shutil.which(tool)
    if found is None:
        where = f" ({path})" if path is not None else ""
        pytest.skip(f"{tool}{where} is missing; install it with: {install}")
    return found


def ci_skip_verdict(nodeid: str, reason: str, *, ci: bool) -> str | None:
    """Why a skip must fail this run (under CI, outside `ALLOWED_CI_SKIPS`), or None if it may stand."""
    if not ci or any(fnmatch.fnmatchcase(nodeid, pattern) for pattern in ALLOWED_CI_SKIPS):
        return None
    return (
        f"skipped under CI: {reason}\n.ci/run must install what this test needs (or, with a reason, "
        "list the test in ALLOWED_CI_SKIPS in tests/conftest.py)"
    )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Under CI, turn a skip outside the allow-list into a failure (expected failures stay as they are)."""
    report = yield
    if report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        verdict = ci_skip_verdict(item.nodeid, reason, ci=under_ci())
        if verdict is not None:
            report.outcome = "failed"
            report.longrepr = verdict
    return report


def import_command(db: Path | str, *args: str) -> list[str]:
    """The command line importing into `db` (a path or a URL), as a user runs it."""
    return [sys.executable, "-m", "cymetica_mcp", "--db", str(db), "import", *args]


def clean_env() -> dict[str, str]:
    """This environment without CYMETICA_* settings, so only the flags given count."""
    return {k: v for k, v in os.environ.items() if not k.startswith("CYMETICA_")}


@pytest.fixture
def anyio_backend() -> str:
    """Async tests run on asyncio (the backend uvicorn and the mcp SDK use here)."""
    return "asyncio"


@pytest.fixture
def store(tmp_path: Path) -> SQLiteStore:
    """An empty store in a fresh SQLite file."""
    return SQLiteStore(tmp_path / "store.db")


@pytest.fixture(scope="session")
def demo_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A small deterministic demo dataset ending at NOW (users.csv, trades.csv), written once per session."""
    return write_demo(
        DemoSpec(users=120, trades=4_000, days=70, seed=3), NOW, tmp_path_factory.mktemp("demo")
    )


@pytest.fixture(scope="session")
def demo_original(demo_files: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo dataset imported into a SQLite file, once per session."""
    store = SQLiteStore(tmp_path_factory.mktemp("demo-db") / "demo.db")
    import_files(store, *demo_files)
    return store.path


@pytest.fixture
def demo_store(demo_original: Path, tmp_path: Path) -> SQLiteStore:
    """A private copy of the demo store for one test, through SQLite's backup API (WAL included)."""
    copy = tmp_path / "demo.db"
    with closing(sqlite3.connect(demo_original)) as source, closing(sqlite3.connect(copy)) as target:
        source.backup(target)
    return SQLiteStore(copy)


@pytest.fixture
def engine(demo_store: SQLiteStore) -> Iterator[Engine]:
    """An engine over the test's demo store, its clock fixed at NOW."""
    engine = open_engine(demo_store, now=NOW)
    yield engine
    engine.close()


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[Cluster]:
    """A throwaway PostgreSQL cluster for the session (tests/postgres.py), started on first use only;
    skips with the install command when PostgreSQL is missing (fails under CI)."""
    from tests.postgres import Cluster  # here, not above: only sessions using PostgreSQL pay for it

    cluster = Cluster()
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def pg_url(pg_cluster: Cluster) -> Iterator[str]:
    """A fresh empty database for one test, owned by role `cymetica`: its URL (dropped afterwards)."""
    if not pg_cluster.running:  # a fault test before this one may have left the server down
        pg_cluster.start()
    url = pg_cluster.create_database()
    yield url
    if not pg_cluster.running:  # this test stopped or killed it: bring it back for the next one
        pg_cluster.start()
    pg_cluster.drop_database(url)


# -- both backends: suites stating a rule of every store run once on each (tests/backends.py) ----------


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """The store backend this run of the test uses: "sqlite" or "postgresql"."""
    return str(request.param)


@pytest.fixture(scope="session")
def new_store(request: pytest.FixtureRequest) -> Callable[[str], AbstractContextManager[Store]]:
    """`new_store(backend)`: a fresh empty store of that backend for a `with` block, for tests that make
    many (a hypothesis example each); PostgreSQL's cluster starts on first use only."""
    return partial(fresh_store, cluster=lambda: request.getfixturevalue("pg_cluster"))


@pytest.fixture
def any_store(backend: str, new_store: Callable[[str], AbstractContextManager[Store]]) -> Iterator[Store]:
    """An empty store of the test's backend: a fresh SQLite file or a fresh PostgreSQL database."""
    with new_store(backend) as store:
        yield store


@pytest.fixture(scope="session")
def pg_demo_original(pg_cluster: Cluster, demo_files: tuple[Path, Path]) -> str:
    """The demo dataset imported into a PostgreSQL database once per session: the template that
    `any_demo_store` copies (nobody stays connected to it)."""
    url = pg_cluster.create_database()
    store = PostgresStore(url)
    try:
        import_files(store, *demo_files)
    finally:
        store.close()
    return url


@pytest.fixture
def any_demo_store(backend: str, request: pytest.FixtureRequest) -> Iterator[Store]:
    """A private copy of the demo store on the test's backend: SQLite's `demo_store`, or a new database
    made from the session's imported one (`CREATE DATABASE ... TEMPLATE`, a file copy: milliseconds)."""
    if backend == "sqlite":
        yield request.getfixturevalue("demo_store")
        return
    original: str = request.getfixturevalue("pg_demo_original")
    with pg_copy(request.getfixturevalue("pg_cluster"), original) as store:
        yield store


@pytest.fixture
def any_engine(any_demo_store: Store) -> Iterator[Engine]:
    """An engine over the test's demo store on its backend, its clock fixed at NOW."""
    engine = open_engine(any_demo_store, now=NOW)
    yield engine
    engine.close()
