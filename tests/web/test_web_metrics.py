"""`GET /metrics` against the real server: Prometheus text, behind a read credential, and figures
that move with the traffic, the imports, the WebSockets and the index."""

from __future__ import annotations

import time

import anyio
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from websockets.asyncio.client import connect

from cymetica_mcp.auth import KeyRing
from cymetica_mcp.models import Scope
from cymetica_mcp.store import SQLiteStore
from tests.web.conftest import Served
from tests.web.helpers import next_of

pytestmark = pytest.mark.anyio


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample by (name, sorted labels); the parser refuses text that is not the format."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


async def scrape(
    client: httpx.AsyncClient, url: str, key: str
) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    answer = await client.get(f"{url}/metrics", headers={"Authorization": f"Bearer {key}"})
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain; version=0.0.4")
    return samples(answer.text)


async def test_metrics_need_a_read_credential(served: Served, api_key: str) -> None:
    ingest_only = KeyRing(served.store).create("platform", (Scope.INGEST,))[1]
    async with httpx.AsyncClient() as client:
        none = await client.get(f"{served.url}/metrics")
        assert none.status_code == 401 and none.json()["error"]["code"] == "unauthorized"
        wrong = await client.get(f"{served.url}/metrics", headers={"Authorization": f"Bearer {ingest_only}"})
        assert wrong.status_code == 403 and "read" in wrong.json()["error"]["message"]


async def test_metrics_follow_requests_dashboards_imports_sockets_and_the_index(
    served: Served, api_key: str, demo_store: SQLiteStore
) -> None:
    writer = KeyRing(demo_store).create("platform", (Scope.READ, Scope.INGEST))[1]
    headers = {"Authorization": f"Bearer {api_key}"}
    async with httpx.AsyncClient() as client:
        before = await scrape(client, served.url, api_key)
        for period in ("24h", "7d", "24h"):
            answer = await client.get(
                f"{served.url}/api/v1/analytics/dashboard?period={period}", headers=headers
            )
            assert answer.status_code == 200
        assert (
            await client.get(f"{served.url}/api/v1/analytics/dashboard?period=9d", headers=headers)
        ).status_code == 400
        body = "trade_id,user_id,ts,volume_usdc,pnl_usdc\n" + "".join(
            f"m{i},{user},2026-03-20T12:00:0{i}Z,10,1\n" for i, user in enumerate(users(demo_store))
        )
        posted = await client.post(
            f"{served.url}/api/v1/ingest/trades",
            content=body,
            headers={"Authorization": f"Bearer {writer}", "Content-Type": "text/csv"},
        )
        assert posted.status_code == 200, posted.text
        async with connect(f"{served.ws_url}?token={api_key}") as ws:
            await next_of(ws, "analytics_update")
            during = await scrape(client, served.url, api_key)
        deadline = time.monotonic() + 10
        after = await scrape(client, served.url, api_key)
        while after[("cymetica_websocket_clients", ())] != 0 and time.monotonic() < deadline:
            await anyio.sleep(0.05)  # polling for the server to see the close, with a deadline
            after = await scrape(client, served.url, api_key)

    def grew(name: str, labels: tuple[tuple[str, str], ...] = ()) -> float:
        return during.get((name, labels), 0.0) - before.get((name, labels), 0.0)

    assert grew("cymetica_requests_total", (("door", "rest"), ("status", "200"))) == 3
    assert grew("cymetica_requests_total", (("door", "rest"), ("status", "400"))) == 1
    assert grew("cymetica_requests_total", (("door", "ingest"), ("status", "200"))) == 1
    assert grew("cymetica_requests_total", (("door", "metrics"), ("status", "200"))) == 1
    assert grew("cymetica_request_duration_seconds_count", (("door", "rest"),)) == 4
    assert grew("cymetica_imports_total") == 1 and grew("cymetica_import_rows_total") == 3
    assert grew("cymetica_import_trades_total") == 3
    assert grew("cymetica_dashboards_computed_total") >= 2  # 24h and 7d (the WebSocket's first too)
    assert grew("cymetica_dashboards_cached_total") >= 1  # the second 24h
    assert during[("cymetica_websocket_clients", ())] == 1
    assert during[("cymetica_data_version", ())] == demo_store.data_version()
    assert during[("cymetica_index_trades", ())] == 4_003
    assert during[("cymetica_index_bytes", ())] > 4_003 * 24
    assert during[("cymetica_index_load_seconds", ())] > 0
    assert during[("cymetica_index_cutoff_seconds", ())] > 0
    assert after[("cymetica_websocket_clients", ())] == 0
    assert (
        grew("cymetica_requests_total", (("door", "websocket"), ("status", "101"))) == 0
    )  # counted once it ends
    assert after[("cymetica_requests_total", (("door", "websocket"), ("status", "101")))] == 1


def users(store: SQLiteStore) -> list[str]:
    with store.read() as conn:
        return [row[0] for row in conn.execute("SELECT user_id FROM users ORDER BY id LIMIT 3")]
