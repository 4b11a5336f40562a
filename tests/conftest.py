"""Shared fixtures: a real SQLite store in a temporary folder, filled with deterministic demo data."""

from __future__ import annotations

import os
import sqlite3
import sys
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest

from cymetica_mcp.engine import Engine, open_engine
from cymetica_mcp.ingest import DemoSpec, import_files, write_demo
from cymetica_mcp.store import SQLiteStore
from cymetica_mcp.windows import parse_instant

NOW_ISO = "2026-03-20T12:34:56Z"
NOW = parse_instant(NOW_ISO)


def import_command(db: Path, *args: str) -> list[str]:
    """The command line importing into `db`, as a user runs it."""
    return [sys.executable, "-m", "cymetica_mcp", "--db", str(db), "import", *args]


def missing_system_package(what: str, install: str) -> None:
    """Skip a test that needs a system package this machine lacks, saying how to install it; under
    CI=true fail instead, so CI never passes by skipping (see /work/notes/ci-skips.md)."""
    message = f"{what} is missing: install it with `{install}`"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{message} (CI=true: a missing system package fails instead of skipping)")
    pytest.skip(message)


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
def demo_original(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small deterministic demo dataset ending at NOW, written and imported once per session."""
    folder = tmp_path_factory.mktemp("demo")
    store = SQLiteStore(folder / "demo.db")
    import_files(store, *write_demo(DemoSpec(users=120, trades=4_000, days=70, seed=3), NOW, folder))
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
