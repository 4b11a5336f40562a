"""The ingest targets of issue 14: trades sent over HTTP, against the CLI's import of the same files.

    python -m benchmarks.ingest --size quick   # this part alone, on the dataset's store

One server (`benchmarks.web_server`, clock fixed at the dataset's NOW, the ingest rate limit raised)
over a copy of the dataset's pristine store, and a second copy for the reference:

- throughput: JSON Lines batches of 10k and of 100k new trades, one batch per `POST
  /api/v1/ingest/trades`, sequentially, each timed from send to answer; the reference is `cymetica-mcp
  --db COPY import --trades FILE --format jsonl` (a subprocess: start-up included) importing the same
  files into the other copy, the two sides interleaved batch by batch. Median trades/s of each side.
- latency: sequential one-trade POSTs (each a new trade id) while 100 WebSocket clients
  (`benchmarks.fanout`, in a process of their own) follow the nine pairs; p50 and p99.
- freshness: a client of `filter=all&period=24h` on the WebSocket (the 100 still connected); a trade
  a few seconds before NOW is POSTed, then the time from the POST's answer to the first
  `analytics_update` showing its volume; and whether the REST GET sent right after the answer already
  shows it. POSTs are spaced more than a second apart (a client gets at most one update a second).

New trades are new: trade ids of their own, users of the dataset, times inside its 95 days. Any failure
is reported as a failed row with its reason; the rest of the suite goes on.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import queue
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import httpx
import numpy as np

from benchmarks.data import DAYS, NOW, SEED, SIZES, _decimal, copy_store, dataset, ensure_store
from benchmarks.doors import ROOT, Log, _fields, _quantile, api_key, built, free_port, serving
from benchmarks.report import Row, absolute, describe, failed, median, skipped, table, versus
from cymetica_mcp.windows import DAY, iso

MODULE: Final = "cymetica_mcp.web._ingest"
TARGETS: Final = (
    ("ingest_10k", "HTTP ingest, 10k-trade JSON Lines batches", ">= 0.5 x ref"),
    ("ingest_100k", "HTTP ingest, 100k-trade JSON Lines batches", ">= 0.5 x ref"),
    ("ingest_p50", "one-trade POST, p50, 100 WebSockets open", "<= 5 ms"),
    ("ingest_p99", "one-trade POST, p99, 100 WebSockets open", "<= 25 ms"),
    ("ingest_fresh_p50", "POST answer -> analytics_update, median", "<= 1 s"),
    ("ingest_fresh_worst", "POST answer -> analytics_update, worst", "<= 2 s"),
    ("ingest_fresh_rest", "next REST GET shows the POSTed trade", "all POSTs"),
)
BATCHES: Final = ((10_000, 10), (100_000, 3))
"""(trades per batch, batches) of the throughput target."""
WARM_UP_TRADES: Final = 100
"""One untimed batch of this many on each side first (the server's first import, the store's pages)."""
LATENCY_POSTS: Final = 300
LATENCY_WARM_UP: Final = 20
WS_CLIENTS: Final = 100
FRESH_POSTS: Final = 20
FRESH_GAP: Final = 1.5
"""Fewest seconds from one freshness POST to the next."""
FRESH_AFTER_UPDATE: Final = 1.2
"""Fewest seconds from the client's last update to the next POST (the server sends at most one a second)."""
FRESH_AGE: Final = 5
"""The freshness trades are 5 to 35 s before NOW: inside the 24h window of the server's fixed clock."""
FRESH_TIMEOUT: Final = 5.0
"""Longest wait for the update showing a trade (a miss counts as worse than any target)."""
PUSH_INTERVAL: Final = 3600.0
"""No periodic push during the measurement: every update a client gets is one an import caused."""
LISTEN_SECONDS: Final = 600.0
"""Upper bound of the WebSocket clients' span; they are stopped as soon as the POSTs are done."""
READY_TIMEOUT: Final = 180.0
CLI_TIMEOUT: Final = 900.0
POST_TIMEOUT: Final = 600.0
TRADES_PATH: Final = "/api/v1/ingest/trades"
DASHBOARD_PATH: Final = "/api/v1/analytics/dashboard"
NDJSON: Final = {"Content-Type": "application/x-ndjson"}
CENT: Final = 10_000
"""Micro-USDC in a cent: volumes are whole cents, so the dashboard's rounded volume grows by exactly them."""
SAME_VOLUME: Final = 0.006
"""Largest difference (USDC) between two dashboard volumes read as equal (they are rounded to cents)."""


