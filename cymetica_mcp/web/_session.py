"""`/ws/analytics`: one WebSocket session, from the handshake to its close code.

    accept -> authenticate (?token= or Authorization: Bearer)
        refused                         -> close 4401, before any data
        over the rate or socket limit   -> close 4429
    connected -> analytics_update -> (live: pushes, heartbeats)
        set_preferences -> preferences_ack -> analytics_update
        ping -> pong;  anything else -> error (bad_message, ...), still open
        message over the size limit     -> close 1009
        queue full / send too slow      -> close 1008
        key revoked, token expired      -> close 4401
        server shutting down            -> close 1001

A reader (this task) and a writer (draining the client's bounded queue) run side by side; every
message, whatever produced it, goes through the queue, so messages keep their order.
"""

from __future__ import annotations

import contextlib
import logging

import anyio
from anyio.abc import TaskGroup
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from cymetica_mcp.errors import AnalyticsError
from cymetica_mcp.models import Scope
from cymetica_mcp.web import _messages as messages
from cymetica_mcp.web._door import bearer
from cymetica_mcp.web._hub import FORBIDDEN, GOING_AWAY, POLICY, TOO_BIG, TOO_MANY, UNAUTHORIZED, Client, Hub

log = logging.getLogger(__name__)

WS_PATH = "/ws/analytics"
MISSING_TOKEN = "missing token: connect to /ws/analytics?token=<JWT or API key>"  # noqa: S105
CLOSE_TIMEOUT = 1.0


def websocket_route(hub: Hub) -> WebSocketRoute:
    """The `/ws/analytics` route served by `hub`."""

    async def endpoint(websocket: WebSocket) -> None:
        await Session(hub, websocket).run()

    return WebSocketRoute(WS_PATH, endpoint)


class Session:
    """One client connection."""

    def __init__(self, hub: Hub, websocket: WebSocket) -> None:
        self.hub = hub
        self.door = hub.door
        self.websocket = websocket

    async def run(self) -> None:
        """Serve the connection until either side closes it."""
        try:
            await self.websocket.accept()
        except OSError:  # the client left during the handshake
            return
        if self.hub.shutting_down:
            await self._close(GOING_AWAY, "server shutting down")
            return
        try:
            credential = self.websocket.query_params.get("token") or bearer(
                self.websocket.headers.get("authorization")
            )
            if not credential:
                raise AnalyticsError("unauthorized", MISSING_TOKEN)
            principal = await self.door.principal(credential, self.door.address(self.websocket.scope))
        except AnalyticsError as exc:
            code = TOO_MANY if exc.code == "rate_limited" else UNAUTHORIZED
            log.info("WebSocket refused with %d: %s", code, exc.message)
            await self._close(code, exc.message)
            return
        try:
            principal.require(Scope.READ)
        except AnalyticsError as exc:
            log.info("WebSocket of key %d refused with %d: %s", principal.key_id, FORBIDDEN, exc.message)
            await self._close(FORBIDDEN, exc.message)
            return
        try:
            self.door.limiter.check(principal.key_id)
            client = self.hub.open(principal, credential)
        except AnalyticsError as exc:
            log.info("WebSocket of key %d refused with %d: %s", principal.key_id, TOO_MANY, exc.message)
            await self._close(TOO_MANY, exc.message)
            return
        log.info(
            "WebSocket %d opened for key %d (%d open)", client.id, principal.key_id, len(self.hub.clients)
        )
        try:
            with client.scope:
                async with anyio.create_task_group() as tasks:
                    tasks.start_soon(self._write, client)
                    await self._serve(client, tasks)
        finally:
            self.hub.forget(client)
            if client.closing is not None:
                with anyio.CancelScope(shield=True):
                    await self._close(*client.closing)
            log.info(
                "WebSocket %d closed%s (%d open)",
                client.id,
                f" with {client.closing[0]}: {client.closing[1]}" if client.closing else " by the client",
                len(self.hub.clients),
            )

    async def _serve(self, client: Client, tasks: TaskGroup) -> None:
        """Greet, send the first update, then answer messages until the client leaves."""
        options = self.door.options
        first = await self.hub.update_of(client.filter, client.period)
        client.offer(
            messages.connected(
                client.id, client.filter, client.period, options.push_interval, options.heartbeat_interval
            )
        )
        client.update(first)
        client.live = True
        while True:
            message = await self.websocket.receive()
            if message["type"] == "websocket.disconnect":
                break
            await self._answer(client, message.get("text"), message.get("bytes"))
        tasks.cancel_scope.cancel()

    async def _answer(self, client: Client, text: str | None, data: bytes | None) -> None:
        """Handle one received frame."""
        size = len(text.encode("utf-8")) if text is not None else len(data or b"")
        limit = self.door.options.max_message_bytes
        if size > limit:
            client.close(TOO_BIG, f"message too big: {size} bytes, the limit is {limit}")
            return
        try:
            self.door.limiter.check(client.principal.key_id)
            if text is None:
                raise AnalyticsError("bad_message", f"binary frames are not accepted; {messages.ACCEPTED}")
            request = messages.parse_client_message(text)
            if isinstance(request, messages.Ping):
                await client.reply(messages.pong(), self.door.options.send_timeout)
                return
            await self._recheck(client)
        except AnalyticsError as exc:
            await client.reply(messages.error(exc), self.door.options.send_timeout)
            return
        filter, period = request.filter or client.filter, request.period or client.period
        update = await self.hub.update_of(filter, period)
        while client.behind(update):  # an import was pushed to it meanwhile: answer with its figures
            update = await self.hub.update_of(filter, period)
        # Every push from now on follows the new preferences; none is queued until the ack and its
        # update are (sending yields, and a push queued meanwhile would come before the ack).
        client.filter, client.period, client.switching = filter, period, True
        try:
            await client.reply(messages.preferences_ack(filter, period), self.door.options.send_timeout)
            await client.reply(update.text, self.door.options.send_timeout, update.version)
        finally:
            client.switching = False
        client.showed(update)

    async def _recheck(self, client: Client) -> None:
        """Close the session with 4401 if its credential was revoked or has expired."""
        try:
            await self.door.principal(client.credential)
        except AnalyticsError as exc:
            client.close(UNAUTHORIZED, exc.message)
            raise

    async def _write(self, client: Client) -> None:
        """Send queued messages in order, but never an update older than one sent before it (the client
        has newer figures already); close the session if one send takes too long."""
        timeout = self.door.options.send_timeout
        sent: int | None = None
        try:
            async for text, version in client.inbox:
                if version is not None:
                    if sent is not None and version < sent:
                        continue
                    sent = version
                with anyio.fail_after(timeout):
                    await self.websocket.send_text(text)
        except TimeoutError:
            client.close(POLICY, f"too slow: a message could not be delivered within {timeout:g} s")
        except (WebSocketDisconnect, anyio.ClosedResourceError):
            client.scope.cancel()

    async def _close(self, code: int, reason: str) -> None:
        """Send a close frame if the connection is still open; give up after a short wait."""
        if self.websocket.application_state != WebSocketState.CONNECTED:
            return
        with anyio.move_on_after(CLOSE_TIMEOUT):
            with contextlib.suppress(WebSocketDisconnect, RuntimeError):
                await self.websocket.close(code, messages.close_reason(reason))
