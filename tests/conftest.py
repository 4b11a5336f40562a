"""Shared fixtures: a real SQLite store in a temporary folder, filled with deterministic demo data."""

from __future__ import annotations

from pathlib import Path

import pytest

from cymetica_mcp.demo import DemoSpec, write_demo
from cymetica_mcp.ingest import import_files
from cymetica_mcp.store import Store
from cymetica_mcp.windows import parse_instant

NOW_ISO = "2026-03-20T12:34:56Z"
NOW = parse_instant(NOW_ISO)


@pytest.fixture
def anyio_backend() -> str:
    """Async tests run on asyncio (the backend uvicorn and the mcp SDK use here)."""
    return "asyncio"


@pytest.fixture
def store(tmp_path: Path) -> Store:
    """An empty store in a fresh SQLite file."""
    return Store(tmp_path / "store.db")


@pytest.fixture
def demo_store(tmp_path: Path) -> Store:
    """A store with a small deterministic demo dataset ending at NOW."""
    store = Store(tmp_path / "demo.db")
    users, trades = write_demo(DemoSpec(users=120, trades=4_000, days=70, seed=3), NOW, tmp_path / "demo")
    import_files(store, users, trades)
    return store
