"""Two (or more) `cymetica-mcp serve` replicas on one PostgreSQL database, behind nginx, on this machine.

    export CYMETICA_DB=postgresql://cymetica:PASSWORD@db.example.com:5432/cymetica
    python examples/deploy/run.py                         # proxy on http://127.0.0.1:8080
    python examples/deploy/run.py --listen 127.0.0.1:9000 --replica-ports 9001,9002,9003 -- --rate-limit 1200

It renders nginx.conf.template (beside this file) into a folder of its own (--folder, default a new
temporary one: nginx.conf, nginx.pid, logs/, temp/), starts one replica per port with
`--trusted-proxy 127.0.0.1 --public-url <proxy URL> --mcp-stateless` (and any `serve` options after
`--`), waits until each says ready on /readyz, starts nginx (`nginx -p FOLDER -c nginx.conf -g 'daemon
off;'`), and prints one line once the proxy answers. A replica that dies is reported and left dead
(nginx sends its requests to the others; in production, systemd or your orchestrator restarts it);
Ctrl-C or SIGTERM stops everything gracefully. Only the standard library; nginx from the distribution
(`apt-get install -y nginx`).

The database URL goes to the replicas in their environment (CYMETICA_DB), never on a command line,
where `ps` would show its password to every user of the machine.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import FrameType
from typing import IO

HERE = Path(__file__).resolve().parent
TEMPLATE = HERE / "nginx.conf.template"
READY_SECONDS = 60.0
STOP_SECONDS = 15.0
NAMES = "abcdefghijklmnopqrstuvwxyz"


class Stop(Exception):
    """SIGTERM (or SIGINT): stop everything."""


def render(template: str, *, listen: str, server_name: str, replicas: list[str]) -> str:
    """The nginx configuration for a proxy on `listen` in front of `replicas` (HOST:PORT each)."""
    servers = "\n".join(f"        server {address} max_fails=1 fail_timeout=5s;" for address in replicas)
    text = template.replace("@LISTEN@", listen).replace("@SERVER_NAME@", server_name)
    return text.replace("@REPLICAS@", servers)


def free_port(host: str) -> int:
    """A port nothing listens on now (the kernel's pick; taken by whoever binds it first)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port


def answers(url: str) -> bool:
    """Whether GET `url` answers 200 now."""
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except (OSError, urllib.error.URLError):
        return False


def forward(name: str, stream: IO[str]) -> None:
    """Copy a child's output lines to ours, each after its name."""
    for line in stream:
        print(f"[{name}] {line}", end="", flush=True)


def start_replica(
    name: str, command: list[str], port: int, args: argparse.Namespace, env: dict[str, str]
) -> subprocess.Popen[str]:
    """One `serve` process on `port`, its output forwarded under `name`."""
    argv = [
        *command,
        "serve",
        "--host",
        args.replica_host,
        "--port",
        str(port),
        "--public-url",
        args.public_url,
        "--trusted-proxy",
        args.trusted_proxy,
        "--mcp-stateless",
        *args.serve_args,
    ]
    process = subprocess.Popen(
        argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
    )
    assert process.stdout is not None
    threading.Thread(target=forward, args=(name, process.stdout), daemon=True).start()
    return process


def wait_until(check: str, processes: list[subprocess.Popen[str]], what: str) -> None:
    """Poll `check` until it answers 200; fail if one of `processes` exits or time runs out."""
    deadline = time.monotonic() + READY_SECONDS
    while not answers(check):
        for process in processes:
            if process.poll() is not None:
                raise SystemExit(
                    f"{what}: a process exited with code {process.returncode} (see its output above)"
                )
        if time.monotonic() > deadline:
            raise SystemExit(f"{what}: {check} did not answer 200 within {READY_SECONDS:g} s")
        time.sleep(0.1)


def prepare_folder(folder: Path, config: str) -> None:
    """nginx.conf, logs/ and temp/ in `folder`. As root, nginx's workers run as nobody: they must be
    able to reach temp/ (nginx's master creates the folders inside it and gives them to that account)."""
    (folder / "logs").mkdir(parents=True, exist_ok=True)
    (folder / "temp").mkdir(exist_ok=True)
    (folder / "nginx.conf").write_text(config)
    if os.geteuid() == 0:
        folder.chmod(0o711)
        (folder / "temp").chmod(0o711)


def stop(process: subprocess.Popen[str], how: signal.Signals) -> None:
    """Send `how`, wait up to STOP_SECONDS, then kill."""
    if process.poll() is None:
        process.send_signal(how)
        try:
            process.wait(STOP_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def on_signal(signum: int, frame: FrameType | None) -> None:
    raise Stop


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="cymetica-mcp replicas on one PostgreSQL database behind nginx",
        epilog="options after -- go to every `cymetica-mcp serve`",
    )
    parser.add_argument(
        "--db", default=os.environ.get("CYMETICA_DB"), help="postgresql://... (default: $CYMETICA_DB)"
    )
    parser.add_argument(
        "--listen", default="127.0.0.1:8080", help="HOST:PORT of the proxy (default: 127.0.0.1:8080)"
    )
    parser.add_argument("--server-name", default="_", help="nginx server_name (default: _, any)")
    parser.add_argument("--public-url", help="the URL clients use (default: http://<--listen>)")
    parser.add_argument(
        "--replica-ports",
        default="8001,8002",
        help="one port per replica, 0 for any free one (default: 8001,8002)",
    )
    parser.add_argument(
        "--replica-host", default="127.0.0.1", help="address the replicas bind (default: 127.0.0.1)"
    )
    parser.add_argument(
        "--trusted-proxy",
        default="127.0.0.1",
        help="nginx's address as the replicas see it (default: 127.0.0.1)",
    )
    parser.add_argument("--folder", type=Path, help="nginx's prefix folder (default: a new temporary one)")
    parser.add_argument(
        "--nginx", default=shutil.which("nginx") or "/usr/sbin/nginx", help="the nginx program"
    )
    parser.add_argument(
        "--cymetica",
        default=f"{sys.executable} -m cymetica_mcp",
        help="the cymetica-mcp command (default: this Python's module)",
    )
    args, rest = parser.parse_known_args(argv)
    if rest and rest[0] == "--":
        rest = rest[1:]
    elif rest:
        parser.error(f"unknown options {' '.join(rest)} (put `serve` options after --)")
    args.serve_args = rest
    if not args.db or not args.db.startswith(("postgresql://", "postgres://")):
        parser.error(
            "--db (or CYMETICA_DB) must be a postgresql:// URL: replicas share one PostgreSQL database"
        )
    if ":" not in args.listen:
        parser.error(f"--listen {args.listen!r}: accepted: HOST:PORT, e.g. 127.0.0.1:8080")
    args.public_url = (args.public_url or f"http://{args.listen}").rstrip("/")
    return args


def main(argv: list[str]) -> int:
    args = parse(argv)
    ports = [int(p) or free_port(args.replica_host) for p in args.replica_ports.split(",")]
    folder: Path = args.folder or Path(tempfile.mkdtemp(prefix="cymetica-deploy-"))
    env = {**os.environ, "CYMETICA_DB": args.db}
    command = args.cymetica.split()
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    replicas: list[subprocess.Popen[str]] = []
    nginx: subprocess.Popen[str] | None = None
    try:
        for name, port in zip(NAMES, ports, strict=False):
            replicas.append(start_replica(f"replica {name}", command, port, args, env))
        for name, port in zip(NAMES, ports, strict=False):
            wait_until(f"http://{args.replica_host}:{port}/readyz", replicas, f"replica {name}")
        addresses = [f"{args.replica_host}:{port}" for port in ports]
        prepare_folder(
            folder,
            render(
                TEMPLATE.read_text(), listen=args.listen, server_name=args.server_name, replicas=addresses
            ),
        )
        nginx_argv = [args.nginx, "-p", f"{folder}/", "-c", "nginx.conf", "-g", "daemon off;"]
        if subprocess.run([*nginx_argv, "-t", "-q"], check=False).returncode != 0:
            raise SystemExit(f"nginx refused {folder / 'nginx.conf'} (its message is above)")
        nginx = subprocess.Popen(nginx_argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert nginx.stdout is not None
        threading.Thread(target=forward, args=("nginx", nginx.stdout), daemon=True).start()
        wait_until(f"http://{args.listen}/healthz", [nginx], "nginx")
        listed = ", ".join(
            f"{name}=http://{address} (pid {process.pid})"
            for name, address, process in zip(NAMES, addresses, replicas, strict=False)
        )
        print(
            f"ready: {args.public_url} -> replicas {listed}; nginx pid {nginx.pid}; folder {folder}",
            flush=True,
        )
        reported: set[int] = set()
        while nginx.poll() is None:
            for name, process in zip(NAMES, replicas, strict=False):
                if process.poll() is not None and process.pid not in reported:
                    reported.add(process.pid)
                    print(
                        f"replica {name} (pid {process.pid}) exited with code {process.returncode}; "
                        "nginx sends its requests to the others",
                        flush=True,
                    )
            time.sleep(0.2)
        print(f"nginx exited with code {nginx.returncode}: stopping the replicas", flush=True)
        return 1
    except Stop:
        return 0
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        for process in replicas:  # first: their WebSockets close with 1001 through nginx
            stop(process, signal.SIGTERM)
        if nginx is not None:
            stop(nginx, signal.SIGQUIT)  # graceful: requests under way finish


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
