"""A throwaway PostgreSQL cluster owned by the tests, from the distribution's binaries.

`Cluster` runs `initdb` into a fresh temporary folder (in RAM, /dev/shm, when it has room:
`default_parent()`), then `pg_ctl` on a free port of 127.0.0.1 (no unix socket:
`unix_socket_directories = ''`), tuned for speed over safety: fsync and full_page_writes off, the data is
thrown away. synchronous_commit stays on, so a commit survives `kill()` (a crash of the server, not of
the machine) as in production, for one write() per commit and no fsync. Two roles, each with a random
password, checked with scram-sha-256 over TCP (pg_hba.conf allows nothing else):

- `postgres`, the superuser, for the fixtures' own work (`admin_url`): creating and dropping databases;
- `cymetica`, an ordinary role (no superuser, no CREATEDB), owner of every database `create_database`
  makes, so it owns their `public` schema: what the store runs as, as it would in production (`url`).

Who runs the server. PostgreSQL refuses to run as root, and CI runs as root. When the effective uid is 0,
`initdb`, `pg_ctl` and so the server run as an unprivileged account, in order of preference:

1. `postgres`, the account the distribution's `postgresql` package creates (Debian's postgresql-common
   does, always, when it installs the binaries used here): present wherever these tests can run at all,
   and made for exactly this;
2. `nobody`, present on every Debian/Ubuntu system, when the binaries came without that account.

No account is created (nothing on the machine changes). The temporary folder is made by root with
`tempfile.mkdtemp` (0700) in a world-traversable folder (/dev/shm or /tmp) and handed to that
account with `chown`, so the cluster's files are readable only by it and root. As any other user the
programs run as that user directly.

Cleanup: `stop` removes the folder; every cluster is also stopped (immediately) and removed at interpreter
exit (`atexit`), so no server outlives a pytest session, even one whose tests failed or was interrupted by
Ctrl-C. The server's log is `Cluster.log_path` (`log_text()`), kept until then: read it when a test fails.
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, Final

import psycopg

from tests.conftest import require_system

INSTALL: Final = "apt-get install -y postgresql"
"""The command that installs the distribution's PostgreSQL (`.ci/run` runs it on CI machines)."""

ROLE: Final = "cymetica"
ADMIN: Final = "postgres"
SERVER_ACCOUNTS: Final = ("postgres", "nobody")
"""The unprivileged accounts the server runs as when the tests run as root, the first present wins."""

SETTINGS: Final = {
    "listen_addresses": "'127.0.0.1'",
    "unix_socket_directories": "''",
    "fsync": "off",
    "synchronous_commit": "on",  # off would lose the last commits to kill(); with fsync off, on is a write()
    "full_page_writes": "off",
    "max_connections": "200",
    "shared_buffers": "32MB",
    "max_wal_size": "256MB",  # bounds the WAL a tmpfs holds (checkpoints are cheap here)
    "min_wal_size": "32MB",
    "log_min_messages": "warning",
    "log_line_prefix": "'%m [%p] %q%u@%d '",
    "timezone": "'UTC'",
}
"""postgresql.conf of a throwaway cluster (the port is added per cluster)."""

_names = itertools.count(1)
_live: set[Cluster] = set()


RAM_FOLDER: Final = Path("/dev/shm")
RAM_FOLDER_FREE: Final = 2 << 30
"""The cluster lives in RAM (tmpfs) when /dev/shm has this much room: CREATE DATABASE then takes 17-40 ms
instead of 300-450 ms on this 2-core VM's disk while other processes write (see /work/notes/pgfix.md)."""


def default_parent() -> Path | None:
    """Where clusters make their folder: /dev/shm when it is a tmpfs with room, else the system's
    temporary folder (None: `tempfile`'s choice, e.g. Docker's 64 MB /dev/shm is too small)."""
    try:
        usage = shutil.disk_usage(RAM_FOLDER)
    except OSError:
        return None
    writable = os.access(RAM_FOLDER, os.W_OK | os.X_OK)
    return RAM_FOLDER if writable and usage.free >= RAM_FOLDER_FREE else None


def find_bin_dir() -> Path | None:
    """The newest PostgreSQL `bin` folder of the distribution's packages (`/usr/lib/postgresql/N/bin`)."""
    found = [path.parent for path in Path("/usr/lib/postgresql").glob("*/bin/pg_ctl") if path.is_file()]
    found = [path for path in found if path.parent.name.isdigit()]
    return max(found, key=lambda path: int(path.parent.name), default=None)


