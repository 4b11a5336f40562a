"""Answers from memory on the event loop (web/_watch.py), and why they stay exact.

A credential accepted a moment ago and a cached dashboard are served without a worker thread while
nothing was committed to the store since; a revocation or an import by another process (the command
line) is seen on the very next request all the same.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect

from cymetica_mcp.auth import Principal, Verdict, Verdicts
from cymetica_mcp.engine import Engine, open_engine
from cymetica_mcp.models import Filter, Period
from cymetica_mcp.store import SQLiteStore
from cymetica_mcp.web._watch import StoreWatch
from tests.conftest import NOW

from .conftest import Served, serving
from .helpers import close_of

pytestmark = pytest.mark.anyio

DASHBOARD = "/api/v1/analytics/dashboard"
TOKEN = "/api/v1/auth/token"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def cli(store: SQLiteStore, *args: str) -> None:
    """Run the command line in a process of its own against the test's store."""
    done = subprocess.run(
        [sys.executable, "-m", "cymetica_mcp", "--db", str(store.path), *args],
        capture_output=True,
        text=True,
        env=dict(os.environ),
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr


@pytest.fixture
def counted(
    demo_store: SQLiteStore, api_key: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Served, Counter[str]]]:
    """The app with a dashboard cache that never ages out (so only commits matter), counting the
    checks against the store (`Authenticator.verdict`) and the engine's answers (`Engine.result`)."""
    engine = open_engine(demo_store, now=NOW, max_age=3_600)
    calls: Counter[str] = Counter()
    with serving(demo_store, engine) as served:
        door = served.app.door
        verdict, result = door.authenticator.verdict, door.engine.result

        def counted_verdict(credential: str | None) -> Verdict:
            calls["verdict"] += 1
            return verdict(credential)

        def counted_result(*args: Any) -> Any:
            calls["result"] += 1
            return result(*args)

        monkeypatch.setattr(door.authenticator, "verdict", counted_verdict)
        monkeypatch.setattr(door.engine, "result", counted_result)
        yield served, calls


async def test_repeated_requests_are_answered_from_memory_with_the_same_bytes_and_headers(
    counted: tuple[Served, Counter[str]], api_key: str
) -> None:
    served, calls = counted
    async with httpx.AsyncClient(base_url=served.url) as http:
        answers = [await http.get(DASHBOARD, headers=bearer(api_key)) for _ in range(5)]
        revalidated = await http.get(
            DASHBOARD, headers={**bearer(api_key), "If-None-Match": answers[0].headers["etag"]}
        )
        bad_query = await http.get(DASHBOARD + "?period=1y", headers=bearer(api_key))
        unknown = await http.get(DASHBOARD, headers=bearer("cym_" + "C" * 43))
    assert [a.status_code for a in answers] == [200] * 5
    assert len({a.content for a in answers}) == 1 and len({a.headers["etag"] for a in answers}) == 1
    assert answers[-1].headers["cache-control"] == "private, no-cache"
    assert revalidated.status_code == 304
    assert bad_query.status_code == 400
    assert unknown.status_code == 401 and "invalid_token" in unknown.headers["www-authenticate"]
    # one dashboard for all of them; the key checked twice (its first check records its last use: a
    # commit, which moves the stamp), the unknown key once (refusals are never remembered)
    assert calls["verdict"] == 3 and calls["result"] == 1
    assert answers[0].json() == served.engine.dashboard(Filter.ALL, Period.H24, NOW).to_wire()


async def test_a_key_revoked_by_another_process_is_refused_on_the_very_next_request(
    counted: tuple[Served, Counter[str]], api_key: str
) -> None:
    served, calls = counted
    async with httpx.AsyncClient(base_url=served.url) as http:
        token = (await http.post(TOKEN, headers=bearer(api_key))).json()["access_token"]
        for credential in (api_key, token, api_key, token):
            assert (await http.get(DASHBOARD, headers=bearer(credential))).status_code == 200
        checks = calls["verdict"]
        # the key twice (its first check records its last use, a commit), the JWT once; then memory
        assert checks == 3
        cli(served.store, "keys", "revoke", "1")
        by_key = await http.get(DASHBOARD, headers=bearer(api_key))
        by_jwt = await http.get(DASHBOARD, headers=bearer(token))
        again = await http.get(DASHBOARD, headers=bearer(api_key))
    assert by_key.status_code == by_jwt.status_code == again.status_code == 401
    assert "revoked" in by_jwt.json()["error"]["message"]
    assert calls["verdict"] == checks + 3
    async with connect(f"{served.ws_url}?token={token}") as ws:
        code, _, before = await close_of(ws)
    assert code == 4401 and not before


async def test_an_import_by_another_process_shows_in_the_next_rest_dashboard(
    counted: tuple[Served, Counter[str]], api_key: str, tmp_path: Path
) -> None:
    served, calls = counted
    url = f"{DASHBOARD}?filter=humans&period=7d"
    async with httpx.AsyncClient(base_url=served.url) as http:
        first = await http.get(url, headers=bearer(api_key))
        assert (await http.get(url, headers=bearer(api_key))).content == first.content
        assert calls["result"] == 1
        users, trades = tmp_path / "u.csv", tmp_path / "t.csv"
        users.write_text("user_id,kind,capital_usdc,created_at\nnewcomer,human,1000,2026-03-01T00:00:00Z\n")
        trades.write_text(
            "trade_id,user_id,ts,volume_usdc,pnl_usdc\nn-1,newcomer,2026-03-20T12:00:00Z,500,25\n"
        )
        cli(served.store, "import", "--users", str(users), "--trades", str(trades))
        changed = await http.get(url, headers={**bearer(api_key), "If-None-Match": first.headers["etag"]})
        settled = await http.get(url, headers=bearer(api_key))
    assert changed.status_code == 200 and changed.headers["etag"] != first.headers["etag"]
    active = first.json()["metrics"]["active_users"]["value"]
    assert changed.json()["metrics"]["active_users"]["value"] == active + 1
    assert settled.content == changed.content
    assert calls["result"] == 2  # the import moved the stamp once; then memory again


