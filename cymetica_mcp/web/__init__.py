"""The HTTP and WebSocket door: REST, the live stream, MCP over Streamable HTTP, health probes."""

from __future__ import annotations

from cymetica_mcp.web.app import AnalyticsApp, create_app
from cymetica_mcp.web.options import WebOptions
from cymetica_mcp.web.server import GracefulServer, base_url, bind, make_server

__all__ = ["AnalyticsApp", "GracefulServer", "WebOptions", "base_url", "bind", "create_app", "make_server"]
