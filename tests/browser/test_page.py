"""The dashboard page at `/` in a real browser, against a real server: sign in, live figures equal to
REST's, switchers and the URL, an import shown without a reload, a restart, a revoked key, a JWT
replaced before it expires, and no console errors."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import anyio
import httpx
import pytest
from playwright.async_api import Browser, ConsoleMessage, Page, Request, WebSocket

from cymetica_mcp.auth import KeyRing
from cymetica_mcp.models import Scope
from cymetica_mcp.store import SQLiteStore
from cymetica_mcp.windows import iso
from tests.browser.dashboard import expected, shown
from tests.conftest import NOW
from tests.web.conftest import Served, serving

pytestmark = pytest.mark.anyio

TIMEOUT = 10.0
RECORD_STATES = """
document.addEventListener("DOMContentLoaded", () => {
  const status = document.getElementById("status");
  window.__states = [status.dataset.state];
  new MutationObserver(() => window.__states.push(status.dataset.state))
    .observe(status, { attributes: true, attributeFilter: ["data-state"] });
});
"""


class Console:
    """Every console error and uncaught exception of a page."""

    def __init__(self, page: Page) -> None:
        self.errors: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.errors.append(f"uncaught: {error}"))

    def _console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.errors.append(message.text)

    def unexpected(self, *allowed: str) -> list[str]:
        """The errors not matching any of the `allowed` patterns (the browser's own network reports)."""
        return [e for e in self.errors if not any(re.search(pattern, e) for pattern in allowed)]


@asynccontextmanager
async def opened(browser: Browser, url: str, **context: Any) -> AsyncIterator[tuple[Page, Console]]:
    """A fresh browser context (its own sessionStorage) with one page at `url`."""
    ctx = await browser.new_context(viewport={"width": 1280, "height": 800}, **context)
    try:
        page = await ctx.new_page()
        page.set_default_timeout(TIMEOUT * 1000)
        await page.add_init_script(RECORD_STATES)
        console = Console(page)
        await page.goto(url)
        yield page, console
    finally:
        await ctx.close()


async def state(page: Page, wanted: str) -> None:
    """Wait until the page's status is `wanted`."""
    await page.wait_for_function(
        "(wanted) => document.getElementById('status').dataset.state === wanted", arg=wanted
    )


async def sign_in(page: Page, key: str) -> None:
    await page.fill("#api-key", key)
    await page.click("#sign-in-form button[type=submit]")


async def rest(served: Served, key: str, filter: str, period: str) -> tuple[dict[str, Any], int]:
    """The REST dashboard and the data version it comes from."""
    async with httpx.AsyncClient(base_url=served.url, headers={"Authorization": f"Bearer {key}"}) as http:
        response = await http.get("/api/v1/analytics/dashboard", params={"filter": filter, "period": period})
    assert response.status_code == 200, response.text
    return response.json(), int(response.headers["X-Data-Version"])


async def showing(page: Page, filter: str, period: str, version: int | None = None) -> dict[str, Any]:
    """What the page shows once it shows (filter, period) [at `version`], within the deadline."""
    with anyio.fail_after(TIMEOUT):
        while True:
            now = await shown(page)
            chosen = now is not None and (now["filter"], now["period"]) == (filter, period)
            if now is not None and chosen and (version is None or now["version"] == version):
                return now
            await anyio.sleep(0.05)


async def test_the_page_shows_the_rest_figures_and_follows_the_switchers(
    browser: Browser, served: Served, api_key: str
) -> None:
    sockets: list[WebSocket] = []
    async with opened(browser, served.url + "/") as (page, console):
        page.on("websocket", lambda socket: sockets.append(socket))
        await state(page, "signed-out")
        await sign_in(page, api_key)
        await state(page, "live")
        board, version = await rest(served, api_key, "all", "24h")
        assert await showing(page, "all", "24h", version) == expected(board, version)

        await page.click("label[for=filter-agents]")
        await page.click("label[for=period-7d]")
        board, version = await rest(served, api_key, "agents", "7d")
        assert await showing(page, "agents", "7d", version) == expected(board, version)
        assert page.url.endswith("/?filter=agents&period=7d")

        await page.focus("#period-7d")  # the switchers are reachable and work from the keyboard
        await page.keyboard.press("ArrowRight")
        board, version = await rest(served, api_key, "agents", "30d")
        assert await showing(page, "agents", "30d", version) == expected(board, version)

        # The key stays in this tab's sessionStorage, never in a URL or a cookie; the socket gets a JWT.
        assert await page.evaluate("sessionStorage.getItem('cymetica.apiKey')") == api_key
        assert await page.evaluate("document.cookie") == ""
        assert sockets and all(api_key not in s.url and "token=eyJ" in s.url for s in sockets)

        await page.reload()  # the bookmarkable URL comes back as it was, signed in within the tab
        await state(page, "live")
        board, version = await rest(served, api_key, "agents", "30d")
        assert await showing(page, "agents", "30d", version) == expected(board, version)
        assert console.errors == []


async def test_an_import_shows_new_figures_without_a_reload(
    browser: Browser, served: Served, api_key: str
) -> None:
    ingest_key = KeyRing(served.store).create("platform", (Scope.INGEST,))[1]
    async with opened(browser, served.url + "/?filter=humans&period=24h") as (page, console):
        await sign_in(page, api_key)
        before, version = await rest(served, api_key, "humans", "24h")
        assert await showing(page, "humans", "24h", version) == expected(before, version)
        await page.evaluate("document.body.dataset.loadedOnce = 'yes'")  # gone if the page reloads

        users = "user_id,kind,capital_usdc,created_at\npage_h1,human,2500,2026-01-01T00:00:00Z\n"
        trades = f"trade_id,user_id,ts,volume_usdc,pnl_usdc\npage_t1,page_h1,{iso(NOW - 120)},1234.56,78.9\n"
        async with httpx.AsyncClient(
            base_url=served.url, headers={"Authorization": f"Bearer {ingest_key}", "Content-Type": "text/csv"}
        ) as http:
            assert (await http.post("/api/v1/ingest/users", content=users)).status_code == 200
            imported = await http.post("/api/v1/ingest/trades", content=trades)
        assert imported.status_code == 200 and imported.json()["trades_inserted"] == 1
        after, new_version = await rest(served, api_key, "humans", "24h")
        assert new_version > version and after != before
        assert await showing(page, "humans", "24h", new_version) == expected(after, new_version)
        assert await page.evaluate("document.body.dataset.loadedOnce") == "yes"
        assert console.errors == []


async def test_a_restarted_server_shows_reconnecting_then_live(
    browser: Browser, demo_store: SQLiteStore, api_key: str
) -> None:
    async with AsyncExitStack() as stack:
        with serving(demo_store, push_interval=1.0, heartbeat_interval=0.5) as first:
            port = int(first.url.rsplit(":", 1)[1])
            page, console = await stack.enter_async_context(opened(browser, first.url + "/"))
            await sign_in(page, api_key)
            await state(page, "live")
            await showing(page, "all", "24h")
        await state(page, "reconnecting")  # the server closed its sockets with 1001 and is gone
        with serving(demo_store, port=port, push_interval=1.0, heartbeat_interval=0.5) as second:
            await state(page, "live")
            board, version = await rest(second, api_key, "all", "24h")
            assert await showing(page, "all", "24h", version) == expected(board, version)
            states: list[str] = await page.evaluate("window.__states")
        changes = [s for i, s in enumerate(states) if i == 0 or states[i - 1] != s]
        assert changes[-3:] == ["live", "reconnecting", "live"], changes
        # Chromium reports each refused connection attempt itself; the page's code logs no error.
        assert console.unexpected(r"WebSocket connection to .* failed", r"Failed to load resource") == []


async def test_a_bad_key_shows_the_servers_message_and_a_revoked_key_signs_out(
    browser: Browser, served: Served, api_key: str
) -> None:
    async with opened(browser, served.url + "/") as (page, console):
        await sign_in(page, "cym_not_a_real_key")
        await page.wait_for_function("() => document.getElementById('sign-in-error').textContent !== ''")
        assert "invalid or revoked API key" in await page.inner_text("#sign-in-error")
        assert await page.evaluate("sessionStorage.length") == 0

        await sign_in(page, api_key)
        await state(page, "live")
        await showing(page, "all", "24h")
        KeyRing(served.store).revoke(1)  # the key of `api_key`, from outside the server
        await state(page, "signed-out")  # 4401 at the next push, one refused exchange, signed out
        assert await page.is_visible("#sign-in") and not await page.is_visible("#board")
        assert "invalid or revoked API key" in await page.inner_text("#sign-in-error")
        assert await page.evaluate("sessionStorage.length") == 0
        assert console.unexpected(r"Failed to load resource: the server responded with a status of 401") == []


async def test_the_jwt_is_replaced_before_it_expires_without_a_drop(
    browser: Browser, demo_store: SQLiteStore, api_key: str
) -> None:
    exchanges: list[str] = []
    fourth = anyio.Event()

    def exchanged(request: Request) -> None:
        if request.url.endswith("/api/v1/auth/token"):
            exchanges.append(request.url)
            if len(exchanges) == 4:
                fourth.set()

    with serving(demo_store, jwt_lifetime=4, push_interval=0.5, heartbeat_interval=0.5) as served:
        async with opened(browser, served.url + "/") as (page, console):
            page.on("request", exchanged)
            await sign_in(page, api_key)
            await state(page, "live")
            with anyio.fail_after(TIMEOUT + 5):
                # Refreshed about every 3 s: by the fourth token the first two have expired, and a
                # socket still using one would have been closed with 4401 at a push (every 0.5 s).
                await fourth.wait()
            states: list[str] = await page.evaluate("window.__states")
            assert set(states[states.index("live") :]) == {"live"}, states  # never left live
            board, version = await rest(served, api_key, "all", "24h")
            assert await showing(page, "all", "24h", version) == expected(board, version)
            assert console.errors == []
