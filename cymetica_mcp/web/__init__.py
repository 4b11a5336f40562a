"""The HTTP and WebSocket door: REST, the live stream, MCP over Streamable HTTP, health probes.

The names below load on first use, so that the command line (which reads the options' defaults)
does not pay for Starlette, uvicorn and the MCP SDK unless it serves.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cymetica_mcp.web._app import AnalyticsApp, create_app
    from cymetica_mcp.web._logs import install_redaction
    from cymetica_mcp.web._options import (
        FAILURES_PER_ADDRESS,
        LOOPBACK_HOSTS,
        MCP_SESSIONS_PER_KEY,
        PUSH_INTERVAL,
        RATE_BURST,
        RATE_PER_MINUTE,
        WebOptions,
        is_loopback,
    )
    from cymetica_mcp.web._server import GracefulServer, base_url, bind, make_server

__all__ = [
    "FAILURES_PER_ADDRESS",
    "INGEST_BURST",
    "INGEST_MAX_BYTES",
    "INGEST_QUEUE",
    "INGEST_RATE_PER_MINUTE",
    "LOOPBACK_HOSTS",
    "MCP_SESSIONS_PER_KEY",
    "PUSH_INTERVAL",
    "RATE_BURST",
    "RATE_PER_MINUTE",
    "AnalyticsApp",
    "GracefulServer",
    "WebOptions",
    "base_url",
    "bind",
    "create_app",
    "install_redaction",
    "is_loopback",
    "make_server",
]

_HOME = {
    "AnalyticsApp": "_app",
    "create_app": "_app",
    "WebOptions": "_options",
    "LOOPBACK_HOSTS": "_options",
    "is_loopback": "_options",
    "install_redaction": "_logs",
    "INGEST_BURST": "_options",
    "FAILURES_PER_ADDRESS": "_options",
    "MCP_SESSIONS_PER_KEY": "_options",
    "INGEST_MAX_BYTES": "_options",
    "INGEST_QUEUE": "_options",
    "INGEST_RATE_PER_MINUTE": "_options",
    "PUSH_INTERVAL": "_options",
    "RATE_BURST": "_options",
    "RATE_PER_MINUTE": "_options",
    "GracefulServer": "_server",
    "base_url": "_server",
    "bind": "_server",
    "make_server": "_server",
}


def __getattr__(name: str) -> Any:
    """Import an exported name from its module on first use."""
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_HOME[name]}"), name)
