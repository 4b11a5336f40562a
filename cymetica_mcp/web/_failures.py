"""Refused credentials on `/mcp` count against the same per-address budget as on REST and WebSocket.

The MCP SDK checks the Bearer token itself (through `AnalyticsTokenVerifier`, which never sees the
client's address), so the budget is kept around it: before the request reaches the SDK, an address
past its budget is answered 429 with `Retry-After` (no credential check, no store query); after it, a
401 from the SDK counts as one refused credential for that address. A credential the door accepted
under the store's current commit stamp passes without a look at the budget, as on the other routes.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cymetica_mcp.errors import AnalyticsError
from cymetica_mcp.web._door import Door, bearer, bearer_sent
from cymetica_mcp.web._envelope import error_response


class FailureGuard:
    """ASGI middleware for the MCP endpoint: the door's failed-credential throttle, and the error
    envelope for a credential the store could not check (`unavailable`, 503: not counted as refused)."""

    def __init__(self, app: ASGIApp, door: Door) -> None:
        self.app = app
        self.door = door

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Refuse a throttled address; count the SDK's 401s against the caller's address."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        address = self.door.address(scope)
        held = False
        if not self._remembered(scope):
            try:
                held = self.door.failures.check(address)
            except AnalyticsError as exc:
                await error_response(exc)(scope, receive, send)
                return
        failed = sent = False
        held_back: list[Message] = []  # a 500 the SDK's own error middleware sent for an exception

        async def counting(message: Message) -> None:
            nonlocal failed, sent
            if message["type"] == "http.response.start" and message["status"] == 401:
                self.door.failures.failed(address, held)
                failed = True
            if held_back or (message["type"] == "http.response.start" and message["status"] == 500):
                held_back.append(message)  # sent once it is known not to be the store's `unavailable`
                return
            sent = True
            await send(message)

        try:
            await self.app(scope, receive, counting)
        except AnalyticsError as exc:
            if sent:
                raise
            await error_response(exc)(scope, receive, send)  # the credential could not be checked: 503
        except BaseException:
            for message in held_back:
                await send(message)
            raise
        else:
            for message in held_back:
                await send(message)
        finally:
            if held and not failed:
                self.door.failures.release(address)

    def _remembered(self, scope: Scope) -> bool:
        """Whether the request's Bearer credential was accepted under the current commit stamp."""
        raw = next((value for name, value in scope.get("headers", ()) if name == b"authorization"), None)
        header = None if raw is None else raw.decode("latin-1")
        if not bearer_sent(header):
            return False
        return self.door.remembered(bearer(header), self.door.watch.stamp()) is not None