def require_postgres() -> Path:
    """The distribution's PostgreSQL `bin` folder, or skip the test with the command that installs it
    (a failure under CI instead: tests/conftest.py)."""
    bin_dir = find_bin_dir()
    pg_ctl = require_system("pg_ctl", INSTALL, path=(bin_dir or Path("/usr/lib/postgresql/N/bin")) / "pg_ctl")
    return Path(pg_ctl).parent


def server_account() -> pwd.struct_passwd | None:
    """The account the server runs as when this process is root (None: run as this process's user)."""
    if os.geteuid() != 0:
        return None
    for name in SERVER_ACCOUNTS:
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    raise RuntimeError(f"running as root and none of the accounts {SERVER_ACCOUNTS} exists to run PostgreSQL")


def free_port() -> int:
    """A TCP port of 127.0.0.1 nobody listens on now (`start` retries if another process takes it first)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def process_alive(pid: int) -> bool:
    """Whether process `pid` exists and is not a zombie (an exited postmaster that pid 1 has not reaped)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


class ClusterError(RuntimeError):
    """A PostgreSQL program failed; the message holds its output and the end of the server's log."""


class Cluster:
    """A throwaway PostgreSQL cluster: `start()` it, `create_database()` per test, `stop()` when done."""

    def __init__(self, bin_dir: Path | None = None, parent: Path | None = None) -> None:
        """`bin_dir`: PostgreSQL's programs (default: the newest of the distribution's); `parent`: where
        the cluster's temporary folder goes (default: `default_parent()`, RAM when there is room)."""
        self.bin_dir = bin_dir if bin_dir is not None else require_postgres()
        self.parent = parent if parent is not None else default_parent()
        self.psql = self.bin_dir / "psql"
        self.account = server_account()
        self.password = secrets.token_urlsafe(18)
        self._admin_password = secrets.token_urlsafe(18)
        self.port = 0
        self._folder: Path | None = None

    # -- where things are ---------------------------------------------------------------------------

    @property
    def folder(self) -> Path:
        """The temporary folder holding the data directory and the log (only while the cluster exists)."""
        if self._folder is None:
            raise ClusterError("the cluster has not been started (call start())")
        return self._folder

    @property
    def data_dir(self) -> Path:
        return self.folder / "data"

    @property
    def log_path(self) -> Path:
        return self.folder / "server.log"

    def log_text(self) -> str:
        """The server's log so far (empty before the first start)."""
        try:
            return self.log_path.read_text(errors="replace")
        except (OSError, ClusterError):
            return ""

    def url(self, database: str) -> str:
        """The URL the code under test uses: role `cymetica`, its password, TCP on 127.0.0.1."""
        return f"postgresql://{ROLE}:{self.password}@127.0.0.1:{self.port}/{database}"

    def admin_url(self, database: str = "postgres") -> str:
        """The superuser's URL, for the fixtures' own work (never hand it to the code under test)."""
        return f"postgresql://{ADMIN}:{self._admin_password}@127.0.0.1:{self.port}/{database}"

    @property
    def pid(self) -> int | None:
        """The postmaster's process id while it runs (from postmaster.pid, so a crash shows), else None."""
        if self._folder is None:
            return None
        try:
            pid = int((self.data_dir / "postmaster.pid").read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            return None
        return pid if process_alive(pid) else None

    @property
    def running(self) -> bool:
        """Whether the server's postmaster is alive."""
        return self.pid is not None

    # -- life cycle -----------------------------------------------------------------------------------

    def start(self) -> None:
        """Create the cluster on first use (initdb + roles), then start the server and wait until it
        accepts connections. Later calls restart it on the same port and data directory."""
        if self._folder is None:
            self._create()
            return
        if not self.running:
            self._pg_ctl("start", "-w", "-t", "60", "-l", str(self.log_path))

    def stop(self) -> None:
        """Stop the server (fast: sessions are cut, committed data stays) and remove the cluster's folder."""
        if self._folder is None:
            return
        try:
            self._halt("fast")
        finally:
            shutil.rmtree(self._folder, ignore_errors=True)
            self._folder = None
            _live.discard(self)

    def restart(self) -> None:
        """Stop fast and start again, same port, same data."""
        self._halt("fast")
        self.start()

    def kill(self) -> None:
        """Stop immediately, as a crash would (no checkpoint: the next `start` runs crash recovery)."""
        self._halt("immediate")

    def _halt(self, mode: str) -> None:
        if self.running:
            self._pg_ctl("stop", "-w", "-t", "60", "-m", mode)

    # -- databases ------------------------------------------------------------------------------------

    def create_database(self, template: str = "template0") -> str:
        """A new database with a unique name, owned by role `cymetica`, empty or a copy of the database
        `template` (by name or `url()`; nobody may be connected to it); returns its `url()`."""
        name = f"cymetica_test_{os.getpid()}_{next(_names)}"
        template = template.rsplit("/", 1)[-1]
        self.admin_sql(f'CREATE DATABASE "{name}" OWNER {ROLE} TEMPLATE "{template}"')
        return self.url(name)

    def drop_database(self, name: str) -> None:
        """Drop a database (by name, or by the URL `create_database` returned), cutting its sessions."""
        name = name.rsplit("/", 1)[-1]
        self.admin_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def admin_sql(self, statement: str, database: str = "postgres") -> list[tuple[Any, ...]]:
        """Run one statement as the superuser outside a transaction; its rows (none for a command)."""
        with psycopg.connect(self.admin_url(database), autocommit=True, connect_timeout=10) as conn:
            cursor = conn.execute(statement.encode())
            return cursor.fetchall() if cursor.description is not None else []

    # -- the programs ---------------------------------------------------------------------------------

    def _create(self) -> None:
        folder = Path(tempfile.mkdtemp(prefix="cymetica-pg-", dir=self.parent))
        self._folder = folder
        _live.add(self)
        if self.account is not None:
            os.chown(folder, self.account.pw_uid, self.account.pw_gid)
        secret = folder / "pwfile"
        secret.write_text(self._admin_password + "\n")
        secret.chmod(0o600)
        if self.account is not None:
            os.chown(secret, self.account.pw_uid, self.account.pw_gid)
        self._run(
            "initdb",
            "-D", str(self.data_dir), "-U", ADMIN, f"--pwfile={secret}",
            "--auth=scram-sha-256", "--encoding=UTF8", "--locale=C",
            "--no-sync", "--no-instructions",
        )  # fmt: skip
        secret.unlink()
        (self.data_dir / "pg_hba.conf").write_text(
            "# throwaway test cluster: TCP on 127.0.0.1 only, passwords checked with scram-sha-256\n"
            "host all all 127.0.0.1/32 scram-sha-256\n"
        )
        for attempt in itertools.count(1):
            self.port = free_port()
            settings = {**SETTINGS, "port": str(self.port)}
            with (self.data_dir / "postgresql.conf").open("a") as conf:
                conf.write("\n# tests/postgres.py\n" + "".join(f"{k} = {v}\n" for k, v in settings.items()))
            try:
                self._pg_ctl("start", "-w", "-t", "60", "-l", str(self.log_path))
                break
            except ClusterError:  # the port taken meanwhile by another process: try another
                if attempt == 3 or "could not bind" not in self.log_text():
                    raise
        self.admin_sql(f"CREATE ROLE {ROLE} LOGIN PASSWORD '{self.password}'")

    def _pg_ctl(self, *args: str) -> None:
        self._run("pg_ctl", "-D", str(self.data_dir), *args)

    def _run(self, program: str, *args: str) -> None:
        """Run a PostgreSQL program as the server's account; raise ClusterError with its output if it fails."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env.update(LC_ALL="C", LANG="C", TZ="UTC")
        if self.account is not None:
            env.update(HOME=str(self.folder), USER=self.account.pw_name, LOGNAME=self.account.pw_name)
        command = [str(self.bin_dir / program), *args]
        started = time.monotonic()
        done = subprocess.run(
            command,
            cwd=self.folder,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            user=None if self.account is None else self.account.pw_uid,
            group=None if self.account is None else self.account.pw_gid,
            extra_groups=None if self.account is None else [],
        )
        if done.returncode != 0:
            raise ClusterError(
                f"{program} {' '.join(args)} failed (exit {done.returncode}, "
                f"{time.monotonic() - started:.1f} s):\n{done.stdout}{done.stderr}\n"
                f"--- end of {self.log_path} ---\n{self.log_text()[-3000:]}"
            )


@atexit.register
def _stop_all() -> None:
    """No server outlives the interpreter: stop every cluster still alive (immediately) and remove it."""
    for cluster in list(_live):
        with contextlib.suppress(Exception):
            cluster.kill()
        with contextlib.suppress(Exception):
            cluster.stop()
