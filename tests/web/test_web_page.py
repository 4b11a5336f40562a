"""`GET /` and `/assets/`: the dashboard page's files, with their security headers (no browser needed;
tests/browser drives the page itself)."""

from __future__ import annotations

import httpx
import pytest

from cymetica_mcp import assets
from tests.web.conftest import Served

pytestmark = pytest.mark.anyio


async def test_the_page_and_its_files_come_with_a_strict_policy(served: Served) -> None:
    host = served.url.removeprefix("http://")
    async with httpx.AsyncClient(base_url=served.url) as http:
        page = await http.get("/")
        files = {name: await http.get(f"/assets/{name}") for name in assets.PAGE_FILES}
        head = await http.head("/")
    assert page.status_code == 200 and page.headers["content-type"] == "text/html; charset=utf-8"
    assert page.content == assets.read_bytes(assets.PAGE) and head.status_code == 200
    policy = page.headers["content-security-policy"]
    assert policy == (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        f"connect-src 'self' ws://{host} wss://{host}; base-uri 'none'; form-action 'self'; "
        "frame-ancestors 'none'"
    )
    for response in (page, *files.values()):
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["referrer-policy"] == "no-referrer"
        assert response.headers["x-frame-options"] == "DENY"
        assert "unsafe" not in response.headers["content-security-policy"]
    for name, response in files.items():
        assert response.status_code == 200 and response.content == assets.read_bytes(name)
        assert response.headers["content-type"] == assets.PAGE_FILES[name]


async def test_files_revalidate_by_etag_and_nothing_else_is_served(served: Served) -> None:
    async with httpx.AsyncClient(base_url=served.url) as http:
        first = await http.get("/assets/page.js")
        again = await http.get("/assets/page.js", headers={"If-None-Match": first.headers["etag"]})
        view = await http.get("/assets/view.html")  # the MCP view is not a file of the page
        outside = await http.get("/assets/..%2F__init__.py")
        posted = await http.post("/")
    assert first.headers["cache-control"] == "no-cache"
    assert again.status_code == 304 and again.content == b""
    assert (
        view.status_code == 404 and "served: page.js, page.css, icon.svg" in view.json()["error"]["message"]
    )
    assert outside.status_code == 404
    assert posted.status_code == 405


async def test_a_host_header_that_is_not_a_plain_host_adds_nothing_to_the_policy() -> None:
    from cymetica_mcp.web._page import content_security_policy

    assert "connect-src 'self';" in content_security_policy("evil.example; script-src *")
    assert "connect-src 'self';" in content_security_policy(None)
    assert "ws://[::1]:8000 wss://[::1]:8000" in content_security_policy("[::1]:8000")
