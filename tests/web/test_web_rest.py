"""REST, health and the Host/Origin guard through httpx against the real server."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import anyio.to_thread
import httpx
import pytest

from cymetica_mcp.auth import KeyRing
from cymetica_mcp.engine import Engine, Result
from cymetica_mcp.ingest import import_files
from cymetica_mcp.models import Filter, Period
from cymetica_mcp.store import SCHEMA_VERSION, SQLiteStore
from tests.conftest import NOW

from .conftest import Served, serving
from .helpers import forged_jwt

pytestmark = pytest.mark.anyio

DASHBOARD = "/api/v1/analytics/dashboard"
TOKEN = "/api/v1/auth/token"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
async def http(served: Served) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=served.url, timeout=10)


def assert_envelope(resp: httpx.Response, status: int, code: str) -> str:
    """The response is the contract's error envelope; returns its message."""
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"] == "application/json"
    body = resp.json()
    assert body["success"] is False and body["error"]["code"] == code
    assert set(body) == {"success", "error"} and set(body["error"]) == {"code", "message"}
    assert "Traceback" not in resp.text
    return str(body["error"]["message"])


async def test_every_filter_and_period_is_the_engines_dashboard(
    served: Served, http: httpx.AsyncClient, api_key: str
) -> None:
    async with http:
        default = await http.get(DASHBOARD, headers=bearer(api_key))
        assert default.json() == served.engine.dashboard(Filter.ALL, Period.H24, NOW).to_wire()
        for f in Filter:
            for p in Period:
                resp = await http.get(DASHBOARD, params={"filter": f, "period": p}, headers=bearer(api_key))
                assert resp.status_code == 200
                assert resp.json() == served.engine.dashboard(f, p, NOW).to_wire()
                assert set(resp.json()) == {
                    "metrics",
                    "volume_over_time",
                    "user_activity",
                    "profitability_distribution",
                }


@pytest.mark.parametrize(
    ("query", "code", "says"),
    [
        ("filter=bots", "invalid_filter", "filter must be one of all, humans, agents; got 'bots'"),
        ("filter=", "invalid_filter", "got ''"),
        ("filter=all&filter=humans", "invalid_filter", "got ['all', 'humans']"),
        ("period=1y", "invalid_period", "period must be one of 24h, 7d, 30d; got '1y'"),
        ("filter=humans&period=24H", "invalid_period", "got '24H'"),
    ],
)
async def test_a_bad_filter_or_period_is_a_400_envelope(
    http: httpx.AsyncClient, api_key: str, query: str, code: str, says: str
) -> None:
    async with http:
        resp = await http.get(f"{DASHBOARD}?{query}", headers=bearer(api_key))
    assert says in assert_envelope(resp, 400, code)
    assert resp.headers["cache-control"] == "no-store"


async def test_bad_credentials_are_401_with_a_bearer_challenge(
    served: Served, http: httpx.AsyncClient, api_key: str
) -> None:
    refused = {
        "missing": {},
        "empty": {"Authorization": "Bearer"},
        "basic": {"Authorization": "Basic dXNlcjpwYXNz"},
        "malformed": bearer("hello"),
        "unknown key": bearer("cym_" + "A" * 43),
        "expired jwt": bearer(forged_jwt(served.store, expired=True)),
        "foreign jwt": bearer(forged_jwt(served.store, secret=b"s" * 32)),
        "tampered jwt": bearer(forged_jwt(served.store)[:-3] + "abc"),
    }
    async with http:
        for name, headers in refused.items():
            for method, path in (("GET", DASHBOARD + "?filter=bots"), ("POST", TOKEN)):
                resp = await http.request(method, path, headers=headers)
                message = assert_envelope(resp, 401, "unauthorized")
                challenge = resp.headers["www-authenticate"]
                assert challenge.startswith('Bearer realm="cymetica-analytics"'), name
                assert ('error="invalid_token"' in challenge) == (
                    name not in ("missing", "empty", "basic")
                ), name
                assert api_key not in message
        assert (
            "expired"
            in (await http.get(DASHBOARD, headers=refused["expired jwt"])).json()["error"]["message"]
        )


async def test_a_revoked_key_and_its_jwts_stop_at_once_and_look_like_unknown_keys(
    served: Served, http: httpx.AsyncClient, api_key: str
) -> None:
    async with http:
        token = (await http.post(TOKEN, headers=bearer(api_key))).json()["access_token"]
        assert (await http.get(DASHBOARD, headers=bearer(token))).status_code == 200
        await anyio.to_thread.run_sync(KeyRing(served.store).revoke, 1)
        revoked = await http.get(DASHBOARD, headers=bearer(api_key))
        unknown = await http.get(DASHBOARD, headers=bearer("cym_" + "B" * 43))
        by_jwt = await http.get(DASHBOARD, headers=bearer(token))
    assert assert_envelope(revoked, 401, "unauthorized") == assert_envelope(unknown, 401, "unauthorized")
    assert "revoked" in assert_envelope(by_jwt, 401, "unauthorized")


