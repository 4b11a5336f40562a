"""The MCP server: the `et_analytics_dashboard` tool, the dashboards as resources, a briefing prompt.

`create_server` builds one `MCPServer` for any transport. Over stdio (`cymetica-mcp mcp`) the caller's
credential is the `CYMETICA_API_KEY` value; mounted over Streamable HTTP (pass `auth=`, e.g.
`http_auth_settings(url)`) it is the `Authorization: Bearer` token. Every call is authenticated, its
arguments validated by our own code (so every refusal is the contract's envelope), and the dashboard
computed by the engine on a worker thread, or, when nothing was committed to the store since the key
was accepted and the dashboard computed, answered on the event loop from memory (`mcp_recent`).
Logs go to the `cymetica_mcp` loggers, never to stdout.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Annotated, Any, Final

import anyio
import anyio.to_thread
from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.auth.provider import AccessToken
from mcp.server.auth.settings import AuthSettings
from mcp.server.mcpserver import MCPServer, Message, UserMessage
from mcp.server.mcpserver.resources import FunctionResource
from mcp.server.mcpserver.tools import Tool
from mcp.server.subscriptions import InMemorySubscriptionBus
from mcp.shared.exceptions import MCPError
from mcp.types import (
    INTERNAL_ERROR,
    INVALID_PARAMS,
    CallToolResult,
    EmbeddedResource,
    TextResourceContents,
    ToolAnnotations,
)
from pydantic import Field

from cymetica_mcp import __version__
from cymetica_mcp.auth import Authenticator, Principal
from cymetica_mcp.engine import Engine, Result
from cymetica_mcp.errors import AnalyticsError
from cymetica_mcp.mcp_server._caller import AnalyticsTokenVerifier, Credentials
from cymetica_mcp.mcp_server._completion import Completer
from cymetica_mcp.mcp_server._envelope import (
    INPUT_SCHEMA,
    OUTPUT_SCHEMA,
    Query,
    Success,
    SuccessResults,
    failure_result,
    parse_arguments,
)
from cymetica_mcp.mcp_server._protocol import handle_protocol
from cymetica_mcp.mcp_server._recent import Recent
from cymetica_mcp.mcp_server._resources import (
    POLL_SECONDS,
    URI_TEMPLATE,
    DashboardUpdates,
    dashboard_uri,
)
from cymetica_mcp.mcp_server._view import icons, tool_meta, view_extension
from cymetica_mcp.models import Filter, Period
from cymetica_mcp.windows import iso

log = logging.getLogger(__name__)

SERVER_NAME: Final = "cymetica-analytics"
TOOL_NAME: Final = "et_analytics_dashboard"
TOOL_TITLE: Final = "Trading analytics dashboard"
PROMPT_NAME: Final = "analytics_briefing"
POPULATIONS: Final = {
    Filter.ALL: "all users",
    Filter.HUMANS: "human traders",
    Filter.AGENTS: "trading agents",
}
UNAUTHORIZED_RPC_CODE: Final = -32001
FORBIDDEN_RPC_CODE: Final = -32003
"""A resource or prompt asked with a key that lacks the `read` scope (a server-defined JSON-RPC code)."""
"""JSON-RPC code of an `unauthorized` resource read or prompt (server-defined range)."""

TOOL_DESCRIPTION: Final = """\
Exact analytics of the trading platform for one population and time window: five headline \
figures with their change, volume and active-user series, and the ROI distribution of users.

Arguments: filter = whose trades count: all (default), humans, or agents (trading bots). \
period = window length: 24h (24 hourly buckets, default), 7d (28 six-hour buckets), 30d (30 daily \
buckets). as_of = optional ISO 8601 UTC instant such as 2026-03-20T12:00:00Z, not in the future, for \
reproducible questions about a past moment; omit it for now.

Window: buckets are aligned to UTC multiples of the bucket size; the window W runs from the start of \
the oldest bucket to as_of, both included, so its last bucket is partial. `change` compares each figure \
with the same figure over W shifted back by exactly one period (same span of the day, one period \
earlier): a percent change with 1 decimal, null when the earlier figure is 0 or undefined.

