"""`make screenshots`: the dashboard page and the MCP App view as PNGs, reproducibly.

    python -m tests.browser.screenshots docs/screenshots

A fresh demo store (the `cymetica-mcp demo` data: 400 users, 20,000 trades over 40 days) ending at a
fixed instant (CYMETICA_NOW, default 2026-03-20T12:34:56Z), served on a loopback port with the engine's
clock fixed there, photographed by the system's Chromium: the page at 1280x800 and 390x844 in light
and dark (the whole page), and the MCP App view inside the test host (light and dark).
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
from pathlib import Path
from typing import Any, Literal

from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from playwright.async_api import Browser, async_playwright

from cymetica_mcp.auth import KeyRing
from cymetica_mcp.engine import open_engine
from cymetica_mcp.ingest import DemoSpec, import_files, write_demo
from cymetica_mcp.mcp_server import TOOL_NAME
from cymetica_mcp.store import SQLiteStore
from cymetica_mcp.windows import parse_instant
from tests.browser.conftest import ARGS, CHROMIUM, INSTALL
from tests.web.conftest import serving

HOST_PAGE = Path(__file__).with_name("host.html")
VIEW_URI = "ui://cymetica/dashboard.html"
SIZES = [(1280, 800), (390, 844)]
SCHEMES: list[Literal["light", "dark"]] = ["light", "dark"]
STEADY = """() => {
  const height = document.getElementById("view").offsetHeight;
  const steady = window.lastHeight === height && height > 600;
  window.lastHeight = height;
  return steady;
}"""
FRAMES = "() => new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done)))"


async def _page_shots(browser: Browser, url: str, key: str, folder: Path) -> list[Path]:
    saved = []
    for width, height in SIZES:
        for scheme in SCHEMES:
            context = await browser.new_context(
                viewport={"width": width, "height": height}, color_scheme=scheme, device_scale_factor=1
            )
            page = await context.new_page()
            await page.goto(url + "/?filter=all&period=24h")
            await page.fill("#api-key", key)
            await page.click("#sign-in-form button[type=submit]")
            await page.wait_for_function("() => document.getElementById('status').dataset.state === 'live'")
            await page.wait_for_selector(".context[data-version]")
            await page.evaluate("document.activeElement && document.activeElement.blur()")
            path = folder / f"page-{width}x{height}-{scheme}.png"
            await page.screenshot(path=str(path), full_page=True)
            saved.append(path)
            await context.close()
    return saved


async def _view_shots(browser: Browser, url: str, key: str, folder: Path) -> list[Path]:
    import httpx2

    saved = []
    async with (
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=30) as http,
        Client(streamable_http_client(f"{url}/mcp", http_client=http)) as mcp,
    ):
        (resource,) = (await mcp.read_resource(VIEW_URI)).contents
        html = resource.text  # type: ignore[union-attr]
        arguments = {"filter": "all", "period": "7d"}
        result = (await mcp.call_tool(TOOL_NAME, arguments)).model_dump(
            by_alias=True, mode="json", exclude_none=True
        )

        async def forward(params: dict[str, Any]) -> dict[str, Any]:
            answer = await mcp.call_tool(params["name"], params.get("arguments") or {})
            return answer.model_dump(by_alias=True, mode="json", exclude_none=True)

        for scheme in SCHEMES:
            context = await browser.new_context(
                viewport={"width": 760, "height": 900}, color_scheme=scheme, device_scale_factor=1
            )
            page = await context.new_page()
            await page.expose_function("forwardToolCall", forward)
            await page.goto(HOST_PAGE.as_uri())
            await page.evaluate(
                "([html, input, result, theme]) => window.cymeticaHost.load(html, input, result, theme)",
                [html, arguments, result, scheme],
            )
            view = page.frame_locator("#view")
            await view.locator(".context").wait_for()
            await view.locator('[data-chart="activity"] svg').wait_for()
            await page.wait_for_function(STEADY, polling=250)  # the view has stopped resizing its frame
            for where in (view.locator("body"), page.locator("body")):  # two frames painted in each
                await where.evaluate(FRAMES)
            path = folder / f"mcp-view-{scheme}.png"
            await page.screenshot(path=str(path), full_page=True)
            saved.append(path)
            await context.close()
    return saved


async def main(folder: Path) -> None:
    if not CHROMIUM.exists():
        raise SystemExit(f"Chromium ({CHROMIUM}) is missing: install it with `{INSTALL}`")
    now = parse_instant(os.environ.get("CYMETICA_NOW") or "2026-03-20T12:34:56Z")
    await asyncio.to_thread(folder.mkdir, parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="cymetica-shots-") as tmp:
        store = SQLiteStore(Path(tmp) / "demo.db")
        import_files(store, *write_demo(DemoSpec(), now, Path(tmp)))
        key = KeyRing(store).create("screenshots")[1]
        engine = open_engine(store, now=now)
        with serving(store, engine) as served:
            async with async_playwright() as playwright:
                # One renderer for the host and the view's iframe: a screenshot taken while the view's
                # own process has not yet handed its frame over to the page came out blank, now and then.
                single = [
                    *ARGS,
                    "--disable-site-isolation-trials",
                    "--disable-features=IsolateOrigins,site-per-process",
                ]
                browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=single)
                try:
                    saved = await _page_shots(browser, served.url, key, folder)
                    saved += await _view_shots(browser, served.url, key, folder)
                finally:
                    await browser.close()
    for path in saved:
        print(path)


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/screenshots")))
