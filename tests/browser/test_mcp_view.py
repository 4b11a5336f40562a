"""The MCP App view inside a host: tests/browser/host.html (built by `make assets` with the official
`AppBridge`) loads the view, as read from the server, into a sandboxed iframe under a host's strict
CSP, hands it a real tool result from a real MCP session over HTTP, and forwards the view's tools/call
to the server through that session."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from playwright.async_api import Browser, FrameLocator

from cymetica_mcp.mcp_server import TOOL_NAME
from tests.browser.dashboard import expected, shown
from tests.browser.test_page import Console
from tests.web.conftest import Served

pytestmark = pytest.mark.anyio

HOST_PAGE = Path(__file__).with_name("host.html")
VIEW_URI = "ui://cymetica/dashboard.html"
TIMEOUT = 10.0


async def showing(view: FrameLocator, filter: str, period: str) -> dict[str, Any]:
    """What the view shows once it shows (filter, period), within the deadline."""
    with anyio.fail_after(TIMEOUT):
        while True:
            now = await shown(view)
            if now is not None and (now["filter"], now["period"]) == (filter, period):
                return now
            await anyio.sleep(0.05)


async def test_a_host_renders_the_tool_result_and_the_views_switch_calls_the_tool(
    browser: Browser, served: Served, api_key: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="cymetica_mcp.mcp_server")
    forwarded: list[dict[str, Any]] = []
    headers = {"Authorization": f"Bearer {api_key}"}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=10) as http,
        Client(streamable_http_client(f"{served.url}/mcp", http_client=http)) as mcp,
    ):
        (tool,) = (await mcp.list_tools()).tools
        assert tool.meta == {"ui": {"resourceUri": VIEW_URI}}
        (resource,) = (await mcp.read_resource(VIEW_URI)).contents
        html = resource.text  # type: ignore[union-attr]
        first = await mcp.call_tool(TOOL_NAME, {"filter": "all", "period": "24h"})

        async def forward(params: dict[str, Any]) -> dict[str, Any]:
            """The host's side of the view's tools/call: the same MCP session, to the server."""
            forwarded.append(params)
            result = await mcp.call_tool(params["name"], params.get("arguments") or {})
            return result.model_dump(by_alias=True, mode="json", exclude_none=True)

        context = await browser.new_context(viewport={"width": 900, "height": 900})
        try:
            page = await context.new_page()
            console = Console(page)
            await page.expose_function("forwardToolCall", forward)
            await page.goto(HOST_PAGE.as_uri())
            await page.evaluate(
                "([html, input, result]) => window.cymeticaHost.load(html, input, result, 'light')",
                [
                    html,
                    {"filter": "all", "period": "24h"},
                    first.model_dump(by_alias=True, mode="json", exclude_none=True),
                ],
            )
            view = page.frame_locator("#view")
            envelope = first.structured_content
            assert envelope is not None
            version = envelope["meta"]["data_version"]
            assert await showing(view, "all", "24h") == expected(envelope["data"], version)
            meta = await view.locator(".meta").inner_text()
            assert envelope["meta"]["as_of"] in meta and envelope["meta"]["window"]["start"] in meta
            assert envelope["meta"]["previous_window"]["end"] in meta

            await view.locator("label[for=filter-agents]").click()
            agents = await showing(view, "agents", "24h")
            calls = await page.evaluate("window.cymeticaHost.calls")
            again = await mcp.call_tool(TOOL_NAME, {"filter": "agents", "period": "24h"})
            assert again.structured_content is not None
            assert agents == expected(again.structured_content["data"], version)
            assert console.errors == []
        finally:
            await context.close()
    assert forwarded == calls and len(calls) == 1
    assert (calls[0]["name"], calls[0]["arguments"]) == (TOOL_NAME, {"filter": "agents", "period": "24h"})
    # ... and the server answered it: the call is in its log (not only in our host's list).
    assert any(f"{TOOL_NAME} agents/24h" in record.getMessage() for record in caplog.records)