async def test_the_token_endpoint_issues_a_jwt_for_a_key_only(
    served: Served, http: httpx.AsyncClient, api_key: str
) -> None:
    async with http:
        issued = await http.post(TOKEN, headers=bearer(api_key))
        body = issued.json()
        by_jwt = await http.get(DASHBOARD, params={"filter": "agents"}, headers=bearer(body["access_token"]))
        again = await http.post(TOKEN, headers=bearer(body["access_token"]))
        wrong_method = await http.get(TOKEN, headers=bearer(api_key))
    assert issued.status_code == 200 and issued.headers["cache-control"] == "no-store"
    assert set(body) == {"access_token", "token_type", "expires_in"}
    assert body["token_type"] == "bearer" and body["expires_in"] == 3600
    assert body["access_token"].count(".") == 2
    assert by_jwt.json() == served.engine.dashboard(Filter.AGENTS, Period.H24, NOW).to_wire()
    assert "API key only" in assert_envelope(again, 403, "forbidden")
    assert_envelope(wrong_method, 405, "invalid_argument")
    assert wrong_method.headers["allow"] == "POST"


async def test_etag_revalidation_answers_304_until_an_import_changes_the_figures(
    served: Served, http: httpx.AsyncClient, api_key: str, tmp_path: Path
) -> None:
    url = f"{DASHBOARD}?filter=humans&period=7d"
    async with http:
        first = await http.get(url, headers=bearer(api_key))
        etag = first.headers["etag"]
        assert first.headers["cache-control"] == "private, no-cache"
        assert first.headers["vary"] == "Authorization"
        assert first.headers["x-data-version"] == str(served.store.data_version())
        for condition in (etag, f"W/{etag}", f'"other", {etag}', "*"):
            same = await http.get(url, headers={**bearer(api_key), "If-None-Match": condition})
            assert same.status_code == 304 and same.content == b"" and same.headers["etag"] == etag
        other = await http.get(url, headers={**bearer(api_key), "If-None-Match": '"stale"'})
        assert other.status_code == 200 and other.json() == first.json()
        users, trades = tmp_path / "u.csv", tmp_path / "t.csv"
        users.write_text("user_id,kind,capital_usdc,created_at\nnewcomer,human,1000,2026-03-01T00:00:00Z\n")
        trades.write_text(
            "trade_id,user_id,ts,volume_usdc,pnl_usdc\nn-1,newcomer,2026-03-20T12:00:00Z,500,25\n"
        )
        await anyio.to_thread.run_sync(import_files, served.store, users, trades)
        changed = await http.get(url, headers={**bearer(api_key), "If-None-Match": etag})
    assert changed.status_code == 200 and changed.headers["etag"] != etag
    assert int(changed.headers["x-data-version"]) == int(first.headers["x-data-version"]) + 1
    assert (
        changed.json()["metrics"]["active_users"]["value"]
        == first.json()["metrics"]["active_users"]["value"] + 1
    )


async def test_past_the_rate_limit_429_with_retry_after_per_key(
    demo_store: SQLiteStore, api_key: str
) -> None:
    other_key = KeyRing(demo_store).create("other")[1]
    with serving(demo_store, rate_burst=3, rate_per_minute=30) as served:
        async with httpx.AsyncClient(base_url=served.url) as http:
            allowed = [await http.get(DASHBOARD, headers=bearer(api_key)) for _ in range(2)]
            allowed.append(await http.post(TOKEN, headers=bearer(api_key)))
            limited = await http.get(DASHBOARD, headers=bearer(api_key))
            bad_query = await http.get(DASHBOARD + "?filter=bots", headers=bearer(api_key))
            other = await http.get(DASHBOARD, headers=bearer(other_key))
    assert [r.status_code for r in allowed] == [200, 200, 200]
    message = assert_envelope(limited, 429, "rate_limited")
    assert "30 per minute" in message and "bursts of 3" in message
    assert int(limited.headers["retry-after"]) >= 1 and limited.headers["retry-after"].isdigit()
    assert_envelope(bad_query, 429, "rate_limited")  # the limit is checked before the query
    assert other.status_code == 200


