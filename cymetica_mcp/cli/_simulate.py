"""`cymetica-mcp simulate`: live trading, a batch a second, sent to the ingest endpoint or the store.

With `--url`, each second's new users and trades go as JSON Lines to `POST /api/v1/ingest/users` and
`/trades` with an API key that has the `ingest` scope (a 429 or 503 waits for its Retry-After and sends
the same batch again: ids make a re-send harmless). Without it, they are imported into the store
directly, as `cymetica-mcp import` would. It stops after `--duration` seconds, or on Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Final

from cymetica_mcp.config import Settings
from cymetica_mcp.errors import AnalyticsError
from cymetica_mcp.ingest import Simulator, import_files
from cymetica_mcp.store import open_store

log = logging.getLogger(__name__)

TIMEOUT: Final = 10.0
ATTEMPTS: Final = 5
"""Sends of one batch before the simulator gives up (the server refusing or gone)."""

Send = Callable[[str, str], int]
"""Sends JSON Lines of ("users" or "trades"); returns the data version after it."""


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `simulate`."""
    simulate = commands.add_parser(
        "simulate", help="send simulated live trades, a batch a second, to a server (--url) or the store"
    )
    simulate.add_argument(
        "--url", help="server base URL, e.g. http://127.0.0.1:8000 (default: write the store)"
    )
    simulate.add_argument("--key", help="API key with the ingest scope (default: $CYMETICA_API_KEY)")
    simulate.add_argument(
        "--rate", type=float, default=50.0, help="trades per second, on average (default: 50)"
    )
    simulate.add_argument("--duration", type=float, help="seconds to run (default: until Ctrl-C)")
    simulate.add_argument("--seed", type=int, default=1, help="random seed (default: 1)")
    simulate.add_argument("--quiet", action="store_true", help="print nothing per batch")
    simulate.set_defaults(run=_simulate)


def _simulate(args: argparse.Namespace, settings: Settings) -> int:
    if args.rate <= 0:
        raise AnalyticsError("invalid_argument", f"--rate must be positive; got {args.rate:g}")
    if args.url:
        if not args.url.startswith(("http://", "https://")):
            raise AnalyticsError(
                "invalid_argument", f"--url must start with http:// or https://; got {args.url!r}"
            )
        key = args.key or settings.api_key
        if not key:
            raise AnalyticsError(
                "unauthorized", "give --key or CYMETICA_API_KEY: an API key with the ingest scope"
            )
        send = _over_http(args.url.rstrip("/"), key)
        where = args.url
    else:
        send = _into_store(settings.db)
        where = settings.store_shown
    started = int(time.time())
    simulator = Simulator(args.seed, started, args.rate)
    deadline = None if args.duration is None else time.monotonic() + args.duration
    tick = time.monotonic()
    sent = 0
    print(f"simulating {args.rate:g} trades/s into {where} (Ctrl-C stops)", file=sys.stderr)
    try:
        while deadline is None or time.monotonic() < deadline:
            batch = simulator.batch(int(time.time()))
            version = send("users", batch.users) if batch.users else None
            if batch.trades:
                version = send("trades", batch.trades)
            sent += batch.trade_count
            if not args.quiet:
                joined = f", {batch.user_count} new users" if batch.user_count else ""
                print(f"sent {batch.trade_count} trades{joined}: data version {version}", flush=True)
            tick += 1.0
            time.sleep(max(0.0, tick - time.monotonic()))
    except KeyboardInterrupt:
        pass
    print(f"simulated {sent} trades in all", file=sys.stderr)
    return 0


def _over_http(url: str, key: str) -> Send:
    def send(what: str, lines: str) -> int:
        request = urllib.request.Request(  # noqa: S310 - the scheme was checked: http or https
            f"{url}/api/v1/ingest/{what}",
            data=lines.encode("utf-8"),
            headers={"Authorization": f"Bearer {key}", "Content-Type": "application/x-ndjson"},
            method="POST",
        )
        for attempt in range(1, ATTEMPTS + 1):
            try:
                with urllib.request.urlopen(request, timeout=TIMEOUT) as response:  # noqa: S310 - http(s) only
                    return int(json.load(response)["data_version"])
            except urllib.error.HTTPError as exc:
                body = json.loads(exc.read() or b"{}")
                error = body.get("error", {})
                if exc.code not in (429, 503) or attempt == ATTEMPTS:
                    raise AnalyticsError(
                        error.get("code", "internal"),
                        f"the server refused a batch: {error.get('message', exc)}",
                    ) from None
                time.sleep(float(exc.headers.get("Retry-After", "1")))
            except (urllib.error.URLError, OSError) as exc:  # not up yet, or gone
                if attempt == ATTEMPTS:
                    raise AnalyticsError("unavailable", f"cannot reach {url}: {exc}") from None
                time.sleep(1.0)
        raise AssertionError("unreachable")

    return send


def _into_store(db: str) -> Send:
    store = open_store(db)

    def send(what: str, lines: str) -> int:
        with tempfile.TemporaryDirectory(prefix="cymetica-simulate-") as folder:
            path = Path(folder) / f"{what}.jsonl"
            path.write_text(lines, encoding="utf-8")
            if what == "users":
                return import_files(store, users=path).data_version
            return import_files(store, trades=path).data_version

    return send