@dataclass(frozen=True, slots=True)
class Trade:
    """One new trade; volume and pnl in micro-USDC."""

    trade_id: str
    user_id: str
    ts: int
    volume: int
    pnl: int

    def line(self) -> str:
        """The trade as one JSON Lines row (amounts as plain JSON numbers)."""
        return (
            f'{{"trade_id":"{self.trade_id}","user_id":"{self.user_id}","ts":"{iso(self.ts)}",'
            f'"volume_usdc":{_decimal(self.volume)},"pnl_usdc":{_decimal(self.pnl)}}}\n'
        )


class Trades:
    """New trades of the dataset's users, deterministic for a seed, each with a trade id of its own."""

    def __init__(self, users_csv: Path, now: int, seed: int = SEED) -> None:
        with users_csv.open(newline="") as f:
            self.users = [row["user_id"] for row in csv.DictReader(f)]
        self.now = now
        self.rng = np.random.default_rng([seed, 14])

    def make(self, prefix: str, count: int, min_age: int = 0, max_age: int = DAYS * DAY - 1) -> list[Trade]:
        """`count` trades with ids `<prefix>-<n>`, aged min_age .. max_age seconds before now."""
        who = self.rng.integers(0, len(self.users), count)
        age = self.rng.integers(min_age, max_age + 1, count)
        cents = self.rng.integers(100, 500_000, count)  # 1 to 5,000 USDC
        pnl = (cents * self.rng.normal(0, 0.05, count)).astype(np.int64)
        return [
            Trade(
                f"{prefix}-{i:07d}",
                self.users[int(who[i])],
                self.now - int(age[i]),
                int(cents[i]) * CENT,
                int(pnl[i]) * CENT,
            )
            for i in range(count)
        ]

    def write(self, path: Path, prefix: str, count: int) -> Path:
        """A JSON Lines file of `count` new trades."""
        path.write_text("".join(t.line() for t in self.make(prefix, count)))
        return path


def measure(
    source: Path, users_csv: Path, folder: Path, now: int, log: Log
) -> tuple[list[Row], dict[str, Any]]:
    """One row per ingest target (measured, or failed/skipped with the reason) and the raw figures."""
    rows: dict[str, Row] = {}
    details: dict[str, Any] = {}
    if not built(MODULE):
        reason = f"door not built yet ({MODULE} is missing)"
        log(f"  ingest: {reason}")
        return [skipped(key, what, target, reason) for key, what, target in TARGETS], details
    reason = "not reached"
    try:
        _measure(source, users_csv, folder / "ingest", now, log, rows, details)
    except Exception as exc:  # reported as failed rows: the rest of the suite goes on
        reason = describe(exc)
        log(f"  ingest: FAILED: {reason}")
        details["error"] = reason
    return [rows.get(key) or failed(key, what, target, reason) for key, what, target in TARGETS], details


