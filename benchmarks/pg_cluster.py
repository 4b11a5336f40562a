"""The throwaway PostgreSQL cluster the PostgreSQL benchmarks own: the tests' `Cluster`
(tests/postgres.py: the distribution's binaries, `initdb` + `pg_ctl` on a free loopback port, in
/dev/shm when it has room, run as an unprivileged account when root), with a server's durability
settings back in place of the tests' shortcuts.

The tests turn fsync and full_page_writes off (their data is thrown away). A benchmark of imports must
not: `ALTER SYSTEM` puts PostgreSQL's defaults back (fsync, full_page_writes and synchronous_commit on,
shared_buffers 128 MB, max_wal_size 1 GB) and the server restarts before anything is measured. Both
sides of every ratio (our import and `psql \\copy`, or a replica and the SQLite server) run against
this same cluster.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Final

INSTALL: Final = "apt-get install -y postgresql"
SETTINGS: Final = {
    "fsync": "on",
    "full_page_writes": "on",
    "synchronous_commit": "on",
    "shared_buffers": "'128MB'",
    "max_wal_size": "'1GB'",
}
"""PostgreSQL's own defaults for what the tests' clusters relax."""


def missing() -> str | None:
    """Why the PostgreSQL benchmarks cannot run here (None: they can)."""
    from tests.postgres import find_bin_dir

    bin_dir = find_bin_dir()
    if bin_dir is None or not (bin_dir / "psql").is_file():
        return f"PostgreSQL is not installed (/usr/lib/postgresql/N/bin); install it with: {INSTALL}"
    return None


class Server:
    """A started benchmark cluster: fresh databases on demand, and `psql` as its reference client."""

    def __init__(self) -> None:
        from tests.postgres import Cluster, find_bin_dir

        bin_dir = find_bin_dir()
        assert bin_dir is not None
        self.cluster = Cluster(bin_dir)
        self.psql_path = bin_dir / "psql"

    def start(self) -> None:
        """Create and start the cluster, then restart it with the durable settings."""
        self.cluster.start()
        for name, value in SETTINGS.items():
            self.cluster.admin_sql(f"ALTER SYSTEM SET {name} = {value}")
        self.cluster.restart()
        shown = {name: self.cluster.admin_sql(f"SHOW {name}")[0][0] for name in SETTINGS}
        if shown["fsync"] != "on" or shown["full_page_writes"] != "on":
            raise RuntimeError(f"the benchmark cluster did not take its settings: {shown}")
        self.settings = shown

    def stop(self) -> None:
        self.cluster.stop()

    def database(self) -> str:
        """A new empty database owned by the ordinary role: its URL (with the role's password)."""
        return self.cluster.create_database()

    def drop(self, url: str) -> None:
        self.cluster.drop_database(url)

    def version(self) -> str:
        return str(self.cluster.admin_sql("SHOW server_version")[0][0])

    def psql(self, url: str, command: str) -> float:
        """Run `psql -c COMMAND` against the database of `url` (the password passed in the environment,
        never on the command line); the seconds it took."""
        database = url.rsplit("/", 1)[-1]
        args = [str(self.psql_path), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1"]
        args += ["-p", str(self.cluster.port), "-U", "cymetica", "-d", database, "-c", command]
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["PGPASSWORD"] = self.cluster.password
        started = time.perf_counter()
        done = subprocess.run(args, env=env, capture_output=True, text=True, check=False, timeout=3600)
        seconds = time.perf_counter() - started
        if done.returncode != 0:
            raise RuntimeError(f"psql -c {command[:80]!r} failed: {done.stderr.strip()[:2000]}")
        return seconds


@contextmanager
def server() -> Iterator[Server]:
    """A started benchmark cluster, stopped and removed when the block ends."""
    running = Server()
    try:
        running.start()
        yield running
    finally:
        running.stop()


def where(url: str) -> str:
    """A database URL without its password (for logs and results)."""
    head, _, tail = url.partition("@")
    return head.split(":", 2)[0] + "://" + head.split("//", 1)[1].split(":", 1)[0] + "@" + tail


def psql_version() -> str:
    """`psql --version`, for the results' machine section."""
    from tests.postgres import find_bin_dir

    bin_dir = find_bin_dir()
    psql = str(bin_dir / "psql") if bin_dir is not None else shutil.which("psql")
    if psql is None or not Path(psql).exists():
        return ""
    return subprocess.run([psql, "--version"], capture_output=True, text=True, check=False).stdout.strip()
