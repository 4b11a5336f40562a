"""What hosts can show: the MCP App view (extension io.modelcontextprotocol/ui), icons, completions.

The browser half (the view rendering a real result inside a host's iframe) is tests/browser/test_mcp_view.py.
"""

from __future__ import annotations

import base64
import json
from html.parser import HTMLParser
from typing import Any

import pytest
from mcp import Client
from mcp.client.extension import advertise
from mcp.server.apps import APP_MIME_TYPE, EXTENSION_ID
from mcp.server.mcpserver import MCPServer
from mcp.types import PromptReference, ResourceTemplateReference

from cymetica_mcp import assets
from cymetica_mcp.auth import Authenticator, KeyRing, jwt_secret
from cymetica_mcp.engine import Engine
from cymetica_mcp.mcp_server import TOOL_NAME, URI_TEMPLATE, create_server
from cymetica_mcp.store import SQLiteStore

pytestmark = pytest.mark.anyio

VIEW_URI = "ui://cymetica/dashboard.html"
APPS = advertise(EXTENSION_ID, {"mimeTypes": [APP_MIME_TYPE]})


@pytest.fixture
def server(engine: Engine, demo_store: SQLiteStore) -> MCPServer[Any]:
    authenticator = Authenticator(demo_store, jwt_secret(demo_store, None))
    key = KeyRing(demo_store).create("view-tests")[1]
    return create_server(engine, authenticator, api_key=key, poll_seconds=0.05)


@pytest.fixture(params=["auto", "legacy"])
def mode(request: pytest.FixtureRequest) -> str:
    """Both protocol eras."""
    return str(request.param)


async def test_the_tool_names_its_view_and_the_server_advertises_the_extension(
    server: MCPServer[Any], mode: str
) -> None:
    async with Client(server, mode=mode, extensions=[APPS]) as client:
        (tool,) = (await client.list_tools()).tools
        capabilities = client.server_capabilities
        read = await client.read_resource(VIEW_URI)
        listed = {r.uri: r for r in (await client.list_resources()).resources}
    assert tool.meta == {"ui": {"resourceUri": VIEW_URI}}
    if mode == "auto":  # the 2026-07-28 era; for handshake-era sessions the SDK's per-version sieve
        # drops `capabilities.extensions` (not in those schemas): hosts act on the tool's `_meta.ui`
        assert capabilities.extensions is not None and EXTENSION_ID in capabilities.extensions
    (content,) = read.contents
    assert content.mime_type == APP_MIME_TYPE == "text/html;profile=mcp-app"
    html = content.text  # type: ignore[union-attr]
    assert html == assets.read_text(assets.VIEW) and html.startswith("<!doctype html>")
    assert listed[VIEW_URI].mime_type == APP_MIME_TYPE and listed[VIEW_URI].title


class _Document(HTMLParser):
    """The tags of a document, their attributes, and the text of its <style> elements."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.styles: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_style = tag == "style"

    def handle_endtag(self, tag: str) -> None:
        self._in_style = False

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self.styles.append(data)


def test_the_view_is_one_document_that_loads_nothing_from_elsewhere() -> None:
    html = assets.read_text(assets.VIEW)
    document = _Document()
    document.feed(html)
    tags = [tag for tag, _ in document.tags]
    assert tags.count("script") == 1 and tags.count("style") == 1 and "link" not in tags
    assert not [(t, a) for t, a in document.tags if {"src", "href"} & set(a)]
    assert document.styles and not any("url(" in s or "@import" in s for s in document.styles)
    assert "ui/initialize" in html  # the official App class's handshake is inside, not a copy of ours


async def test_hosts_with_and_without_the_extension_get_the_same_result(
    server: MCPServer[Any], mode: str
) -> None:
    arguments = {"filter": "agents", "period": "7d"}
    async with Client(server, mode=mode) as plain, Client(server, mode=mode, extensions=[APPS]) as apps:
        await plain.call_tool(TOOL_NAME, arguments)  # computed once; both calls below are answered alike
        without = await plain.call_tool(TOOL_NAME, arguments)
        with_view = await apps.call_tool(TOOL_NAME, arguments)
    assert without.model_dump() == with_view.model_dump()
    assert not without.is_error and without.structured_content is not None
    assert set(without.structured_content) == {"success", "data", "description", "meta"}
    (block,) = without.content
    assert json.loads(block.text) == without.structured_content  # type: ignore[union-attr]


async def test_the_server_and_the_tool_carry_the_icon(server: MCPServer[Any]) -> None:
    async with Client(server, mode="legacy") as client:
        (tool,) = (await client.list_tools()).tools
        info = client.server_info
    assert tool.icons and info is not None and info.icons == tool.icons
    (icon,) = tool.icons
    assert icon.mime_type == "image/svg+xml"
    prefix = "data:image/svg+xml;base64,"
    assert icon.src.startswith(prefix)
    assert base64.b64decode(icon.src.removeprefix(prefix)) == assets.read_bytes(assets.ICON)


@pytest.mark.parametrize(
    ("argument", "typed", "expected"),
    [
        ("filter", "", ["all", "humans", "agents"]),
        ("filter", "h", ["humans"]),
        ("filter", "A", ["all", "agents"]),
        ("period", "", ["24h", "7d", "30d"]),
        ("period", "3", ["30d"]),
        ("period", "1y", []),
    ],
)
async def test_the_template_and_the_prompt_complete_filter_and_period(
    server: MCPServer[Any], mode: str, argument: str, typed: str, expected: list[str]
) -> None:
    template = ResourceTemplateReference(type="ref/resource", uri=URI_TEMPLATE)
    prompt = PromptReference(type="ref/prompt", name="analytics_briefing")
    async with Client(server, mode=mode) as client:
        by_template = await client.complete(template, {"name": argument, "value": typed})
        by_prompt = await client.complete(prompt, {"name": argument, "value": typed})
        other = await client.complete(
            ResourceTemplateReference(type="ref/resource", uri="other://{x}"), {"name": argument, "value": ""}
        )
    assert by_template.completion.values == expected == by_prompt.completion.values
    assert by_template.completion.total == len(expected) and by_template.completion.has_more is False
    assert other.completion.values == []
