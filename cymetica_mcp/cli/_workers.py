"""`serve --workers N`: N server processes behind one listening socket, and their supervisor.

The supervisor reserves the port (a socket bound with SO_REUSEPORT that never listens), then forks N
workers before it opens anything else (no store connection, no thread crosses a fork). Each worker
listens on a socket of its own bound to the same port with SO_REUSEPORT, and opens its own store,
engine and authenticator; the kernel spreads new connections over the workers' sockets by a hash of
their addresses, so the load is shared evenly (a single socket shared by all would leave most
connections to whichever worker's event loop wakes first). Every worker reads the store's data version and commit stamp as a
single server does, so CONTRACT.md section 8 holds whichever worker answers, and each maps the same
kept index file (its pages shared in the page cache until a worker merges a delta of its own).

SIGINT or SIGTERM to the supervisor is passed to every worker as SIGTERM: each closes its WebSockets
with 1001, finishes its requests and exits; the supervisor waits for all of them. A worker that dies
on its own is replaced (at most `RESTARTS` times a minute, then the supervisor stops them all).
Prometheus figures go through files in a folder of the supervisor's (`PROMETHEUS_MULTIPROC_DIR`),
removed when it exits.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import shutil
import signal
import socket
import tempfile
import time
from collections.abc import Callable
from types import FrameType
from typing import Final

log = logging.getLogger(__name__)

RESTARTS: Final = 5
"""Workers replaced within a minute before the supervisor gives up and stops them all."""
MULTIPROCESS: Final = "PROMETHEUS_MULTIPROC_DIR"


def reserve(host: str, port: int) -> socket.socket:
    """The port, held by a socket that never listens (port 0: any free one), for the workers to share."""
    sock = _reusable(host)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError:
        sock.close()
        raise
    return sock


def listener(host: str, port: int) -> socket.socket:
    """A worker's own listening socket on the reserved port."""
    sock = _reusable(host)
    try:
        sock.bind((host.strip("[]"), port))
        sock.listen(2048)
    except OSError:
        sock.close()
        raise
    return sock


def _reusable(host: str) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)  # IPPROTO_TCP: see web.bind
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    return sock


def shared_metrics_folder() -> str:
    """A fresh folder for every worker's Prometheus figures, named in the environment the workers
    inherit (before `prometheus_client` is imported: it picks its storage then)."""
    folder = tempfile.mkdtemp(prefix="cymetica-metrics-")
    os.environ[MULTIPROCESS] = folder
    return folder


def supervise(workers: int, work: Callable[[Callable[[], None]], int], ready: Callable[[], None]) -> int:
    """Fork `workers` processes running `work(listening)` (each calls `listening()` once its socket
    listens), call `ready()` once all of them listen, and wait for them; 0 once all stopped on request."""
    folder = os.environ.get(MULTIPROCESS)
    told, tell = os.pipe()
    running: dict[int, int] = {}  # pid -> worker number
    stopping = False
    restarts: list[float] = []

    def start(number: int) -> None:
        pid = os.fork()
        if pid == 0:  # the worker: default signal handling (uvicorn installs its own), then serve
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.close(told)
            code = 1
            try:
                code = work(functools.partial(_tell, tell))
            except BaseException:
                log.exception("worker %d failed", number)
            finally:
                os._exit(code)
        running[pid] = number
        log.info("worker %d started (pid %d)", number, pid)

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        for pid in list(running):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    previous = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
    failed = False
    try:
        for number in range(1, workers + 1):
            start(number)
        os.close(tell)
        heard = 0
        while heard < workers and not stopping:  # every worker listening: the port answers
            try:
                heard += len(os.read(told, workers - heard) or b"x" * workers)
            except InterruptedError:
                continue
        if not stopping:
            ready()
        while running:
            try:
                pid, status = os.wait()
            except ChildProcessError:
                break
            except InterruptedError:
                continue
            number = running.pop(pid, 0)
            _forget(pid)
            code = os.waitstatus_to_exitcode(status)
            if stopping:
                log.info("worker %d (pid %d) stopped", number, pid)
                continue
            log.error("worker %d (pid %d) exited with %d", number, pid, code)
            now = time.monotonic()
            restarts[:] = [t for t in restarts if now - t < 60] + [now]
            if len(restarts) > RESTARTS:
                log.error("%d workers died within a minute: stopping them all", len(restarts))
                failed = True
                stop(signal.SIGTERM, None)
                continue
            start(number)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        os.close(told)
        if folder:
            shutil.rmtree(folder, ignore_errors=True)
    return 1 if failed else 0


def _tell(pipe: int) -> None:
    """A worker's word to the supervisor: my socket listens."""
    os.write(pipe, b".")


def _forget(pid: int) -> None:
    """Drop a dead worker's live gauges from the shared Prometheus figures."""
    if not os.environ.get(MULTIPROCESS):
        return
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]
