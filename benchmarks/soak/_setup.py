"""The soak's server: a demo store with its keys, `cymetica-mcp serve` as a subprocess on 127.0.0.1,
and what /proc says about that process (resident memory, open descriptors, threads)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from cymetica_mcp.auth import KeyRing
from cymetica_mcp.ingest import DemoSpec, import_files, write_demo
from cymetica_mcp.models import Scope
from cymetica_mcp.store import SQLiteStore
from cymetica_mcp.windows import iso

START_TIMEOUT: Final = 60.0
STOP_TIMEOUT: Final = 30.0
LAUNCH: Final = (
    "import faulthandler, signal, sys; faulthandler.register(signal.SIGUSR1, all_threads=True); "
    "from cymetica_mcp.cli import main; sys.argv[0] = 'cymetica-mcp'; sys.exit(main())"
)
"""`python -m cymetica_mcp`, but a SIGUSR1 writes every thread's stack to the log (for a server that hangs)."""
BANNER: Final = re.compile(r"serving .* \(data version (\d+)\) at (http://127\.0\.0\.1:\d+)")


@dataclass(frozen=True)
class Keys:
    """The API keys of one soak: read keys for the dashboard doors, one ingest key for imports."""

    rest: tuple[str, ...]
    ws: tuple[str, ...]
    mcp: tuple[str, ...]
    ingest: str


@dataclass(frozen=True)
class Prepared:
    """A served store, the same store untouched (the replay's starting point), and the keys."""

    served: Path
    base: Path
    keys: Keys
    version: int


def prepare(folder: Path, now: int, spec: DemoSpec, rest_keys: int, ws_keys: int, mcp_keys: int) -> Prepared:
    """The demo data of `spec` ending at `now` imported into a new store, keys made, then copied aside."""
    store = SQLiteStore(folder / "soak.db")
    report = import_files(store, *write_demo(spec, now, folder / "demo"))
    ring = KeyRing(store)

    def make(kind: str, count: int, scopes: tuple[Scope, ...] = (Scope.READ,)) -> tuple[str, ...]:
        return tuple(ring.create(f"soak-{kind}-{i}", scopes)[1] for i in range(count))

    keys = Keys(
        make("rest", rest_keys),
        make("ws", ws_keys),
        make("mcp", mcp_keys),
        make("ingest", 1, (Scope.INGEST,))[0],
    )
    base = folder / "base.db"
    store.backup(base)
    return Prepared(store.path, base, keys, report.data_version)


@dataclass
class Server:
    """`cymetica-mcp --db STORE serve` on 127.0.0.1, any free port, its clock fixed at `now`."""

    process: subprocess.Popen[bytes]
    url: str
    version: int
    log: Path

    @classmethod
    def start(cls, store: Path, now: int, push_interval: float, log: Path) -> Server:
        """Start the server and wait for its banner (the URL it listens on)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("CYMETICA_")}
        env |= {"CYMETICA_NOW": iso(now), "CYMETICA_LOG_LEVEL": "INFO", "PYTHONUNBUFFERED": "1"}
        command = [
            sys.executable, "-c", LAUNCH, "--db", str(store), "serve",
            "--host", "127.0.0.1", "--port", "0", "--push-interval", f"{push_interval:g}",
        ]  # fmt: skip
        # Both streams to the log file (uvicorn's access log is on stdout): a pipe nobody drains would
        # block the server once its buffer is full.
        with log.open("wb") as out:
            process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline and process.poll() is None:
            found = BANNER.search(log.read_text(errors="replace"))
            if found:
                return cls(process, found.group(2), int(found.group(1)), log)
            time.sleep(0.05)
        process.kill()
        process.wait()
        raise RuntimeError(
            f"the server did not start within {START_TIMEOUT:g} s (exit status {process.returncode}); "
            f"its output: {log.read_text(errors='replace')[-2000:]!r}"
        )

    def dump_stacks(self) -> None:
        """Have the server write every thread's stack to its log (it stays up)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGUSR1)
            time.sleep(1.0)

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self) -> int:
        """SIGTERM (a graceful shutdown), then its exit status; killed if it does not stop in time."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.dump_stacks()
                self.process.kill()
                self.process.wait()
        return self.process.returncode


@dataclass(frozen=True)
class Usage:
    """One look at a process: resident memory now and at its peak (MB), descriptors, threads."""

    rss_mb: float
    hwm_mb: float
    fds: int
    threads: int


def usage(pid: int) -> Usage:
    """What /proc/PID says now (Linux only: a clear error elsewhere)."""
    proc = Path(f"/proc/{pid}")
    try:
        status = dict(
            (name, value.strip())
            for name, _, value in (line.partition(":") for line in (proc / "status").read_text().splitlines())
        )
        fds = len(os.listdir(proc / "fd"))
    except OSError as exc:
        raise RuntimeError(
            f"cannot read /proc/{pid} (the soak measures the server through Linux's /proc): {exc}"
        ) from None
    return Usage(
        rss_mb=int(status["VmRSS"].split()[0]) / 1024,
        hwm_mb=int(status["VmHWM"].split()[0]) / 1024,
        fds=fds,
        threads=int(status["Threads"]),
    )


def descriptors(pid: int) -> Counter[str]:
    """What the open descriptors of PID point at, by kind (socket, pipe, a file's name), for a diff."""
    kinds: Counter[str] = Counter()
    folder = Path(f"/proc/{pid}/fd")
    for name in os.listdir(folder):
        try:
            target = os.readlink(folder / name)
        except OSError:
            continue
        kinds[target.split(":")[0] if ":[" in target else target] += 1
    return kinds
