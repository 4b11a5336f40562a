"""Several processes import into one store while this one reads: nothing is locked out, nothing is lost."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from cymetica_mcp.engine import Engine, TradeIndex, compute
from cymetica_mcp.models import Filter, Period
from cymetica_mcp.store import SQLiteStore
from cymetica_mcp.windows import iso
from tests.conftest import NOW, clean_env, import_command

WRITERS = 4
TRADES_EACH = 10_000


def test_concurrent_imports_and_reads_all_land(demo_store: SQLiteStore, tmp_path: Path) -> None:
    with demo_store.read() as conn:
        users = [row[0] for row in conn.execute("SELECT user_id FROM users ORDER BY id LIMIT 50")]
        before = conn.execute("SELECT count(*) FROM trades").fetchone()[0]
    version = demo_store.data_version()
    files = []
    for w in range(WRITERS):
        path = tmp_path / f"writer{w}.csv"
        rows = (
            f"c{w}-{i},{users[(w * 7 + i) % len(users)]},{iso(NOW - (i * 37) % 86_400)},{i % 90 + 1}.25,{i % 11 - 5}"
            for i in range(TRADES_EACH)
        )
        path.write_text("trade_id,user_id,ts,volume_usdc,pnl_usdc\n" + "\n".join(rows) + "\n")
        files.append(path)
    engine = Engine(demo_store, clock=lambda: NOW, max_age=0)
    writers = [
        subprocess.Popen(
            import_command(demo_store.path, "--trades", str(path)),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=clean_env(),
        )
        for path in files
    ]
    reads = 0
    deadline = time.monotonic() + 60
    while any(w.poll() is None for w in writers) and time.monotonic() < deadline:
        engine.dashboard(Filter.ALL, Period.H24)  # reads the store while the writers take turns
        reads += 1
    outcomes = [w.communicate(timeout=60) for w in writers]
    for writer, (out, err) in zip(writers, outcomes, strict=True):
        assert writer.returncode == 0, err
        assert "locked" not in err
        assert f"{TRADES_EACH} inserted" in out
    assert reads > 0
    with demo_store.read() as conn:
        assert conn.execute("SELECT count(*) FROM trades").fetchone()[0] == before + WRITERS * TRADES_EACH
    assert demo_store.data_version() == version + WRITERS
    fresh = TradeIndex.load(demo_store)
    for f in Filter:
        for p in Period:
            assert engine.dashboard(f, p, NOW) == compute(fresh, f, p, NOW)
    engine.close()
