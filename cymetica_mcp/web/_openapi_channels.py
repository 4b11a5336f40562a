"""The doors of /openapi.json that OpenAPI 3.1 cannot describe as operations, as extensions.

x-websocket   /ws/analytics (RFC 6455): handshake credential, messages each way, close codes
x-mcp         /mcp (MCP over Streamable HTTP: JSON-RPC, described by the MCP specification)
"""

from __future__ import annotations

from typing import Any

from cymetica_mcp.web._openapi_components import SCHEMAS


def websocket_channel() -> dict[str, Any]:
    """`x-websocket`: /ws/analytics's handshake, messages and close codes."""
    return {
        "path": "/ws/analytics",
        "description": "The live stream (RFC 6455), which OpenAPI 3.1 cannot describe as an operation: "
        "see docs/web.md. An HTTP GET without the upgrade answers 404.",
        "credential": "`?token=<JWT or API key>` (or `Authorization: Bearer`), scope `read`",
        "client_messages": {
            "set_preferences": {
                "type": "set_preferences",
                "filter": {"$ref": SCHEMAS + "Filter"},
                "period": {"$ref": SCHEMAS + "Period"},
            },
            "ping": {"type": "ping"},
        },
        "server_messages": {
            "connected": ["session_id", "filter", "period", "push_interval", "heartbeat_interval"],
            "analytics_update": {"data": {"$ref": SCHEMAS + "Dashboard"}, "data_version": "integer"},
            "preferences_ack": ["filter", "period"],
            "pong": ["timestamp"],
            "heartbeat": ["timestamp"],
            "error": {"error": {"$ref": SCHEMAS + "ErrorDetail"}},
        },
        "close_codes": {
            "4401": "a bad credential, before any data; or later, once the key is revoked or the JWT expired",
            "4403": "a credential without the `read` scope, before any data",
            "4429": "over the per-key socket or rate limit at connect, or too many refused credentials",
            "1009": "a client message over 4 KiB",
            "1008": "a client that does not read its messages",
            "1001": "the server shuts down",
        },
    }


def mcp_channel() -> dict[str, Any]:
    """`x-mcp`: /mcp and its OAuth protected-resource metadata, both served by the MCP SDK."""
    return {
        "path": "/mcp",
        "description": "The MCP server (tool `et_analytics_dashboard`, resources, a prompt) over MCP "
        "Streamable HTTP: JSON-RPC 2.0 messages whose methods and results the MCP specification "
        "defines, not this document. Served by the MCP SDK, whose 401 is the RFC 6750 / RFC 9728 answer "
        '`{"error": "invalid_token", ...}`, not the envelope of the routes above.',
        "credential": "`Authorization: Bearer <API key or JWT>`, scope `read`",
        "protected_resource_metadata": "/.well-known/oauth-protected-resource/mcp",
    }
