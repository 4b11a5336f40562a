"""`POST /api/v1/ingest/trades` and `/users` while the store fails under the running server.

The fault comes while the server runs (a real uvicorn on loopback): the disk fills up, the file becomes
read-only, its pages are damaged, it is replaced by a file that is not SQLite. Every ingest request, on
every path (CSV row by row, JSON Lines, CSV through the fast path, users), gets 503 `unavailable` with a
message naming the fault (no traceback, no path, no key), the store is left exactly as before, and the
server goes on serving: where the fault allows reads, dashboards still answer; once the fault is gone,
the same request imports everything. A read-only store is read-only from the server's start.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import httpx
import pytest

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
from tests.web.conftest import Served, serving

pytestmark = pytest.mark.anyio

PATHS = ("csv", "jsonl", "fast", "users")


@contextmanager
def served(db: Path) -> Iterator[Served]:
    with serving(SQLiteStore(db)) as running:
        yield running


async def post(http: httpx.AsyncClient, workload: Workload, name: str) -> httpx.Response:
    path = workload.paths[name]
    headers = {"Authorization": f"Bearer {workload.key}", "Content-Type": path.media_type}
    return await http.post(path.route, content=path.file.read_bytes(), headers=headers)


async def dashboard(http: httpx.AsyncClient, workload: Workload) -> httpx.Response:
    return await http.get(
        "/api/v1/analytics/dashboard",
        params={"filter": "agents", "period": "7d"},
        headers={"Authorization": f"Bearer {workload.key}"},
    )


async def assert_every_path_refused(
    http: httpx.AsyncClient, workload: Workload, fault: str, db: Path
) -> None:
    for name in PATHS:
        response = await post(http, workload, name)
        assert response.status_code == 503, (name, response.text)
        error = response.json()["error"]
        assert error["code"] == "unavailable" and fault in error["message"], (name, error)
        # refused by the import, or before it by the key's lookup when nothing at all can be read
        assert "nothing was written" in error["message"] or "nothing could be read" in error["message"]
        assert "Traceback" not in response.text and str(db.parent) not in response.text
        assert workload.key not in response.text


async def test_a_disk_filling_up_under_the_server(
    workload: Workload, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with tmpfs(tmp_path / "disk", 24 << 20) as disk:
        db = workload.fresh(disk / "store.db")
        with served(db) as server, caplog.at_level(logging.WARNING, "cymetica_mcp"):
            async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
                before = await dashboard(http, workload)
                fill(disk, 16 << 10)
                await assert_every_path_refused(http, workload, "its disk is full", db)
                assert (await dashboard(http, workload)).json() == before.json()  # reads go on
                free_up(disk)
                assert (await post(http, workload, "fast")).status_code == 200
        assert state_of(db) == workload.after("fast")
    # the operator is told, at WARNING, what to fix
    assert any("its disk is full" in record.getMessage() for record in caplog.records)


async def test_a_read_only_store_refuses_imports_and_serves_reads(workload: Workload, tmp_path: Path) -> None:
    # read-only from the start (a volume mounted read-only): once a server holds the file open for
    # writing, SQLite reuses that descriptor and its commits land in the WAL whatever the file's mode
    db = workload.fresh(tmp_path / "store.db")
    untouched = file_digest(db)
    with unwritable(db), served(db) as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            assert (await dashboard(http, workload)).status_code == 200
            await assert_every_path_refused(http, workload, "it may not be written", db)
            assert (await dashboard(http, workload)).status_code == 200
            assert (await http.get("/readyz")).status_code == 200
    assert file_digest(db) == untouched
    assert state_of(db) == workload.before


async def test_damaged_pages_under_the_server(workload: Workload, tmp_path: Path) -> None:
    db = workload.fresh(tmp_path / "store.db")
    pristine = tmp_path / "pristine.db"
    shutil.copyfile(db, pristine)
    with served(db) as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            assert (await dashboard(http, workload)).status_code == 200
            damage(db, "meta", SEED)  # the data version's table, which every import reads first
            damaged = file_digest(db)
            await assert_every_path_refused(http, workload, "it is damaged", db)
            assert file_digest(db) == damaged
            # the damage repaired (the backup put back), the same request goes through
            shutil.copyfile(pristine, db)
            assert (await post(http, workload, "jsonl")).status_code == 200
    assert state_of(db) == workload.after("jsonl")


async def test_a_store_replaced_by_a_file_that_is_not_sqlite(workload: Workload, tmp_path: Path) -> None:
    db = workload.fresh(tmp_path / "store.db")
    with served(db) as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            assert (await dashboard(http, workload)).status_code == 200
            with closing(SQLiteStore(db).connect()) as conn:
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            shutil.copyfile(workload.paths["csv"].file, db)  # a data file copied over the store
            replaced = file_digest(db)
            await assert_every_path_refused(http, workload, "it is not a SQLite database", db)
            assert file_digest(db) == replaced
            assert (await http.get("/readyz")).status_code == 503
