"""What the web door can be tuned with: intervals, limits and the origins it trusts."""

from __future__ import annotations

import ipaddress
from typing import Final

from pydantic import BaseModel, ConfigDict, Field

PUSH_INTERVAL: Final = 30.0
"""Seconds between two `analytics_update` pushes (the published API says 30)."""
HEARTBEAT_INTERVAL: Final = 15.0
"""Seconds between two `heartbeat` messages on every WebSocket."""
MAX_MESSAGE_BYTES: Final = 4_096
"""Largest client WebSocket message; a bigger one closes the connection with 1009."""
QUEUE_MESSAGES: Final = 8
"""Messages a WebSocket client may have waiting; one more and it is closed as too slow."""
CHANGE_CHECK_INTERVAL: Final = 0.2
"""Seconds between two looks at the store's commit stamp for an import to push (any process's)."""
UPDATE_EVERY: Final = 1.0
"""Fewest seconds between two `analytics_update` messages to one client pushed because the data changed."""
SEND_TIMEOUT: Final = 10.0
"""Seconds one WebSocket send may take before the client is closed as too slow."""
RATE_PER_MINUTE: Final = 600.0
"""Requests (REST calls and WebSocket messages) per minute per API key, sustained."""
RATE_BURST: Final = 60
"""Requests per API key allowed at once before the sustained rate applies."""
MCP_SESSIONS: Final = 1_000
"""Open MCP-over-HTTP sessions at once, in all; one more gets 503."""
MCP_SESSIONS_PER_KEY: Final = 16
"""Open MCP-over-HTTP sessions per API key; one more gets 503."""
FAILURES_PER_ADDRESS: Final = 30
"""Refused credentials per minute from one client address before its attempts get 429."""
FAILURES_TOTAL: Final = 600
"""Refused credentials per minute from all addresses together (see `FailureThrottle`)."""
CONNECTIONS_PER_KEY: Final = 16
"""Open WebSockets per API key."""
LOOPBACK_HOSTS: Final = ("127.0.0.1", "localhost", "::1", "[::1]")
"""The loopback names an error message suggests (any address that `is_loopback` accepts is served)."""


def is_loopback(host: str) -> bool:
    """Whether `host` (a name or an address, IPv6 bracketed or not) is this machine's loopback: `localhost`,
    any of 127.0.0.0/8, `::1`, or an IPv4-mapped form of those (`::ffff:127.0.0.1`). Decided from the
    parsed address, never by comparing strings: `127.0.0.2` binds loopback as surely as `127.0.0.1`."""
    name = host.strip().removeprefix("[").removesuffix("]").lower()
    if name == "localhost":
        return True
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return False  # another name: it may resolve anywhere
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


INGEST_MAX_BYTES: Final = 64 << 20
"""Largest ingest body, decoded (after gzip)."""
INGEST_QUEUE: Final = 32
"""Ingest requests that may wait for the store's writer at once; one more gets 503 and Retry-After."""
INGEST_RATE_PER_MINUTE: Final = 600.0
"""Ingest requests per minute per API key, sustained (separate from the read limit)."""
INGEST_BURST: Final = 60
"""Ingest requests per API key allowed at once before the sustained rate applies."""


class WebOptions(BaseModel):
    """Settings of the HTTP and WebSocket door (`cymetica-mcp serve` flags set them)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    public_url: str = Field(
        default="http://127.0.0.1:8000",
        description="Base URL clients use; names the MCP resource (`<public_url>/mcp`).",
    )
    push_interval: float = Field(default=PUSH_INTERVAL, gt=0, description="Seconds between pushes.")
    heartbeat_interval: float = Field(
        default=HEARTBEAT_INTERVAL, gt=0, description="Seconds between heartbeats."
    )
    max_message_bytes: int = Field(default=MAX_MESSAGE_BYTES, gt=0, description="Largest client message.")
    queue_messages: int = Field(default=QUEUE_MESSAGES, gt=0, description="Per-client outgoing queue bound.")
    send_timeout: float = Field(default=SEND_TIMEOUT, gt=0, description="Longest single WebSocket send.")
    rate_per_minute: float = Field(default=RATE_PER_MINUTE, gt=0, description="Sustained requests per key.")
    rate_burst: int = Field(default=RATE_BURST, gt=0, description="Burst of requests per key.")
    connections_per_key: int = Field(default=CONNECTIONS_PER_KEY, gt=0, description="WebSockets per key.")
    failures_per_address: int = Field(
        default=FAILURES_PER_ADDRESS, gt=0, description="Refused credentials a minute per client address."
    )
    failures_total: int = Field(
        default=FAILURES_TOTAL, gt=0, description="Refused credentials a minute in all."
    )
    trusted_proxies: tuple[str, ...] = Field(
        default=(),
        description="Addresses of proxies whose X-Forwarded-For names the client (none: the peer is the client).",
    )
    allowed_origins: tuple[str, ...] = Field(
        default=(),
        description="Browser origins (scheme://host[:port]) allowed besides the server's own; CORS for them.",
    )
    loopback_only: bool = Field(
        default=True,
        description="Accept only loopback Host headers (DNS-rebinding protection when bound to localhost).",
    )
    mcp: bool = Field(default=True, description="Mount the MCP server at /mcp.")
    mcp_stateless: bool = Field(
        default=False,
        description="Answer every MCP POST on its own, with no session (serve --workers N > 1: any worker may "
        "take any request, and an SDK's session table lives in one process).",
    )
    mcp_sessions: int = Field(default=MCP_SESSIONS, gt=0, description="Open MCP sessions at once, in all.")
    mcp_sessions_per_key: int = Field(
        default=MCP_SESSIONS_PER_KEY, gt=0, description="Open MCP sessions per key."
    )
    ingest_max_bytes: int = Field(default=INGEST_MAX_BYTES, gt=0, description="Largest decoded ingest body.")
    ingest_queue: int = Field(default=INGEST_QUEUE, gt=0, description="Ingest requests waiting at once.")
    ingest_rate_per_minute: float = Field(
        default=INGEST_RATE_PER_MINUTE, gt=0, description="Sustained ingest requests per key."
    )
    ingest_burst: int = Field(default=INGEST_BURST, gt=0, description="Burst of ingest requests per key.")
    change_check_interval: float = Field(
        default=CHANGE_CHECK_INTERVAL, gt=0, description="Seconds between looks at the store for new imports."
    )
