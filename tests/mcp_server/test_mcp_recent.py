"""The MCP tool's event-loop answers: repeated calls skip the store and the engine, and nothing
committed by another process (a revocation, an import) is ever missed by the next call."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from cymetica_mcp.auth import Authenticator, KeyRing, Principal, jwt_secret
from cymetica_mcp.engine import Engine, Result
from cymetica_mcp.ingest import import_files
from cymetica_mcp.mcp_server import Dashboards
from cymetica_mcp.mcp_server._caller import Credentials
from cymetica_mcp.mcp_server._envelope import Query
from cymetica_mcp.mcp_server._recent import Recent
from cymetica_mcp.models import Filter, Period
from cymetica_mcp.store import SQLiteStore
from tests.conftest import NOW
from tests.mcp_server.test_mcp_server import envelope, write_new_trade

pytestmark = pytest.mark.anyio


class Counting(Engine):
    """An engine that counts the calls that reach it."""

    calls = 0

    def result(self, filter: Filter, period: Period, now: int | None = None) -> Result:
        self.calls += 1
        return super().result(filter, period, now)


class CountingAuthenticator(Authenticator):
    """An authenticator that counts the credentials it checks against the store."""

    checks = 0

    def authenticate(self, credential: str | None) -> Principal:
        self.checks += 1
        return super().authenticate(credential)


@pytest.fixture
def parts(demo_store: SQLiteStore) -> Iterator[tuple[Dashboards, Counting, CountingAuthenticator]]:
    """Dashboards over a counting engine (max age far away: expiry is tested on its own) and authenticator."""
    engine = Counting(demo_store, clock=lambda: NOW, max_age=3_600)
    authenticator = CountingAuthenticator(demo_store, jwt_secret(demo_store, None))
    key = KeyRing(demo_store).create("tests")[1]
    dashboards = Dashboards(engine, Credentials(authenticator, key))
    yield dashboards, engine, authenticator
    dashboards.close()
    authenticator.close()
    engine.close()


async def settled(dashboards: Dashboards, arguments: dict[str, Any]) -> None:
    """Call until the engine computes under a stamp nobody moves (the first check records last use)."""
    await dashboards.call_tool(arguments)
    dashboards.engine.max_age = 0.0
    await dashboards.call_tool(arguments)  # recomputed under a quiet stamp
    dashboards.engine.max_age = dashboards.recent.max_age = 3_600


async def test_repeated_calls_reach_neither_the_store_nor_the_engine(
    parts: tuple[Dashboards, Counting, CountingAuthenticator],
) -> None:
    dashboards, engine, authenticator = parts
    await settled(dashboards, {"filter": "agents", "period": "7d"})
    engine.calls = authenticator.checks = 0
    answers = [envelope(await dashboards.call_tool({"filter": "agents", "period": "7d"})) for _ in range(5)]
    assert (engine.calls, authenticator.checks) == (0, 0)
    assert all(a == answers[0] for a in answers) and answers[0]["meta"]["cached"] is True
    assert answers[0]["data"] == engine.dashboard(Filter.AGENTS, Period.D7, NOW).to_wire()
    engine.calls = 0
    bad = envelope(await dashboards.call_tool({"filter": "bots"}))  # arguments are still checked
    assert bad["error"]["code"] == "invalid_filter" and authenticator.checks == 0
    await dashboards.call_tool({"filter": "humans"})  # another dashboard: computed, key not re-checked
    assert (engine.calls, authenticator.checks) == (1, 0)


async def test_a_revocation_by_another_process_is_refused_on_the_very_next_call(
    parts: tuple[Dashboards, Counting, CountingAuthenticator], demo_store: SQLiteStore
) -> None:
    dashboards, _, _ = parts
    await settled(dashboards, {})
    assert not (await dashboards.call_tool({})).is_error
    (key,) = [k for k in KeyRing(SQLiteStore(demo_store.path)).list() if k.name == "tests"]
    KeyRing(SQLiteStore(demo_store.path)).revoke(key.id)  # as `cymetica-mcp keys revoke` would
    refused = await dashboards.call_tool({})
    assert refused.is_error and envelope(refused)["error"]["code"] == "unauthorized"


async def test_an_import_by_another_process_shows_in_the_very_next_call(
    parts: tuple[Dashboards, Counting, CountingAuthenticator], demo_store: SQLiteStore, tmp_path: Path
) -> None:
    dashboards, engine, _ = parts
    await settled(dashboards, {"filter": "agents"})
    before = envelope(await dashboards.call_tool({"filter": "agents"}))
    await anyio.to_thread.run_sync(
        import_files, SQLiteStore(demo_store.path), *write_new_trade(tmp_path / "new")
    )
    after = envelope(await dashboards.call_tool({"filter": "agents"}))
    assert after["meta"]["data_version"] == before["meta"]["data_version"] + 1
    assert after["data"] == engine.dashboard(Filter.AGENTS, Period.H24, NOW).to_wire() != before["data"]


async def test_the_rate_limit_takes_one_token_per_call_on_either_path(
    demo_store: SQLiteStore, engine: Engine
) -> None:
    taken: list[int] = []
    authenticator = Authenticator(demo_store, jwt_secret(demo_store, None))
    key = KeyRing(demo_store).create("limited")[1]
    dashboards = Dashboards(engine, Credentials(authenticator, key), admit=lambda p: taken.append(p.key_id))
    try:
        for _ in range(6):
            await dashboards.call_tool({"period": "30d"})
    finally:
        dashboards.close()
        authenticator.close()
    assert len(taken) == 6


def query(as_of: int | None = None) -> Query:
    return Query(Filter.ALL, Period.H24, as_of)


def test_remembered_answers_follow_the_stamp_the_age_and_the_kind_of_credential(engine: Engine) -> None:
    now = [100.0]
    recent = Recent(1.0, clock=lambda: now[0])
    result = engine.result(Filter.ALL, Period.H24)
    principal = Principal(1, "k", "api_key")
    stamp, moved = (1, 5), (1, 6)
    recent.accept("cym_key", stamp, principal)
    recent.accept("a.jwt.token", stamp, principal)
    recent.computed(query(), stamp, result, born=100.0)
    recent.computed(query(NOW), stamp, result, born=100.0)
    assert recent.principal("cym_key", stamp) == principal
    assert recent.principal("a.jwt.token", stamp) is None  # a JWT's expiry is the authenticator's
    assert recent.principal("cym_key", moved) is None and recent.result(query(), moved) is None
    assert recent.principal("cym_other", stamp) is None and recent.principal("cym_key", None) is None
    served = recent.result(query(), stamp)
    assert served is not None and served.cached and served.dashboard is result.dashboard
    now[0] = 101.5  # past max age: a live dashboard is not served, a historical one still is
    assert recent.result(query(), stamp) is None and recent.result(query(NOW), stamp) is not None
    now[0] = 100.0 + 61
    assert recent.principal("cym_key", stamp) is None  # re-checked at least once a minute
    hit = Result(result.dashboard, result.now, result.data_version, result.computed_at, cached=True)
    recent.computed(query(NOW - 60), stamp, hit, born=100.0)  # an engine cache hit: age unknown
    assert recent.result(query(NOW - 60), stamp) is None
    now[0] = 100.5  # a commit that changed no data: the same dashboard again, born when it was computed
    recent.computed(query(), moved, hit, born=100.4)
    assert recent.result(query(), moved) is not None
    now[0] = 101.2
    assert recent.result(query(), moved) is None  # max age counts from the computation, not the hit


def test_a_stamp_moves_with_every_commit_and_never_repeats_after_a_reopen(demo_store: SQLiteStore) -> None:
    stamp = demo_store.stamp()
    try:
        first = stamp.read()
        assert first is not None and stamp.read() == first
        KeyRing(SQLiteStore(demo_store.path)).create("another")
        second = stamp.read()
        assert second is not None and second != first
        stamp.close()
        assert stamp.read() not in (first, second)
    finally:
        stamp.close()


async def test_without_a_stamp_every_call_is_checked_against_the_store(
    parts: tuple[Dashboards, Counting, CountingAuthenticator], monkeypatch: pytest.MonkeyPatch
) -> None:
    dashboards, engine, authenticator = parts
    monkeypatch.setattr(dashboards.stamp, "read", lambda: None)  # SQLite busy, say
    for _ in range(3):
        assert not (await dashboards.call_tool({})).is_error
    assert (engine.calls, authenticator.checks) == (3, 3)
