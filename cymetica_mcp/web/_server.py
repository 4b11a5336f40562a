"""Running the app under uvicorn: the bound socket, the settings, and a graceful shutdown.

uvicorn's own shutdown closes WebSockets with 1012 (service restart). `GracefulServer` first closes
every session with 1001 (going away) and waits briefly for them to end, then lets uvicorn stop
accepting, finish in-flight requests and run the app's lifespan shutdown. A SIGTERM, the stop a
supervisor asks for, then ends the process with status 0; a SIGINT (Ctrl-C) with 130.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import socket
import threading
from collections.abc import Iterator
from types import FrameType
from typing import Final

import uvicorn

from cymetica_mcp.web._app import AnalyticsApp
from cymetica_mcp.web._hub import GOING_AWAY

log = logging.getLogger(__name__)

GRACEFUL_SECONDS: Final = 10


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on (host, port); port 0 picks a free one (see `sock.getsockname()`)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP matters: asyncio sets TCP_NODELAY only on sockets that name it, and without
    # TCP_NODELAY every keep-alive response waits ~40 ms for a delayed acknowledgement
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host.strip("[]"), port))
        sock.listen(2048)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def base_url(sock: socket.socket) -> str:
    """`http://host:port` of a bound socket (an unspecified address is shown as loopback)."""
    host, port = sock.getsockname()[:2]
    if host in ("0.0.0.0", "::"):  # noqa: S104 - naming the address, not binding to it
        host = "127.0.0.1" if host == "0.0.0.0" else "::1"  # noqa: S104
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


class GracefulServer(uvicorn.Server):
    """uvicorn, closing the app's WebSockets with 1001 before it shuts down."""

    def __init__(self, config: uvicorn.Config, app: AnalyticsApp) -> None:
        super().__init__(config)
        self.app = app

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """SIGINT and SIGTERM start the graceful shutdown, as in uvicorn; what follows it differs.

        uvicorn raises each captured signal again once it has stopped, so a process asked to stop by
        SIGTERM (systemd, Docker, Kubernetes) dies by that signal after stopping cleanly: status 143,
        which supervisors and scripts read as a failure. Here SIGTERM ends in a normal exit (status 0)
        and SIGINT in KeyboardInterrupt (the command line's 130, as a shell expects of Ctrl-C).
        """
        if threading.current_thread() is not threading.main_thread():  # signals reach the main thread only
            yield
            return
        interrupted: list[int] = []

        def handle(sig: int, frame: FrameType | None) -> None:
            if sig == signal.SIGINT:
                interrupted.append(sig)
            self.handle_exit(sig, frame)

        original = {sig: signal.signal(sig, handle) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in original.items():
                signal.signal(sig, handler)
        if interrupted:
            raise KeyboardInterrupt

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        """Close WebSockets with 1001, then shut down as uvicorn does."""
        await self.app.hub.close_all(GOING_AWAY, "server shutting down")
        await super().shutdown(sockets)


def make_server(app: AnalyticsApp, *, log_level: str = "info", access_log: bool = True) -> GracefulServer:
    """A `GracefulServer` for `app`, with the WebSocket message limit enforced by the protocol too."""
    config = uvicorn.Config(
        app,
        lifespan="on",
        log_level=log_level.lower(),
        access_log=access_log,
        ws_max_size=app.door.options.max_message_bytes,
        timeout_graceful_shutdown=GRACEFUL_SECONDS,
        proxy_headers=False,
    )
    return GracefulServer(config, app)