def test_the_stamp_moves_with_every_commit_by_any_other_connection_only(demo_store: SQLiteStore) -> None:
    watch = StoreWatch(demo_store)
    first = watch.stamp()
    assert first is not None and watch.stamp() == first
    with closing(sqlite3.connect(demo_store.path)) as conn:
        conn.execute("SELECT count(*) FROM api_keys").fetchone()  # a read is not a commit
    assert watch.stamp() == first
    cli(demo_store, "keys", "create", "--name", "elsewhere")
    second = watch.stamp()
    assert second is not None and second != first
    with demo_store.write() as conn:
        conn.execute("UPDATE api_keys SET name = 'renamed'")
    assert watch.stamp() not in (first, second, None)
    with closing(sqlite3.connect(demo_store.path, timeout=0)) as conn:
        # the watch keeps no read transaction open (no snapshot pinned): the WAL can be reset
        assert conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0] == 0
    watch.close()
    assert watch.stamp() is not None  # reopened on demand
    watch.close()


def test_the_stamp_never_waits_for_a_lock(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "s.db")
    with closing(sqlite3.connect(store.path, isolation_level=None)) as conn:
        # a rollback journal, where a writer's exclusive lock keeps readers out (WAL never does)
        conn.execute("PRAGMA journal_mode = DELETE")
        watch = StoreWatch(store)
        conn.execute("BEGIN EXCLUSIVE")
        assert watch.stamp() is None  # busy_timeout 0: no answer rather than a wait
        conn.execute("COMMIT")
        assert watch.stamp() is not None
        watch.close()


def test_a_data_version_is_known_only_under_the_stamp_it_was_learnt_after(demo_store: SQLiteStore) -> None:
    watch = StoreWatch(demo_store)
    assert watch.version(None) is None and watch.version((1, 1)) is None
    watch.learn((1, 5), 40)
    assert watch.version((1, 5)) == 40 and watch.version((1, 6)) is None and watch.version(None) is None
    watch.learn((1, 4), 39)  # learnt under an older stamp, recorded late: ignored
    assert watch.version((1, 5)) == 40
    watch.learn(None, 41)  # no stamp, no knowledge
    assert watch.version((1, 5)) == 40
    watch.learn((1, 6), 41)
    assert watch.version((1, 5)) is None and watch.version((1, 6)) == 41


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_verdicts_hold_under_their_stamp_until_a_jwt_expires_or_their_time_is_up() -> None:
    monotonic, wall = Clock(100.0), Clock(1_000.0)
    verdicts = Verdicts(seconds=60, kept=3, clock=monotonic, wall=wall)
    key = Verdict(Principal(1, "k", "api_key"), None)
    jwt = Verdict(Principal(1, "k", "jwt"), 1_010)
    verdicts.put("cym_key", (1, 7), key)
    verdicts.put("a.b.c", (1, 7), jwt)
    assert verdicts.get("cym_key", (1, 7)) == key.principal and verdicts.get("a.b.c", (1, 7)) == jwt.principal
    assert verdicts.get("cym_key", (1, 8)) is None and verdicts.get("cym_key", None) is None
    assert verdicts.get("cym_other", (1, 7)) is None and verdicts.get(None, (1, 7)) is None
    wall.now = 1_010  # the JWT's exp: refused from that second on, as pyjwt does
    assert verdicts.get("a.b.c", (1, 7)) is None and verdicts.get("cym_key", (1, 7)) == key.principal
    monotonic.now = 160  # a minute: checked against the store again (which records the last use)
    assert verdicts.get("cym_key", (1, 7)) is None


def test_verdicts_follow_the_newest_stamp_and_stay_bounded() -> None:
    verdicts = Verdicts(kept=2)
    key = Verdict(Principal(1, "k", "api_key"), None)
    verdicts.put("cym_a", (1, 7), key)
    verdicts.put("cym_b", (1, 6), key)  # checked under an older stamp, finished late: not remembered
    assert verdicts.get("cym_b", (1, 6)) is None and verdicts.get("cym_b", (1, 7)) is None
    verdicts.put("cym_b", (1, 8), key)  # a newer stamp: everything older is forgotten
    assert verdicts.get("cym_a", (1, 8)) is None and verdicts.get("cym_b", (1, 8)) == key.principal
    verdicts.put("cym_c", None, key)  # no stamp, nothing remembered
    assert verdicts.get("cym_c", (1, 8)) is None
    for name in ("cym_c", "cym_d", "cym_e"):
        verdicts.put(name, (1, 8), key)
    assert sum(verdicts.get(name, (1, 8)) is not None for name in ("cym_b", "cym_c", "cym_d", "cym_e")) <= 2


def test_the_engines_cache_answers_only_for_the_current_version_within_max_age(engine: Engine) -> None:
    live = engine.result(Filter.AGENTS, Period.D7)
    cached = engine.cached(Filter.AGENTS, Period.D7, live.data_version)
    assert cached is not None and cached.cached and cached.dashboard == live.dashboard
    assert cached.now == live.now and cached.computed_at == live.computed_at
    assert engine.cached(Filter.AGENTS, Period.D7, live.data_version + 1) is None
    assert engine.cached(Filter.HUMANS, Period.D7, live.data_version) is None
    engine.max_age = -1.0  # every live result is too old now
    assert engine.cached(Filter.AGENTS, Period.D7, live.data_version) is None
