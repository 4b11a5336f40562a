"""The MCP door: the `et_analytics_dashboard` tool, its resources and prompt, over stdio or HTTP.

`create_server` builds an `MCPServer` (the official SDK's) over the engine and the authenticator;
the tool returns `{success, data, description}` (`_envelope`), the caller's credential is checked on
every call (`_caller`), repeated calls are answered from memory while nothing changed (`_recent`),
and each dashboard is also a subscribable resource (`_resources`).
"""

from __future__ import annotations

from cymetica_mcp.mcp_server._caller import NO_STDIO_KEY, SCOPE, http_auth_settings
from cymetica_mcp.mcp_server._envelope import OUTPUT_SCHEMA
from cymetica_mcp.mcp_server._protocol import limit_sessions_per_key
from cymetica_mcp.mcp_server._resources import URI_TEMPLATE, dashboard_uri
from cymetica_mcp.mcp_server._server import (
    FORBIDDEN_RPC_CODE,
    TOOL_NAME,
    UNAUTHORIZED_RPC_CODE,
    Dashboards,
    create_server,
)

__all__ = [
    "FORBIDDEN_RPC_CODE",
    "NO_STDIO_KEY",
    "OUTPUT_SCHEMA",
    "SCOPE",
    "TOOL_NAME",
    "UNAUTHORIZED_RPC_CODE",
    "URI_TEMPLATE",
    "Dashboards",
    "create_server",
    "dashboard_uri",
    "http_auth_settings",
    "limit_sessions_per_key",
]