def _measure(
    source: Path,
    users_csv: Path,
    folder: Path,
    now: int,
    log: Log,
    rows: dict[str, Row],
    details: dict[str, Any],
) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    trades = Trades(users_csv, now)
    files = {
        size: [trades.write(folder / f"batch-{size}-{n}.jsonl", f"b{size}n{n}", size) for n in range(count)]
        for size, count in BATCHES
    }
    warm_up = trades.write(folder / "warm-up.jsonl", "w", WARM_UP_TRADES)
    log(f"  ingest: copying the dataset's store twice ({source.stat().st_size / 1e6:,.0f} MB) ...")
    served, reference = folder / "served.db", folder / "cli.db"
    copy_store(source, served)
    copy_store(source, reference)
    key = api_key(served, "benchmark-ingest", ("read", "ingest"))
    port = free_port()
    log("  ingest: starting the app (it loads the index first) ...")
    with (
        serving(
            ["benchmarks.web_server", str(served), str(now), str(port), str(PUSH_INTERVAL)],
            folder / "server.log",
            port,
        ),
        httpx.Client(
            base_url=f"http://127.0.0.1:{port}",
            headers={"Authorization": f"Bearer {key}"},
            timeout=POST_TIMEOUT,
        ) as client,
    ):
        part = Part(rows, details, log)
        part.run(
            "throughput",
            TARGETS[:2],
            lambda: throughput(client, reference, warm_up, files, log, rows, details),
        )
        with listeners(port, key, folder, log) as clients:
            started = time.monotonic()
            part.run("latency", TARGETS[2:4], lambda: latency(client, trades, log, rows, details))
            between = time.monotonic()
            part.run(
                "freshness", TARGETS[4:], lambda: freshness(client, port, key, trades, log, rows, details)
            )
            ended = time.monotonic()
        summary = clients.summary({"latency": (started, between), "freshness": (between, ended)})
        details["listeners"] = summary
        log(f"  ingest: {summary['text']}")
        for k in ("ingest_p50", "ingest_p99"):
            row = rows[k]
            note = f"{row.note}; {summary['text']}".lstrip("; ")
            passed = row.passed if summary["ok"] else False
            rows[k] = Row(**{**_fields(row), "note": note, "passed": passed})


@dataclass(frozen=True, slots=True)
class Part:
    """Runs one part of the measurement; a failure becomes failed rows for its targets, and the
    parts after it still run."""

    rows: dict[str, Row]
    details: dict[str, Any]
    log: Log

    def run(self, name: str, targets: tuple[tuple[str, str, str], ...], action: Callable[[], None]) -> None:
        """Run `action`; if it raises, its `targets` fail with the reason."""
        try:
            action()
        except Exception as exc:
            self.details[f"{name}_error"] = reason = describe(exc)
            self.log(f"  ingest {name}: FAILED: {reason}")
            for key, what, target in targets:
                self.rows[key] = failed(key, what, target, reason)


def throughput(
    client: httpx.Client,
    reference: Path,
    warm_up: Path,
    files: dict[int, list[Path]],
    log: Log,
    rows: dict[str, Row],
    details: dict[str, Any],
) -> None:
    """The same files over HTTP and through the CLI, interleaved; a row per batch size."""
    post_file(client, warm_up, WARM_UP_TRADES)
    cli_import(reference, warm_up, WARM_UP_TRADES)
    measured: dict[str, Any] = details.setdefault("throughput", {})
    for (size, _), (key, what, _target) in zip(BATCHES, TARGETS[:2], strict=True):
        http: list[float] = []
        cli: list[float] = []
        log(f"  ingest: {len(files[size])} batches of {size:,} trades, HTTP and CLI interleaved ...")
        for n, path in enumerate(files[size]):
            for side in ("cli", "http") if n % 2 == 0 else ("http", "cli"):
                if side == "http":
                    http.append(post_file(client, path, size))
                else:
                    cli.append(cli_import(reference, path, size))
        http_rate = median([size / s for s in http])
        cli_rate = median([size / s for s in cli])
        measured[str(size)] = {"http_seconds": http, "cli_seconds": cli}
        log(
            f"  ingest: {size:,}-trade batches: HTTP {http_rate:,.0f} trades/s, CLI {cli_rate:,.0f} trades/s "
            f"(medians of {len(http)})"
        )
        rows[key] = versus(
            key,
            what,
            http_rate,
            "trades/s",
            cli_rate,
            "(CLI import, same files)",
            0.5,
            at_least=True,
            note=f"median of {len(http)} batches each side, interleaved; HTTP {min(http):.3f} .. "
            f"{max(http):.3f} s a batch, CLI (process start included) {min(cli):.3f} .. {max(cli):.3f} s",
        )


def post_file(client: httpx.Client, path: Path, count: int) -> float:
    """POST a JSON Lines file of `count` new trades; the seconds from send to answer."""
    body = path.read_bytes()
    started = time.perf_counter()
    answer = client.post(TRADES_PATH, content=body, headers=NDJSON)
    seconds = time.perf_counter() - started
    inserted(answer, count)
    return seconds


def inserted(answer: httpx.Response, count: int) -> dict[str, Any]:
    """The ingest answer's JSON, checked: 200 and `count` trades inserted."""
    if answer.status_code != 200:
        raise RuntimeError(f"ingest answered {answer.status_code}: {answer.text[:500]}")
    body: dict[str, Any] = answer.json()
    if body.get("trades_inserted") != count:
        raise RuntimeError(f"ingest inserted {body.get('trades_inserted')} trades of {count}: {body}")
    return body


