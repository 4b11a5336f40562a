"""Where the MCP SDK's own handling falls short of the protocol, handlers of ours on its low-level server.

- `resources/subscribe` and `resources/unsubscribe` (2025-era sessions): MCPServer has no hook for
  them, so the low-level server takes ours.
- `subscriptions/listen` (2026-07-28): the SDK serves it but checks no credential; ours checks the
  caller, then serves the stream with the SDK's `ListenHandler`.
- `tools/call` of an unknown tool: the SDK answers with a bare text result; the spec asks for a
  protocol error, -32602, and ours names the tools there are.
- `prompts/get` of an unknown prompt or with an argument the prompt does not take: the SDK raises a bare
  `ValueError`, which 2026-07-28 requests get as "Internal server error" (and an ERROR in the log); the
  spec asks for -32602, and ours names the prompts, or the arguments, there are.
- Sessions over HTTP: the SDK limits them in total only; `limit_sessions_per_key` adds a limit per key.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from mcp.server.context import ServerRequestContext
from mcp.server.mcpserver import MCPServer
from mcp.server.subscriptions import ListenHandler, SubscriptionBus
from mcp.shared.exceptions import MCPError
from mcp.types import (
    INVALID_PARAMS,
    CallToolRequestParams,
    GetPromptRequestParams,
    SubscribeRequestParams,
    SubscriptionsListenRequestParams,
    SubscriptionsListenResult,
    UnsubscribeRequestParams,
)

from cymetica_mcp.mcp_server._resources import DashboardUpdates

log = logging.getLogger(__name__)


def handle_protocol(
    server: MCPServer[Any],
    updates: DashboardUpdates,
    authorize: Callable[[], Awaitable[None]],
    bus: SubscriptionBus,
    main_tool: str,
) -> None:
    """Register our handlers for subscriptions, listening and unknown tools on `server`."""
    lowlevel = server._lowlevel_server
    lowlevel.add_request_handler("resources/subscribe", SubscribeRequestParams, updates.subscribe)
    lowlevel.add_request_handler("resources/unsubscribe", UnsubscribeRequestParams, updates.unsubscribe)
    listen = ListenHandler(bus)

    async def authorized_listen(
        ctx: ServerRequestContext[Any], params: SubscriptionsListenRequestParams
    ) -> SubscriptionsListenResult:
        await authorize()
        return await listen(ctx, params)

    lowlevel.add_request_handler("subscriptions/listen", SubscriptionsListenRequestParams, authorized_listen)
    entry = lowlevel.get_request_handler("tools/call")
    assert entry is not None, "MCPServer registers tools/call"
    call = entry.handler

    async def known_tools_only(ctx: ServerRequestContext[Any], params: CallToolRequestParams) -> Any:
        if params.name != main_tool:  # ours is known: only another name costs a look at the list
            names = [tool.name for tool in await server.list_tools()]
            if params.name not in names:
                known = ", ".join(names)
                name = params.name if len(params.name) <= 40 else params.name[:37] + "..."
                raise MCPError(code=INVALID_PARAMS, message=f"unknown tool {name!r}; the tools are: {known}")
        return await call(ctx, params)

    lowlevel.add_request_handler("tools/call", CallToolRequestParams, known_tools_only)
    _known_prompts_only(server)


def _known_prompts_only(server: MCPServer[Any]) -> None:
    """Refuse `prompts/get` of a prompt or an argument that does not exist with -32602, before the SDK."""
    lowlevel = server._lowlevel_server
    entry = lowlevel.get_request_handler("prompts/get")
    assert entry is not None, "MCPServer registers prompts/get"
    get = entry.handler

    async def checked(ctx: ServerRequestContext[Any], params: GetPromptRequestParams) -> Any:
        prompts = {prompt.name: prompt for prompt in await server.list_prompts()}
        prompt = prompts.get(params.name)
        if prompt is None:
            known = ", ".join(prompts)
            raise MCPError(
                code=INVALID_PARAMS, message=f"unknown prompt {params.name!r}; the prompts are: {known}"
            )
        accepted = [argument.name for argument in prompt.arguments or []]
        for name in params.arguments or {}:
            if name not in accepted:
                raise MCPError(
                    code=INVALID_PARAMS,
                    message=f"unknown argument {name!r} of prompt {prompt.name}; "
                    f"accepted: {', '.join(accepted) or 'none'}",
                )
        return await get(ctx, params)

    lowlevel.add_request_handler("prompts/get", GetPromptRequestParams, checked)


def limit_sessions_per_key(server: MCPServer[Any], per_key: int) -> None:
    """Refuse a new MCP-over-HTTP session (503, as the SDK refuses one past its total) to a key that
    holds `per_key` open ones, so that one caller cannot fill the session table and lock others out.

    The SDK limits sessions only in total; it decides admission in `_admit_session` and records each
    session's owner (its token's client id, `key-<id>`), which this wraps and counts (pinned to SDK 2.x:
    tests/web/test_web_mcp.py fails if that changes)."""
    manager = server.session_manager
    admit = manager._admit_session
    owners = manager._session_owners

    def admit_within_quota(requestor: Any) -> Any:
        if requestor is not None:
            held = sum(1 for owner in owners.values() if owner["client_id"] == requestor["client_id"])
            if held >= per_key:
                log.warning(
                    "refusing an MCP session to %s: it holds %d open, the limit per key",
                    requestor["client_id"],
                    held,
                )
                return None
        return admit(requestor)

    manager._admit_session = admit_within_quota  # type: ignore[method-assign]
