"""The HTTP and WebSocket door: REST, the live stream, MCP over Streamable HTTP, health probes.

The names below load on first use, so that the command line (which reads `web.options` for its
defaults) does not pay for Starlette, uvicorn and the MCP SDK unless it serves.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cymetica_mcp.web.app import AnalyticsApp, create_app
    from cymetica_mcp.web.options import WebOptions
    from cymetica_mcp.web.server import GracefulServer, base_url, bind, make_server

__all__ = ["AnalyticsApp", "GracefulServer", "WebOptions", "base_url", "bind", "create_app", "make_server"]

_HOME = {
    "AnalyticsApp": "app",
    "create_app": "app",
    "WebOptions": "options",
    "GracefulServer": "server",
    "base_url": "server",
    "bind": "server",
    "make_server": "server",
}


def __getattr__(name: str) -> Any:
    """Import an exported name from its module on first use."""
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_HOME[name]}"), name)