def cli_command() -> list[str]:
    """`cymetica-mcp` beside this interpreter (the venv's script), else `python -m cymetica_mcp`."""
    script = Path(sys.executable).with_name("cymetica-mcp")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "cymetica_mcp"]


def cli_import(store: Path, path: Path, count: int) -> float:
    """`cymetica-mcp --db STORE import --trades FILE --format jsonl`; its wall-clock seconds."""
    command = [*cli_command(), "--db", str(store), "import", "--trades", str(path), "--format", "jsonl"]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False, cwd=ROOT, timeout=CLI_TIMEOUT)
    seconds = time.perf_counter() - started
    found = re.search(r"trades: (\d+) inserted", done.stdout)
    if done.returncode != 0 or found is None or int(found.group(1)) != count:
        raise RuntimeError(
            f"CLI import exited {done.returncode}: {(done.stdout + done.stderr).strip()[-1000:]}"
        )
    return seconds


def latency(
    client: httpx.Client, trades: Trades, log: Log, rows: dict[str, Row], details: dict[str, Any]
) -> None:
    """Sequential one-trade POSTs; p50 and p99 of the send-to-answer time."""
    log(f"  ingest: {LATENCY_POSTS} one-trade POSTs, {WS_CLIENTS} WebSocket clients listening ...")
    for trade in trades.make("lw", LATENCY_WARM_UP):
        inserted(client.post(TRADES_PATH, content=trade.line(), headers=NDJSON), 1)
    times: list[float] = []
    for trade in trades.make("l", LATENCY_POSTS):
        body = trade.line()
        started = time.perf_counter()
        answer = client.post(TRADES_PATH, content=body, headers=NDJSON)
        times.append(time.perf_counter() - started)
        inserted(answer, 1)
    ms = [t * 1e3 for t in times]
    details["latency_ms"] = ms
    p50, p90, p99 = median(ms), _quantile(ms, 0.9), _quantile(ms, 0.99)
    log(
        f"  ingest: one-trade POST p50 {p50:.2f} ms, p90 {p90:.2f} ms, p99 {p99:.2f} ms, max {max(ms):.2f} ms"
    )
    extra = WARM_UP_TRADES + sum(size * count for size, count in BATCHES)
    note = (
        f"{len(ms)} sequential POSTs (after {LATENCY_WARM_UP} untimed), keep-alive, into the dataset's "
        f"store plus the throughput part's {extra:,} trades; p90 {p90:.2f} ms, max {max(ms):.2f} ms"
    )
    for (key, what, _), value, limit in zip(TARGETS[2:4], (p50, p99), (5, 25), strict=True):
        rows[key] = absolute(key, what, value, "ms", limit, note=note)


def volume(dashboard: dict[str, Any]) -> float:
    """A dashboard's trading volume (USDC, rounded to cents)."""
    return float(dashboard["metrics"]["trading_volume"]["value"])


