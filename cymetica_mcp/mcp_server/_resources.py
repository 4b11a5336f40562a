"""The dashboards as MCP resources, and the notices their subscribers get when new trades arrive.

`analytics://dashboard/{filter}/{period}` names one dashboard. A watcher looks at the store's commit
stamp and reads its `data_version` (one indexed row) when the stamp moved; when an import committed by
any process (any replica on PostgreSQL) moves it, every dashboard may have changed, so subscribers are
told `notifications/resources/updated` for each URI:

- 2025-era sessions subscribe with `resources/subscribe` (handled here, per connection);
- 2026-07-28 sessions listen with `subscriptions/listen` (the SDK's bus; we publish to it).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, Final

import anyio
import anyio.to_thread
from mcp.server.context import ServerRequestContext
from mcp.server.session import ServerSession
from mcp.server.subscriptions import SubscriptionBus
from mcp.shared.exceptions import MCPError
from mcp.shared.subscriptions import ResourceUpdated
from mcp.types import INVALID_PARAMS, EmptyResult, SubscribeRequestParams, UnsubscribeRequestParams

from cymetica_mcp.errors import AnalyticsError
from cymetica_mcp.models import Filter, Period
from cymetica_mcp.store import CommitStamp, Stamp

log = logging.getLogger(__name__)

SCHEME: Final = "analytics://dashboard/"
URI_TEMPLATE: Final = SCHEME + "{filter}/{period}"
POLL_SECONDS: Final = 0.2
"""Seconds between two looks at the store's commit stamp (and, when it moved or is missing, at its
data version): subscribers hear of a commit by any process within about this long."""


def dashboard_uri(filter: Filter, period: Period) -> str:
    """The resource URI of one dashboard: analytics://dashboard/agents/7d."""
    return f"{SCHEME}{filter.value}/{period.value}"


ALL_URIS: Final = tuple(dashboard_uri(f, p) for f in Filter for p in Period)


def parse_dashboard_uri(uri: str) -> tuple[Filter, Period]:
    """The (filter, period) a dashboard URI names, or the contract's error saying what is accepted."""
    parts = uri.removeprefix(SCHEME).split("/") if uri.startswith(SCHEME) else []
    if len(parts) != 2:
        raise AnalyticsError(
            "invalid_argument",
            f"unknown resource {uri!r}; accepted: {URI_TEMPLATE} with filter all, humans or agents "
            "and period 24h, 7d or 30d",
        )
    return Filter.parse(parts[0]), Period.parse(parts[1])


def _connection_of(session: ServerSession) -> Any:
    """The client connection behind a request's session (a ServerSession is built per request).

    The SDK (2.3) exposes no public accessor; without one, each session stands for its connection.
    """
    return getattr(session, "_connection", session)


class DashboardUpdates:
    """Subscriptions to dashboard resources and the watcher that notifies them after imports."""

    def __init__(
        self,
        data_version: Callable[[], int],
        bus: SubscriptionBus,
        *,
        interval: float = POLL_SECONDS,
        authorize: Callable[[], Awaitable[None]] | None = None,
        stamp: CommitStamp | None = None,
    ) -> None:
        self._data_version = data_version
        self._stamp = stamp
        self._bus = bus
        self.interval = interval
        self._authorize = authorize
        self._subscribers: dict[object, tuple[ServerSession, set[str]]] = {}

    async def subscribe(self, ctx: ServerRequestContext[Any], params: SubscribeRequestParams) -> EmptyResult:
        """`resources/subscribe` (2025-era sessions): remember this connection wants `uri`, once
        `authorize` accepts the caller (as a read of the resource would)."""
        if self._authorize is not None:
            await self._authorize()
        uri = _checked(params.uri)
        connection = _connection_of(ctx.session)
        if connection not in self._subscribers:
            self._subscribers[connection] = (ctx.session, set())
            teardown = getattr(connection, "exit_stack", None)
            if teardown is not None:  # forget the subscriptions when the connection closes
                teardown.callback(self._subscribers.pop, connection, None)
        self._subscribers[connection][1].add(uri)
        log.debug("subscribed to %s (%d connections)", uri, len(self._subscribers))
        return EmptyResult()

    async def unsubscribe(
        self, ctx: ServerRequestContext[Any], params: UnsubscribeRequestParams
    ) -> EmptyResult:
        """`resources/unsubscribe`: forget it (unknown subscriptions are ignored)."""
        entry = self._subscribers.get(_connection_of(ctx.session))
        if entry is not None:
            entry[1].discard(params.uri)
        return EmptyResult()

    async def watch(self) -> None:
        """Look at the store until cancelled; notify subscribers whenever its data version moves.

        With a commit stamp, the data version is read only when the stamp moved (a commit by any
        process, any replica) or while there is none (PostgreSQL's notifications lost: the fallback
        poll); without one, on every look. A store that cannot be read is said once, then retried."""
        last: int | None = None
        seen: Stamp | None = None
        failing = False
        log.debug("watching the store for imports (every %.2f s)", self.interval)
        while True:
            stamp = self._stamp.read() if self._stamp is not None else None
            if stamp is None or stamp != seen:
                try:
                    version = await anyio.to_thread.run_sync(self._data_version)
                except Exception as exc:  # a busy or unreachable store: try again next look
                    if not failing:
                        log.warning("could not read the store's data version: %s", exc)
                    failing = True
                else:
                    failing, seen = False, stamp
                    if last is not None and version != last:
                        log.debug("data version %d -> %d: notifying dashboard subscribers", last, version)
                        await self.notify()
                    last = version
            await anyio.sleep(self.interval)

    async def notify(self) -> None:
        """Tell every subscriber, of either era, that every dashboard may have changed."""
        for uri in ALL_URIS:
            await self._bus.publish(ResourceUpdated(uri=uri))
        for key, (session, uris) in list(self._subscribers.items()):
            try:
                for uri in sorted(uris):
                    await session.send_resource_updated(uri)
            except Exception as exc:  # the connection is gone: drop its subscriptions
                log.debug("dropping subscriptions of a closed connection: %r", exc)
                self._subscribers.pop(key, None)


def _checked(uri: str) -> str:
    """The URI if it names a dashboard, else an INVALID_PARAMS protocol error carrying the envelope."""
    try:
        filter, period = parse_dashboard_uri(uri)
    except AnalyticsError as exc:
        raise MCPError(code=INVALID_PARAMS, message=exc.message, data=exc.to_dict()) from None
    return dashboard_uri(filter, period)