async def test_health_probes_need_no_credential_and_show_no_data(
    http: httpx.AsyncClient, served: Served
) -> None:
    async with http:
        live = await http.get("/healthz")
        ready = await http.get("/readyz")
        with closing(sqlite3.connect(served.store.path)) as conn:
            conn.execute("PRAGMA user_version = 99")
        newer = await http.get("/readyz")
        for name in (served.store.path, served.store.path.with_name(served.store.path.name + "-wal")):
            with name.open("r+b") as raw:  # the heads of the file and its log overwritten: not a database
                raw.write(b"not a database".ljust(100, b"\0"))
        unreadable = await http.get("/readyz")
        still_live = await http.get("/healthz")
    assert live.json() == {"status": "ok"} and still_live.status_code == 200
    assert ready.json() == {"status": "ready", "schema_version": SCHEMA_VERSION}
    # Not ready is an error like any other: the envelope (code `unavailable`), plus the probe's status and reason.
    for answer, reason in (
        (newer, f"the store has schema version 99, this server needs {SCHEMA_VERSION}"),
        (unreadable, "the store cannot be read"),
    ):
        assert answer.status_code == 503
        assert answer.json() == {
            "success": False,
            "error": {"code": "unavailable", "message": f"not ready: {reason}"},
            "status": "unavailable",
            "reason": reason,
        }


async def test_unknown_paths_and_methods_get_the_envelope(http: httpx.AsyncClient, api_key: str) -> None:
    async with http:
        missing = await http.get("/api/v1/analytics", headers=bearer(api_key))
        wrong = await http.post(DASHBOARD, headers=bearer(api_key))
    assert "/api/v1/analytics/dashboard" in assert_envelope(missing, 404, "not_found")
    assert "POST" in assert_envelope(wrong, 405, "invalid_argument")


class BrokenEngine(Engine):
    def result(self, filter: Filter, period: Period, now: int | None = None) -> Result:
        raise RuntimeError("disk on fire at /secret/path")


@pytest.fixture
def broken(demo_store: SQLiteStore, api_key: str) -> Iterator[Served]:
    with serving(demo_store, BrokenEngine(demo_store)) as running:
        yield running


async def test_an_internal_failure_is_a_500_envelope_without_details(broken: Served, api_key: str) -> None:
    async with httpx.AsyncClient(base_url=broken.url) as http:
        resp = await http.get(DASHBOARD, headers=bearer(api_key))
    message = assert_envelope(resp, 500, "internal")
    assert "fire" not in message and "secret" not in message


async def test_foreign_hosts_and_origins_are_refused(
    demo_store: SQLiteStore, api_key: str, http: httpx.AsyncClient, served: Served
) -> None:
    async with http:
        rebinding = await http.get(DASHBOARD, headers={**bearer(api_key), "Host": "evil.example:8000"})
        foreign = await http.get(DASHBOARD, headers={**bearer(api_key), "Origin": "https://evil.example"})
        opaque = await http.get(DASHBOARD, headers={**bearer(api_key), "Origin": "null"})
        own = await http.get(DASHBOARD, headers={**bearer(api_key), "Origin": served.url})
        local_page = await http.get(DASHBOARD, headers={**bearer(api_key), "Origin": "http://localhost:3000"})
        mcp = await http.post("/mcp", headers={**bearer(api_key), "Origin": "https://evil.example"})
    assert "bound to loopback" in assert_envelope(rebinding, 421, "forbidden")
    assert "https://evil.example" in assert_envelope(foreign, 403, "forbidden")
    assert_envelope(opaque, 403, "forbidden")
    assert_envelope(mcp, 403, "forbidden")
    assert own.status_code == local_page.status_code == 200
    app_origin = "https://dashboard.example"
    with serving(demo_store, allowed_origins=(app_origin,), loopback_only=False) as open_server:
        async with httpx.AsyncClient(base_url=open_server.url) as client:
            allowed = await client.get(DASHBOARD, headers={**bearer(api_key), "Origin": app_origin})
            preflight = await client.options(
                DASHBOARD,
                headers={
                    "Origin": app_origin,
                    "Access-Control-Request-Method": "GET",
                    "Access-Control-Request-Headers": "authorization",
                },
            )
            any_host = await client.get("/healthz", headers={"Host": "analytics.example"})
            stranger = await client.get(
                DASHBOARD, headers={**bearer(api_key), "Origin": "http://localhost:3000"}
            )
    assert allowed.status_code == 200 and allowed.headers["access-control-allow-origin"] == app_origin
    assert "etag" in allowed.headers["access-control-expose-headers"].lower()
    assert preflight.status_code == 200
    assert any_host.status_code == 200
    assert_envelope(stranger, 403, "forbidden")
