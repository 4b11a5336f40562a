"""The web door under test: a real uvicorn server on an ephemeral loopback port, in a thread of its own.

Each test gets a private copy of one demo store (SQLite's backup API), an engine whose clock is fixed
at NOW, an API key, and a `Served` handle: URLs, the app (its hub), the server's event loop (to run a
push tick on demand) and the options it was started with.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Generic

import anyio.to_thread
import pytest
from typing_extensions import TypeVar

from cymetica_mcp.auth import Authenticator, KeyRing, jwt_secret
from cymetica_mcp.engine import Engine, open_engine
from cymetica_mcp.store import SQLiteStore, Store
from cymetica_mcp.web import AnalyticsApp, GracefulServer, WebOptions, base_url, bind, create_app, make_server
from tests.conftest import NOW

T = TypeVar("T")
S = TypeVar("S", bound=Store, default=SQLiteStore)
"""The store a server serves: SQLite's demo store unless a test serves another backend's."""
START_SECONDS = 10.0


@pytest.fixture
def api_key(demo_store: SQLiteStore) -> str:
    """A fresh API key (id 1) in the test's store."""
    return KeyRing(demo_store).create("web-tests")[1]


class RecordingServer(GracefulServer):
    """GracefulServer that remembers its event loop, so tests can run coroutines (a push tick) in it."""

    loop: asyncio.AbstractEventLoop

    async def startup(self, sockets: Any = None) -> None:
        self.loop = asyncio.get_running_loop()
        await super().startup(sockets)


@dataclass
class Served(Generic[S]):
    """A running server and what tests need to drive it."""

    url: str
    app: AnalyticsApp
    server: RecordingServer
    engine: Engine
    store: S

    @property
    def ws_url(self) -> str:
        """The WebSocket endpoint's URL without a token."""
        return "ws" + self.url.removeprefix("http") + "/ws/analytics"

    async def in_server(self, make: Callable[[], Coroutine[Any, Any, T]]) -> T:
        """Run a coroutine in the server's event loop and wait (10 s at most) without blocking ours."""
        future = asyncio.run_coroutine_threadsafe(make(), self.server.loop)
        return await anyio.to_thread.run_sync(future.result, 10.0)

    async def push(self) -> None:
        """One push tick, now, in the server's loop."""
        await self.in_server(self.app.hub.push)


@contextmanager
def serving(
    store: S,
    engine: Engine | None = None,
    *,
    send_buffer: int | None = None,
    port: int = 0,
    jwt_lifetime: int | None = None,
    **options: Any,
) -> Iterator[Served[S]]:
    """Run the app for `store` under uvicorn on 127.0.0.1:<port> (0: a free one) until the block ends.

    `jwt_lifetime` shortens the JWTs the token endpoint issues (seconds).
    `send_buffer` fixes the kernel send buffer of accepted connections (inherited from the listening
    socket), so that a client that stops reading backs up within kilobytes instead of megabytes.
    """
    engine = engine or open_engine(store, now=NOW)
    lifetime = {} if jwt_lifetime is None else {"lifetime": jwt_lifetime}
    authenticator = Authenticator(store, jwt_secret(store, None), **lifetime)
    sock = bind("127.0.0.1", port)
    if send_buffer is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, send_buffer)
    url = base_url(sock)
    app = create_app(engine, authenticator, WebOptions(public_url=url, **options))
    plain = make_server(app, log_level="warning")
    server = RecordingServer(plain.config, app)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + START_SECONDS
    while not server.started:  # a condition with a deadline, not a guess at how long start-up takes
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.01)
    try:
        yield Served(url, app, server, engine, store)
    finally:
        server.should_exit = True
        thread.join(START_SECONDS)
        sock.close()
        engine.close()
        authenticator.close()
        assert not thread.is_alive(), "the test server did not stop"


@pytest.fixture
def served(demo_store: SQLiteStore, api_key: str) -> Iterator[Served]:
    """The app with default options but a 1 s push and 0.5 s heartbeat, serving the demo store."""
    with serving(demo_store, push_interval=1.0, heartbeat_interval=0.5) as running:
        yield running
