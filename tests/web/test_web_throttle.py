"""Failed credentials are throttled per client address and in all, before any store query."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect

from cymetica_mcp.errors import AnalyticsError
from cymetica_mcp.store import SQLiteStore
from cymetica_mcp.web._ratelimit import FailureThrottle

from .conftest import serving
from .helpers import MCP_INITIALIZE, close_of
from .test_web_parts import FakeClock

pytestmark = pytest.mark.anyio

DASHBOARD = "/api/v1/analytics/dashboard"
WRONG = "cym_" + "x" * 43
MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


def test_an_address_past_its_budget_waits_and_others_do_not() -> None:
    clock = FakeClock()
    throttle = FailureThrottle(per_address=3, total=5, clock=clock)
    for _ in range(3):
        throttle.failed("10.0.0.1", throttle.check("10.0.0.1"))
    with pytest.raises(AnalyticsError) as refused:
        throttle.check("10.0.0.1")
    assert refused.value.code == "rate_limited" and refused.value.retry_after == 20
    throttle.check("10.0.0.2")  # another address is not held back
    clock.now += 20
    throttle.check("10.0.0.1")  # one failure's worth refilled
    for other in ("10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5"):  # the total (5 a minute) is spent
        throttle.failed(other)
    with pytest.raises(AnalyticsError):
        throttle.check("10.0.0.2")  # it failed before: held back by the total
    throttle.check("10.0.0.9")  # a fresh address still gets its credential checked


def test_attempts_in_flight_hold_their_share_of_the_budget() -> None:
    """Concurrent checks cannot all pass on the last token before any of them has failed."""
    clock = FakeClock()
    throttle = FailureThrottle(per_address=3, total=1_000, clock=clock)
    throttle.failed("10.0.0.1")  # known now: two failures left this minute
    held = [throttle.check("10.0.0.1"), throttle.check("10.0.0.1")]
    with pytest.raises(AnalyticsError):
        throttle.check("10.0.0.1")  # both tokens are held by attempts still being checked
    throttle.release("10.0.0.1")  # one attempt was a valid credential: its share comes back
    assert throttle.check("10.0.0.1")
    throttle.failed("10.0.0.1", held[0])  # settled without taking twice
    with pytest.raises(AnalyticsError):
        throttle.check("10.0.0.1")
    total = FailureThrottle(per_address=100, total=3, clock=clock)
    for address in ("10.0.1.1", "10.0.1.2"):
        total.failed(address)
    assert total.check("10.0.1.1")  # the last token of the total budget, held
    with pytest.raises(AnalyticsError):
        total.check("10.0.1.2")


def test_the_throttle_forgets_refilled_addresses_to_stay_bounded() -> None:
    clock = FakeClock()
    throttle = FailureThrottle(per_address=2, total=10_000, clock=clock, kept=100)
    for i in range(1_000):
        throttle.failed(f"10.0.{i // 256}.{i % 256}")
        clock.now += 60
    assert len(throttle._addresses) <= 100


async def test_failed_credentials_get_429_without_a_store_query(
    demo_store: SQLiteStore, api_key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with serving(demo_store, failures_per_address=5) as served:
        checked: list[Any] = []
        verdict = served.app.door.authenticator.verdict

        def counted(credential: str | None) -> Any:
            checked.append(credential)
            return verdict(credential)

        monkeypatch.setattr(served.app.door.authenticator, "verdict", counted)
        async with httpx.AsyncClient(base_url=served.url) as http:
            statuses = [
                (await http.get(DASHBOARD, headers={"Authorization": f"Bearer {WRONG}"})).status_code
                for _ in range(8)
            ]
            throttled = await http.get(DASHBOARD, headers={"Authorization": f"Bearer {WRONG}"})
            ingest = await http.post("/api/v1/ingest/trades", headers={"Authorization": f"Bearer {WRONG}"})
        assert statuses == [401] * 5 + [429] * 3
        assert (
            throttled.headers["Retry-After"] and "refused credentials" in throttled.json()["error"]["message"]
        )
        assert ingest.status_code == 429
        assert len(checked) == 5  # the refused attempts past the budget reached no credential check
        async with connect(f"{served.ws_url}?token={WRONG}") as ws:
            code, reason, before = await close_of(ws)
        assert (code, before) == (4429, []) and "refused credentials" in reason


async def test_concurrent_wrong_keys_cannot_outrun_the_budget(
    demo_store: SQLiteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    with serving(demo_store, failures_per_address=4) as served:
        checked: list[Any] = []
        verdict = served.app.door.authenticator.verdict

        def slow(credential: str | None) -> Any:
            checked.append(credential)
            time.sleep(0.05)  # a busy store: every attempt in flight at once, none failed yet
            return verdict(credential)

        monkeypatch.setattr(served.app.door.authenticator, "verdict", slow)
        async with httpx.AsyncClient(base_url=served.url) as http:
            wrong = {"Authorization": f"Bearer {WRONG}"}
            assert (await http.get(DASHBOARD, headers=wrong)).status_code == 401  # the address is known now
            answers = await asyncio.gather(*(http.get(DASHBOARD, headers=wrong) for _ in range(30)))
        statuses = sorted(answer.status_code for answer in answers)
        assert statuses == [401] * 3 + [429] * 27
        assert len(checked) == 4  # the budget of 4 a minute, however many were in flight


async def test_behind_a_trusted_proxy_each_forwarded_client_has_its_own_budget(
    demo_store: SQLiteStore, api_key: str
) -> None:
    with serving(demo_store, failures_per_address=2, trusted_proxies=("127.0.0.1",)) as served:
        async with httpx.AsyncClient(base_url=served.url) as http:

            async def status(forwarded: str, key: str = WRONG) -> int:
                headers = {"Authorization": f"Bearer {key}", "X-Forwarded-For": forwarded}
                return (await http.get(DASHBOARD, headers=headers)).status_code

            assert [await status("203.0.113.7") for _ in range(3)] == [401, 401, 429]
            assert await status("203.0.113.8") == 401  # another client behind the same proxy
            assert await status("203.0.113.8, 127.0.0.1") == 401  # the proxy's own hop is skipped
            assert await status("203.0.113.7", api_key) == 429  # the address, not the key, is held back
    with serving(demo_store, failures_per_address=2) as served:  # no trusted proxy: the header is ignored
        async with httpx.AsyncClient(base_url=served.url) as http:
            codes = [
                (
                    await http.get(
                        DASHBOARD,
                        headers={"Authorization": f"Bearer {WRONG}", "X-Forwarded-For": f"198.51.100.{i}"},
                    )
                ).status_code
                for i in range(3)
            ]
        assert codes == [401, 401, 429]


async def test_mcp_over_http_shares_the_failed_credential_budget(
    demo_store: SQLiteStore, api_key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with serving(demo_store, failures_per_address=3, trusted_proxies=("127.0.0.1",)) as served:
        checked: list[Any] = []
        authenticate = served.app.door.authenticator.authenticate

        def counted(credential: str | None) -> Any:
            checked.append(credential)
            return authenticate(credential)

        monkeypatch.setattr(served.app.door.authenticator, "authenticate", counted)
        async with httpx.AsyncClient(base_url=served.url, headers=MCP_HEADERS) as http:

            async def status(forwarded: str, key: str = WRONG) -> httpx.Response:
                headers = {"Authorization": f"Bearer {key}", "X-Forwarded-For": forwarded}
                return await http.post("/mcp", json=MCP_INITIALIZE, headers=headers)

            answers = [await status("203.0.113.7") for _ in range(5)]
            assert [answer.status_code for answer in answers] == [401, 401, 401, 429, 429]
            assert len(checked) == 3  # past the budget, no credential check at all
            assert answers[-1].headers["Retry-After"]
            assert "refused credentials" in answers[-1].json()["error"]["message"]
            # The same address is held back on REST too, and another client is not.
            rest = await http.get(
                DASHBOARD, headers={"Authorization": f"Bearer {WRONG}", "X-Forwarded-For": "203.0.113.7"}
            )
            assert rest.status_code == 429
            assert (await status("203.0.113.8", api_key)).status_code == 200
