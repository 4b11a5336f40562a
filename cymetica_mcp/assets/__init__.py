"""The dashboard's built files, shipped inside the package: data only, no code.

`make assets` builds them from `frontend/` (see frontend/build.mjs) and they are committed, so running
and testing the project needs no Node.js. The web door serves the page (`page.html`, `page.js`,
`page.css`, `icon.svg`) at `/`; the MCP door serves `view.html`, one self-contained document, as the
MCP App view of its tool, and `icon.svg` as the server's and the tool's icon.
"""

from __future__ import annotations

import base64
from functools import cache
from importlib import resources
from typing import Final

PAGE: Final = "page.html"
VIEW: Final = "view.html"
ICON: Final = "icon.svg"
PAGE_FILES: Final = {
    "page.js": "text/javascript; charset=utf-8",
    "page.css": "text/css; charset=utf-8",
    "icon.svg": "image/svg+xml",
}
"""The files the page loads from /assets/, by name, with their media types (nothing else is served)."""


@cache
def read_bytes(name: str) -> bytes:
    """One built file's bytes (read once per process)."""
    return resources.files(__name__).joinpath(name).read_bytes()


def read_text(name: str) -> str:
    """One built file as text (UTF-8)."""
    return read_bytes(name).decode("utf-8")


def icon_data_uri() -> str:
    """The icon as a `data:` URI, which an MCP host can show without fetching anything."""
    return "data:image/svg+xml;base64," + base64.b64encode(read_bytes(ICON)).decode("ascii")