def freshness(
    client: httpx.Client,
    port: int,
    key: str,
    trades: Trades,
    log: Log,
    rows: dict[str, Row],
    details: dict[str, Any],
) -> None:
    """POST -> analytics_update for a client of all/24h, and whether the next REST GET shows the trade."""
    from websockets.sync.client import connect

    log(f"  ingest: freshness, {FRESH_POSTS} POSTs at least {FRESH_GAP:g} s apart ...")
    updates: queue.Queue[tuple[float, float]] = queue.Queue()  # (arrival, volume) of all/24h updates

    def read(ws: Any) -> None:
        try:
            while True:
                text = ws.recv()
                at = time.monotonic()
                message = json.loads(text)
                if message.get("type") == "analytics_update":
                    metrics = message["data"]["metrics"]
                    if (metrics["filter"], metrics["period"]) == ("all", "24h"):
                        updates.put((at, volume(message["data"])))
        except Exception:  # closed: the measurement is over (or it fails by timing out)
            return

    def dashboard() -> float:
        answer = client.get(DASHBOARD_PATH, params={"filter": "all", "period": "24h"})
        if answer.status_code != 200:
            raise RuntimeError(f"REST dashboard answered {answer.status_code}: {answer.text[:500]}")
        return volume(answer.json())

    url = f"ws://127.0.0.1:{port}/ws/analytics?token={key}"
    seconds: list[float | None] = []
    shown: list[bool] = []
    early = 0
    with connect(url, max_size=2**24, open_timeout=60, ping_interval=None) as ws:
        ws.send(json.dumps({"type": "set_preferences", "filter": "all", "period": "24h"}))
        reader = threading.Thread(target=read, args=(ws,), daemon=True)
        reader.start()
        try:
            last_update = updates.get(timeout=60)[0]  # the greeting's update
        except queue.Empty:
            raise RuntimeError("no analytics_update for all/24h within 60 s of connecting") from None
        time.sleep(0.5)
        while not updates.empty():
            last_update = updates.get_nowait()[0]
        expected = dashboard()
        next_post = last_update + FRESH_AFTER_UPDATE
        for trade in trades.make("f", FRESH_POSTS, min_age=FRESH_AGE, max_age=FRESH_AGE + 30):
            time.sleep(max(0.0, next_post - time.monotonic()))
            expected += trade.volume / 1e6
            posted = time.monotonic()
            inserted(client.post(TRADES_PATH, content=trade.line(), headers=NDJSON), 1)
            answered = time.monotonic()
            shown.append(abs(dashboard() - expected) < SAME_VOLUME)
            arrived = None
            while arrived is None:
                try:
                    at, seen = updates.get(timeout=max(0.0, answered + FRESH_TIMEOUT - time.monotonic()))
                except queue.Empty:
                    break
                if abs(seen - expected) < SAME_VOLUME:
                    arrived = at
            if arrived is None:
                seconds.append(None)
                next_post = time.monotonic() + FRESH_AFTER_UPDATE
                continue
            early += arrived < answered
            seconds.append(max(0.0, arrived - answered))
            next_post = max(posted + FRESH_GAP, arrived + FRESH_AFTER_UPDATE)
    details["freshness_s"] = seconds
    details["rest_shown"] = shown
    got = [s for s in seconds if s is not None]
    missed = len(seconds) - len(got)
    p50 = median([s if s is not None else math.inf for s in seconds])  # a miss is slower than any
    log(
        f"  ingest: update after the answer: median {p50:.3f} s, worst "
        f"{max(got, default=math.nan):.3f} s, {missed} missed; REST showed {sum(shown)}/{len(shown)}"
    )
    note = (
        f"{len(seconds)} POSTs of one trade {FRESH_AGE} to {FRESH_AGE + 30} s before NOW, "
        f">= {FRESH_GAP:g} s apart, a client of all/24h (and the {WS_CLIENTS} others) listening; "
        + (
            f"{missed} of them had no update showing the trade within {FRESH_TIMEOUT:g} s"
            if missed
            else "each had its update"
        )
        + (f"; {early} arrived before the POST's answer (counted as 0)" if early else "")
    )
    worst = max(got) if got and not missed else math.inf  # a miss fails the worst case
    for (key, what, target), value, limit in zip(TARGETS[4:6], (p50, worst), (1, 2), strict=True):
        if math.isinf(value):
            rows[key] = failed(key, what, target, note)
        else:
            rows[key] = absolute(key, what, value, "s", limit, note=note)
    rows["ingest_fresh_rest"] = absolute(
        "ingest_fresh_rest",
        TARGETS[6][1],
        sum(shown),
        "POSTs",
        len(shown),
        at_least=True,
        note=f"of {len(shown)}: the dashboard's trading volume had grown by the trade's volume",
    )


