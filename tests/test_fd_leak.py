"""Repeated imports, dashboards and authentications leave no file descriptor open."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cymetica_mcp.auth import Authenticator, KeyRing, jwt_secret
from cymetica_mcp.engine import Engine
from cymetica_mcp.ingest import ImportRefused, import_files
from cymetica_mcp.models import Filter, Period
from cymetica_mcp.store import SQLiteStore

from .conftest import NOW

FD_DIR = Path("/proc/self/fd")


def open_fds() -> int:
    return len(os.listdir(FD_DIR))


@pytest.mark.skipif(not FD_DIR.exists(), reason="needs /proc/self/fd to count descriptors")
def test_no_descriptor_outlives_its_work(tmp_path: Path) -> None:
    users = tmp_path / "users.csv"
    users.write_text("user_id,kind,capital_usdc,created_at\nu,human,100,2026-01-01T00:00:00Z\n")
    bad = tmp_path / "bad.csv"
    bad.write_text("trade_id,user_id,ts,volume_usdc,pnl_usdc\nx,nobody,2026-03-20T00:00:00Z,1,0\n")

    def work(round: int) -> None:
        store = SQLiteStore(tmp_path / f"s{round % 3}.db")
        trades = tmp_path / f"t{round}.csv"
        trades.write_text(f"trade_id,user_id,ts,volume_usdc,pnl_usdc\nr{round},u,2026-03-20T12:00:00Z,5,1\n")
        import_files(store, users, trades)
        with pytest.raises(ImportRefused):
            import_files(store, trades=bad)
        engine = Engine(store)
        for f in Filter:
            engine.dashboard(f, Period.H24, NOW)
        engine.close()
        info, secret = KeyRing(store).create(f"k{round}")
        authenticator = Authenticator(store, jwt_secret(store, None))
        token, _ = authenticator.issue(authenticator.authenticate(secret))
        authenticator.authenticate(token)
        KeyRing(store).revoke(info.id)
        authenticator.close()

    work(0)  # warm-up: lazily opened files (modules, locale) stay open for good
    baseline = open_fds()
    for round in range(1, 30):
        work(round)
    assert open_fds() <= baseline + 2
