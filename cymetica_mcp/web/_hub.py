"""The WebSocket hub: who is connected, with which preferences, and the clocks that feed them.

Every push tick groups the live clients by (filter, period), checks each client's credential again
(a key revoked by any process closes its sockets with 4401), computes each group's dashboard once,
serialises it once and offers the same text to every client of the group. Offering never waits: each
client has a bounded queue drained by its own writer, and a client whose queue is full is closed as
too slow, so one slow reader never delays the others.

Between ticks, the hub looks at the store's commit stamp every `change_check_interval`: once an import
(from any process) has moved the data version, each client whose dashboard it changed gets an update
at once, or as soon as `UPDATE_EVERY` has passed since its last one.

Data versions never go back on a connection: an update computed before an import that another update
has already shown to the client is not sent (`Client.behind`), and the writer drops any that would still
follow a newer one on the wire.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Final

import anyio
import anyio.to_thread
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from cymetica_mcp.auth import Authenticator, Principal
from cymetica_mcp.errors import AnalyticsError
from cymetica_mcp.models import Filter, Period
from cymetica_mcp.store import Stamp
from cymetica_mcp.web import _messages as messages
from cymetica_mcp.web._door import Door
from cymetica_mcp.web._envelope import dumps
from cymetica_mcp.web._options import UPDATE_EVERY

log = logging.getLogger(__name__)

UNAUTHORIZED: Final = 4401
FORBIDDEN: Final = 4403
TOO_MANY: Final = 4429
GOING_AWAY: Final = 1001
POLICY: Final = 1008
TOO_BIG: Final = 1009
INTERNAL: Final = 1011

Outgoing = tuple[str, int | None]
"""A message queued for a client, with its data version when it is an `analytics_update`."""


@dataclass(eq=False)
class Client:
    """One WebSocket session: its caller, preferences, outgoing queue and how it is to be closed."""

    id: int
    principal: Principal
    credential: str
    filter: Filter
    period: Period
    outbox: MemoryObjectSendStream[Outgoing]
    inbox: MemoryObjectReceiveStream[Outgoing]
    scope: anyio.CancelScope = field(default_factory=anyio.CancelScope)
    live: bool = False
    closing: tuple[int, str] | None = None
    shown: int | None = None
    """The fingerprint of the figures of the last update it was sent (`Update.figures`)."""
    updated_at: float = -UPDATE_EVERY
    """When (anyio's clock) it was last sent an update."""
    changed_at: float = -UPDATE_EVERY
    """When (anyio's clock) it was last offered an update because the data changed (at most one such
    push per UPDATE_EVERY; the periodic push, the first update and an ack's do not hold the next back)."""
    switching: bool = False
    """Between a `set_preferences` and the queueing of its ack and update: pushes leave the client alone
    (it gets its update with the ack; a push queued in between would come before the ack)."""
    version: int | None = None
    """The newest data version of an update queued for it."""

    @property
    def preferences(self) -> tuple[Filter, Period]:
        """The (filter, period) this client follows."""
        return self.filter, self.period

    def offer(self, text: str, version: int | None = None) -> bool:
        """Queue `text` (an update of data `version`) without waiting; False (and the client closed)
        when its queue is full."""
        if self.closing is not None:
            return False
        try:
            self.outbox.send_nowait((text, version))
        except anyio.WouldBlock:
            waiting = self.outbox.statistics().current_buffer_used
            self.close(POLICY, f"too slow: {waiting} messages were waiting unread")
            return False
        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
            return False
        return True

    async def reply(self, text: str, patience: float, version: int | None = None) -> None:
        """Queue an answer to the client's own message, waiting up to `patience` s for room: a client that
        writes faster than it reads is slowed down (its next message is read once this one is queued),
        never dropped; one that stops reading is closed as too slow."""
        if self.closing is not None:
            return
        try:
            with anyio.fail_after(patience):
                await self.outbox.send((text, version))
        except TimeoutError:
            self.close(POLICY, f"too slow: a reply waited {patience:g} s for the client to read")
        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
            pass

    def update(self, update: Update) -> bool:
        """Queue an `analytics_update` (see `offer`), remembering what it showed and when."""
        self.showed(update)
        return self.offer(update.text, update.version)

    def showed(self, update: Update) -> None:
        """Remember that `update` was queued for this client, and when."""
        self.shown, self.updated_at = update.figures, anyio.current_time()
        if update.version is not None and (self.version is None or update.version > self.version):
            self.version = update.version

    def behind(self, update: Update) -> bool:
        """Whether `update` is of an older data version than one already queued for this client (it was
        computed before an import whose figures the client has been sent meanwhile)."""
        return update.version is not None and self.version is not None and update.version < self.version

    def close(self, code: int, reason: str) -> None:
        """Ask the session to close with `code` (the first request wins) and stop its tasks."""
        if self.closing is None:
            self.closing = (code, messages.close_reason(reason))
        self.scope.cancel()


@dataclass(frozen=True, slots=True)
class Update:
    """An `analytics_update` message, a fingerprint of its figures (the dashboard but its instant) and
    its data version (both None for an error message)."""

    text: str
    figures: int | None
    version: int | None = None


class Hub:
    """All WebSocket sessions of one app and the push, change and heartbeat loops that serve them."""

    def __init__(self, door: Door) -> None:
        self.door = door
        self.clients: dict[int, Client] = {}
        self.shutting_down = False
        self.computations = 0
        self._ids = itertools.count(1)
        self._emptied: anyio.Event | None = None
        self._stamp: Stamp | None = None
        self._version: int | None = None
        self._due: set[int] = set()
        self._unreadable = False
        self.learnt_at: float | None = None
        """When (anyio's clock) the store's data version was last seen to move (None: not since start)."""

    @property
    def store_version(self) -> int | None:
        """The store's data version as last read (None before the first look)."""
        return self._version

    def open(self, principal: Principal, credential: str) -> Client:
        """A new session for `principal` (not yet live), or `rate_limited` past the per-key limit."""
        per_key = self.door.options.connections_per_key
        if sum(1 for c in self.clients.values() if c.principal.key_id == principal.key_id) >= per_key:
            raise AnalyticsError(
                "rate_limited", f"too many WebSockets for this API key: at most {per_key} at once"
            )
        outbox, inbox = anyio.create_memory_object_stream[Outgoing](self.door.options.queue_messages)
        client = Client(next(self._ids), principal, credential, Filter.ALL, Period.H24, outbox, inbox)
        self.clients[client.id] = client
        return client

    def forget(self, client: Client) -> None:
        """Remove a finished session."""
        self.clients.pop(client.id, None)
        client.outbox.close()
        client.inbox.close()
        if not self.clients and self._emptied is not None:
            self._emptied.set()

    async def run(self) -> None:
        """Run the push and heartbeat loops until cancelled."""
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(self._every, self.door.options.push_interval, self.push)
            tasks.start_soon(self._every, self.door.options.change_check_interval, self.changes)
            tasks.start_soon(self._every, self.door.options.heartbeat_interval, self.heartbeat)

    @staticmethod
    async def _every(interval: float, action: Callable[[], Awaitable[None]]) -> None:
        """Run `action` every `interval` seconds on the monotonic clock, without drift."""
        deadline = anyio.current_time()
        while True:
            deadline += interval
            await anyio.sleep(max(0.0, deadline - anyio.current_time()))
            try:
                await action()
            except AnalyticsError as exc:  # the store cannot be used for now: said once a tick, no trace
                log.warning("a WebSocket tick was skipped (%s): %s", exc.code, exc.message)
            except Exception:
                log.exception("a WebSocket tick failed; the next one runs as planned")

    def live(self) -> list[Client]:
        """The sessions that have had their first update and are not closing."""
        return [c for c in self.clients.values() if c.live and c.closing is None]

    async def heartbeat(self) -> None:
        """Offer a `heartbeat` to every live session."""
        text = messages.heartbeat()
        for client in self.live():
            client.offer(text)

    async def push(self) -> None:
        """One push tick: re-check credentials, compute each distinct (filter, period) once, offer it."""
        clients = self.live()
        if not clients:
            return
        refused = await anyio.to_thread.run_sync(_revoked, self.door.authenticator, clients)
        for client, reason in refused:
            log.info("closing WebSocket %d: its credential is no longer valid", client.id)
            client.close(UNAUTHORIZED, reason)
        groups: dict[tuple[Filter, Period], list[Client]] = defaultdict(list)
        for client in clients:
            if client.closing is None:
                groups[client.preferences].append(client)
        await self._send(groups, lambda client, update: True)

    async def changes(self) -> None:
        """After an import (by any process), refresh the index and update the clients whose figures it
        changed, each at most once per UPDATE_EVERY seconds; a client updated less than that ago gets it
        on a later look. The data version is read when the commit stamp moved, and on every look while
        there is no stamp (PostgreSQL's notifications lost: the fallback poll, CONTRACT.md section 8)."""
        stamp = self.door.watch.stamp()
        if stamp is None or stamp != self._stamp:
            try:
                version = await anyio.to_thread.run_sync(self.door.engine.data_version)
            except AnalyticsError as exc:  # the store is down: say so once, look again next time
                if not self._unreadable:
                    log.warning("cannot read the store's data version: %s", exc.message)
                self._unreadable = True
                return
            if self._unreadable:
                log.info("the store's data version is readable again (%d)", version)
            self._unreadable = False
            self._stamp = stamp
            self.door.watch.learn(stamp, version)
            moved = self._version is not None and version != self._version
            self._version = version
            # every client last sent an older version is due (also one whose first update was computed
            # just before an import that this server's first look already found)
            self._due.update(c.id for c in self.live() if c.version is None or c.version < version)
            if moved:
                self.learnt_at = anyio.current_time()
                if not self._due:  # nobody to push to: refresh the index now, not on the next request
                    with contextlib.suppress(AnalyticsError):  # the store gone meanwhile: a request's turn
                        await anyio.to_thread.run_sync(self.door.engine.index)
        if not self._due:
            return
        now = anyio.current_time()
        groups: dict[tuple[Filter, Period], list[Client]] = defaultdict(list)
        for client in self.live():
            if client.id in self._due and now - client.changed_at >= UPDATE_EVERY:
                groups[client.preferences].append(client)
                self._due.discard(client.id)
                client.changed_at = now
        self._due &= self.clients.keys()
        await self._send(groups, lambda client, update: update.figures != client.shown)

    async def _send(
        self, groups: dict[tuple[Filter, Period], list[Client]], wanted: Callable[[Client, Update], bool]
    ) -> None:
        """Compute each group's update once and send it to the members `wanted` says should have it."""
        for (filter, period), members in groups.items():
            update = await self.update_of(filter, period)
            for client in members:
                # Preferences unchanged since, not in the middle of a switch, and no newer import shown
                # to it meanwhile.
                if (
                    client.preferences == (filter, period)
                    and not client.switching
                    and not client.behind(update)
                    and wanted(client, update)
                ):
                    client.update(update)

    async def update_of(self, filter: Filter, period: Period) -> Update:
        """The `analytics_update` for (filter, period) and its fingerprint, or an error message (with no
        fingerprint, so that the next change tries again): `unavailable` while the store cannot be
        used, else `internal`."""
        self.computations += 1
        try:
            result = await self.door.result(filter, period)
        except AnalyticsError as exc:
            log.warning("the %s/%s dashboard for WebSocket clients: %s", filter, period, exc.message)
            return Update(messages.error(exc), None)
        except Exception:
            log.exception("computing the %s/%s dashboard for WebSocket clients failed", filter, period)
            return Update(
                messages.error(
                    AnalyticsError(
                        "internal", "the dashboard could not be computed; the server's log has details"
                    )
                ),
                None,
            )
        wire = result.dashboard.to_wire()
        text = messages.analytics_update(dumps(wire), result.data_version)
        wire["metrics"] = {**wire["metrics"], "timestamp": None}
        return Update(text, hash(dumps(wire)), result.data_version)

    async def close_all(
        self, code: int = GOING_AWAY, reason: str = "server shutting down", wait: float = 5.0
    ) -> None:
        """Refuse new sessions, close every open one with `code`, and wait (up to `wait` s) until they end."""
        self.shutting_down = True
        if not self.clients:
            return
        log.info("closing %d WebSocket(s) with %d (%s)", len(self.clients), code, reason)
        emptied = self._emptied = anyio.Event()
        for client in list(self.clients.values()):
            client.close(code, reason)
        with anyio.move_on_after(wait):
            await emptied.wait()


def _revoked(authenticator: Authenticator, clients: list[Client]) -> list[tuple[Client, str]]:
    """The clients whose credential is refused now, with the reason (runs on a worker thread). A store
    that cannot be used refuses nobody: its clients stay, and are checked again on the next tick."""
    reasons: dict[str, str | None] = {}
    for credential in {client.credential for client in clients}:
        try:
            authenticator.authenticate(credential)
            reasons[credential] = None
        except AnalyticsError as exc:
            reasons[credential] = None if exc.code == "unavailable" else exc.message
    return [(client, reason) for client in clients if (reason := reasons[client.credential]) is not None]
