"""Browser tests: the system's Chromium (Debian package `chromium`), driven by Playwright for Python.

Playwright never downloads a browser here: it launches /usr/bin/chromium. Without it these tests skip
with the install command (under CI=true they fail). Each test gets its own browser (about 0.5 s), so
nothing outlives the test's event loop.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Final

import pytest
from playwright.async_api import Browser, async_playwright

from tests.conftest import require_system
from tests.web.conftest import api_key, served

__all__ = ["api_key", "browser", "served"]

CHROMIUM: Final = Path("/usr/bin/chromium")
INSTALL: Final = "apt-get install -y --no-install-recommends chromium"
ARGS: Final = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    """A headless Chromium of the system's, closed after the test."""
    require_system("chromium", INSTALL, path=CHROMIUM)
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            yield launched
        finally:
            await launched.close()