class Listeners:
    """The WebSocket clients of `benchmarks.fanout`, in a process of their own, while POSTs are sent."""

    def __init__(self, port: int, key: str, folder: Path) -> None:
        self.ready = folder / "listeners.ready"
        self.stop = folder / "listeners.stop"
        self.out = folder / "listeners.out"
        self.err = folder / "listeners.err"
        for path in (self.ready, self.stop):
            path.unlink(missing_ok=True)
        command = [sys.executable, "-m", "benchmarks.fanout", "--port", str(port), "--token", key]
        command += ["--clients", str(WS_CLIENTS), "--seconds", str(LISTEN_SECONDS)]
        command += ["--ready-timeout", str(READY_TIMEOUT), "--ready-file", str(self.ready)]
        command += ["--stop-file", str(self.stop)]
        with self.out.open("wb") as out, self.err.open("wb") as err:
            self.process = subprocess.Popen(
                command, stdout=out, stderr=err, cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT))
            )
        self.result: dict[str, Any] = {}
        self.problem = ""

    def wait_ready(self) -> int:
        """Wait until the clients are live (or gave up); how many are."""
        deadline = time.monotonic() + READY_TIMEOUT + 30
        while not self.ready.exists():
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"the WebSocket clients exited with {self.process.returncode}: {self._err()}"
                )
            if time.monotonic() > deadline:
                raise RuntimeError("the WebSocket clients did not get ready")
            time.sleep(0.1)
        return int(self.ready.read_text().split()[0])

    def finish(self) -> None:
        """Stop the clients and read what they saw (or why not, in `problem`)."""
        self.stop.touch()
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            self.problem = "the WebSocket clients did not stop"
            return
        if self.process.returncode != 0:
            self.problem = f"the WebSocket clients exited with {self.process.returncode}: {self._err()}"
            return
        try:
            self.result = json.loads(self.out.read_text().strip().splitlines()[-1])
        except (ValueError, IndexError) as exc:
            self.problem = f"the WebSocket clients' report is unreadable ({exc}): {self._err()}"

    def summary(self, spans: dict[str, tuple[float, float]]) -> dict[str, Any]:
        """Whether every client was live through every span, and how many updates each span brought."""
        if self.problem:
            return {"ok": False, "text": self.problem}
        r = self.result
        start, end = r["window"]
        counts = {
            name: sum(1 for times in r["updates"] for t in times if a <= t <= b)
            for name, (a, b) in spans.items()
        }
        inside = all(start <= a and b <= end for a, b in spans.values())
        ok = r["ready"] == WS_CLIENTS and r["error_count"] == 0 and inside
        text = (
            f"{r['ready']}/{WS_CLIENTS} WebSocket clients live over the 9 pairs"
            + ("" if inside else " (NOT through all the POSTs)")
            + f", {r['error_count']} client errors"
            + (f" (first: {r['errors'][0]})" if r["errors"] else "")
            + "; updates they got: "
            + ", ".join(f"{n:,} during the {name} POSTs" for name, n in counts.items())
        )
        return {"ok": ok, "text": text, "ready": r["ready"], "errors": r["errors"], "updates": counts}

    def _err(self) -> str:
        return self.err.read_text(errors="replace")[-2000:]


@contextmanager
def listeners(port: int, key: str, folder: Path, log: Log) -> Iterator[Listeners]:
    """`WS_CLIENTS` WebSocket clients, live for the body; stopped after it."""
    log(f"  ingest: connecting {WS_CLIENTS} WebSocket clients ...")
    clients = Listeners(port, key, folder)
    try:
        ready = clients.wait_ready()
        if ready != WS_CLIENTS:
            raise RuntimeError(f"only {ready} of {WS_CLIENTS} WebSocket clients got live: {clients._err()}")
        yield clients
    except BaseException:
        clients.process.kill()
        clients.process.wait()
        raise
    clients.finish()


def main(argv: list[str] | None = None) -> int:
    """Measure the ingest targets alone on a dataset's store; print the rows."""
    parser = argparse.ArgumentParser(description="cymetica-mcp ingest benchmarks (issue 14).")
    parser.add_argument("--size", choices=sorted(SIZES), default="quick")
    args = parser.parse_args(argv)
    begun = time.perf_counter()

    def log(message: str) -> None:
        print(f"[{time.perf_counter() - begun:7.1f}s] {message}", flush=True)

    data = dataset(SIZES[args.size], log=log)
    source = ensure_store(data, log)
    with tempfile.TemporaryDirectory(dir=data.folder, prefix="ingest-") as scratch:
        rows, details = measure(source, data.users_csv, Path(scratch), NOW, log)
    print()
    print(table(rows))
    for name, error in details.items():
        if name.endswith("error"):
            print(f"{name}: {error}")
    return 2 if any(row.passed is False for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