Figures (data.metrics, each {label, value, change, suffix}): active_users = users with at least one \
trade in W (count). trading_volume = total traded notional in W (USDC, 2 decimals). retention_rate = \
percent of the users active in the previous window who traded again in W (%, 1 decimal). avg_capital = \
mean capital of the active users (USDC, 2 decimals). avg_roi = mean over active users with capital > 0 \
of 100 * their P&L in W / their capital (%, 1 decimal). An undefined figure shows as 0.0.
Series (oldest first, timestamps are bucket starts): volume_over_time has total_volume, bot_volume, \
human_volume (USDC) and trade_count; user_activity has distinct total_users, bot_users, human_users. \
profitability_distribution counts the active users with capital by ROI range, from "< -50%" to ">= 50%".

Returns {success: true, data: <dashboard>, description: <one-line summary>, meta: {as_of, window, \
previous_window, bucket_seconds, buckets, data_version, computed_at, cached}}: quote meta.as_of when \
citing figures. Failures set isError and return {success: false, error: {code, message}} with code \
invalid_filter, invalid_period, invalid_as_of, invalid_argument, unauthorized or internal; the message \
says what is accepted. Read-only: the same arguments on the same data give the same figures."""

INSTRUCTIONS: Final = (
    "Exact analytics of a trading platform's users (humans and trading agents). Call "
    f"{TOOL_NAME} with filter, period and optional as_of for figures; read or subscribe to "
    f"{URI_TEMPLATE} to follow a dashboard as new trades arrive; the {PROMPT_NAME} prompt explains one."
)

INTERNAL_MESSAGE: Final = (
    "internal error: the dashboard could not be computed; the server's log has the details"
)


class RawArgumentsTool(Tool):
    """A tool whose function gets the raw arguments and validates them itself, behind a published schema."""

    async def run(self, arguments: dict[str, Any], context: Any, convert_result: bool = False) -> Any:
        """Call the function with the arguments exactly as sent (the SDK's own validation is skipped)."""
        result = await self.fn(arguments)
        return self.fn_metadata.convert_result(result) if convert_result else result


class Dashboards:
    """Serves dashboards to MCP callers: authenticate, validate, compute off the event loop, wrap.

    A call the store has not changed since (same key, same dashboard, no commit by anyone since they
    were checked or computed) is answered on the event loop from memory (see `mcp_recent`); any other
    call authenticates and computes on a worker thread.
    """

    def __init__(
        self, engine: Engine, credentials: Credentials, admit: Callable[[Principal], None] | None = None
    ) -> None:
        self.engine = engine
        self.credentials = credentials
        self.admit = admit
        self.encoded = SuccessResults()
        self.stamp = engine.store.stamp()
        self.recent = Recent(engine.max_age)

    def close(self) -> None:
        """Release the stamp's SQLite connection (reopened if called again)."""
        self.stamp.close()

    async def call_tool(self, arguments: dict[str, Any]) -> Annotated[CallToolResult, Success]:
        """`et_analytics_dashboard`: the success envelope, or an `isError` failure envelope."""
        started = time.perf_counter()
        token = get_access_token()  # a context variable of this request's task
        credential = self.credentials.credential(token)
        stamp = self.stamp.read()  # before anything is checked: what is learnt below is valid under it
        try:
            known = self.recent.principal(credential, stamp) if credential else None
            served: tuple[Principal, Query, Result] | None = None
            if known is not None:
                if self.admit is not None:
                    self.admit(known)
                query = parse_arguments(arguments, now=self.engine.clock())
                remembered = self.recent.result(query, stamp)
                if remembered is not None:
                    served = (known, query, remembered)
            if served is None:
                # One worker-thread hop for everything synchronous (SQLite, the engine).
                principal, query, result, born = await anyio.to_thread.run_sync(
                    self._serve, arguments, token, known
                )
                if credential:
                    self.recent.accept(credential, stamp, principal)
                self.recent.computed(query, stamp, result, born)
                served = (principal, query, result)
            principal, query, result = served
            answer = self.encoded.get(result).result
        except AnalyticsError as exc:
            log.info("%s refused: %s", TOOL_NAME, exc.code)
            return failure_result(exc)
        except Exception:
            log.exception("%s failed", TOOL_NAME)
            return failure_result(AnalyticsError("internal", INTERNAL_MESSAGE))
        # A computation is news (INFO); a call served from the cache is routine (DEBUG, as REST logs
        # its dashboard requests): a log record (~20 us) costs as much as a cached call's own work.
        level = logging.DEBUG if result.cached else logging.INFO
        if log.isEnabledFor(level):  # the arguments alone (a strftime) cost a fast call a sixth
            log.log(
                level,
                "%s %s/%s as of %s for key %d: %.1f ms%s",
                TOOL_NAME,
                query.filter.value,
                query.period.value,
                iso(result.now),
                principal.key_id,
                (time.perf_counter() - started) * 1000,
                " (cached)" if result.cached else "",
            )
        return answer

    def _serve(
        self, arguments: dict[str, Any], token: AccessToken | None, principal: Principal | None
    ) -> tuple[Principal, Query, Result, float]:
        """On a worker thread: authenticate (before anything else) and admit unless `principal` was
        already, validate, compute; with the engine's clock before it was asked (see `Recent.computed`)."""
        if principal is None:
            principal = self.credentials.check(token)
            if self.admit is not None:
                self.admit(principal)  # e.g. the web door's per-key rate limit
        query = parse_arguments(arguments, now=self.engine.clock())
        born = time.monotonic()
        return principal, query, self.engine.result(query.filter, query.period, query.as_of), born

    async def read(self, filter: str, period: str) -> str:
        """Resource `analytics://dashboard/{filter}/{period}`: the tool's success envelope as JSON.

        Failures are protocol errors whose `data` is the failure envelope (see `_protocol_error`).
        """
        await self.authorize()
        try:
            result = await self._compute(Filter.parse(filter), Period.parse(period), None)
            return self.encoded.get(result).text
        except AnalyticsError as exc:
            raise _protocol_error(exc) from None
        except Exception:
            log.exception("reading dashboard %s/%s failed", filter, period)
            raise _protocol_error(AnalyticsError("internal", INTERNAL_MESSAGE)) from None

    async def authorize(self) -> None:
        """Accept the caller of the current request, or raise the `unauthorized` protocol error (for
        requests other than the tool, whose refusals are results)."""
        try:
            await self.credentials.principal()
        except AnalyticsError as exc:
            raise _protocol_error(exc) from None
        except Exception:
            log.exception("checking a credential failed")
            raise _protocol_error(AnalyticsError("internal", INTERNAL_MESSAGE)) from None

    async def briefing(
        self,
        filter: Annotated[str, Field(description="all (default), humans or agents")] = "all",
        period: Annotated[str, Field(description="24h (default), 7d or 30d")] = "24h",
    ) -> list[Message]:
        """Prompt `analytics_briefing`: the current dashboard and a request to explain it."""
        body = await self.read(filter, period)  # authenticates and validates first
        uri = dashboard_uri(Filter(filter), Period(period))
        population = POPULATIONS[Filter(filter)]
        return [
            UserMessage(
                EmbeddedResource(
                    resource=TextResourceContents(uri=uri, mime_type="application/json", text=body)
                )
            ),
            UserMessage(
                f"Above is the trading analytics dashboard for {population} over the last {period} "
                f"({uri}, as returned by the {TOOL_NAME} tool). Brief me on it in a few short paragraphs: "
                "the headline figures with their units, what each change compares with (the same window "
                "one period earlier), notable patterns in the volume and user series (bot versus human), "
                "and what the ROI distribution says. Quote figures exactly as given, say when a change is "
                "null and why, and cite the as_of instant and data_version from meta."
            ),
        ]

    async def _compute(self, filter: Filter, period: Period, as_of: int | None) -> Result:
        return await anyio.to_thread.run_sync(self.engine.result, filter, period, as_of)


def _protocol_error(error: AnalyticsError) -> MCPError:
    """A JSON-RPC error for a resource or prompt: code by kind, the failure envelope as `data`."""
    codes = {
        "unauthorized": UNAUTHORIZED_RPC_CODE,
        "forbidden": FORBIDDEN_RPC_CODE,
        "internal": INTERNAL_ERROR,
    }
    code = codes.get(error.code, INVALID_PARAMS)
    return MCPError(code=code, message=f"{error.code}: {error.message}", data=error.to_dict())


def _static_reader(dashboards: Dashboards, filter: Filter, period: Period) -> Callable[[], Awaitable[str]]:
    async def read() -> str:
        return await dashboards.read(filter.value, period.value)

    return read


def _lifespan(
    updates: DashboardUpdates, dashboards: Dashboards
) -> Callable[[MCPServer[dict[str, Any]]], AbstractAsyncContextManager[dict[str, Any]]]:
    @asynccontextmanager
    async def lifespan(server: MCPServer[dict[str, Any]]) -> AsyncIterator[dict[str, Any]]:
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(updates.watch)
            try:
                yield {}
            finally:
                tasks.cancel_scope.cancel()
                dashboards.close()

    return lifespan


def create_server(
    engine: Engine,
    authenticator: Authenticator,
    *,
    api_key: str | None = None,
    auth: AuthSettings | None = None,
    poll_seconds: float = POLL_SECONDS,
    admit: Callable[[Principal], None] | None = None,
) -> MCPServer[dict[str, Any]]:
    """The MCP server over `engine`; `api_key` is the stdio credential, `auth` enables HTTP Bearer auth."""
    dashboards = Dashboards(engine, Credentials(authenticator, api_key), admit)
    bus = InMemorySubscriptionBus()
    updates = DashboardUpdates(
        engine.data_version,
        bus,
        interval=poll_seconds,
        authorize=dashboards.authorize,
        stamp=dashboards.stamp,
    )
    tool = RawArgumentsTool.from_function(
        dashboards.call_tool,
        name=TOOL_NAME,
        title=TOOL_TITLE,
        description=TOOL_DESCRIPTION,
        annotations=ToolAnnotations(
            title=TOOL_TITLE, read_only_hint=True, idempotent_hint=True, open_world_hint=False
        ),
        icons=icons(),
        meta=tool_meta(),
    )
    # Publish our own schemas: the enums (validated by us, see RawArgumentsTool) and success-or-failure.
    # Without an output model the SDK does not re-validate every result against `Success` (75 us a
    # call): our envelopes are dumps of those very models, and the tests validate real results,
    # successes and failures, against the published schema.
    tool = tool.model_copy(
        update={
            "parameters": copy.deepcopy(INPUT_SCHEMA),
            "fn_metadata": tool.fn_metadata.model_copy(
                update={"output_schema": copy.deepcopy(OUTPUT_SCHEMA), "output_model": None}
            ),
        }
    )
    verifier = None
    if auth is not None:
        resource = str(auth.resource_server_url) if auth.resource_server_url else None
        verifier = AnalyticsTokenVerifier(authenticator, resource=resource)
    server: MCPServer[dict[str, Any]] = MCPServer(
        SERVER_NAME,
        title="Cymetica trading analytics",
        instructions=INSTRUCTIONS,
        version=__version__,
        token_verifier=verifier,
        auth=auth,
        tools=[tool],
        subscriptions=bus,
        lifespan=_lifespan(updates, dashboards),
        icons=icons(),
        extensions=[view_extension()],
    )
    server.resource(
        URI_TEMPLATE,
        name="dashboard",
        title="Analytics dashboard",
        description="The et_analytics_dashboard success envelope for a filter (all, humans, agents) and "
        "period (24h, 7d, 30d), as of now; subscribe to be told when new trades change it.",
        mime_type="application/json",
    )(dashboards.read)
    for f in Filter:
        for p in Period:
            server.add_resource(
                FunctionResource.from_function(
                    _static_reader(dashboards, f, p),
                    uri=dashboard_uri(f, p),
                    name=f"dashboard-{f.value}-{p.value}",
                    title=f"Analytics dashboard: {f.value}, last {p.value}",
                    description=f"The {TOOL_NAME} result for filter={f.value}, period={p.value}, as of now.",
                    mime_type="application/json",
                )
            )
    server.prompt(
        name=PROMPT_NAME,
        title="Analytics briefing",
        description="Explain the current dashboard for a filter (all, humans, agents) and period (24h, 7d, 30d).",
    )(dashboards.briefing)
    server.completion()(Completer(PROMPT_NAME, URI_TEMPLATE))  # type: ignore[no-untyped-call]  # SDK 2.3
    handle_protocol(server, updates, dashboards.authorize, bus, TOOL_NAME)
    return server
