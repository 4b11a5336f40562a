"""Failed credentials under attack: what a flood of wrong keys costs the callers with good ones.

    python -m benchmarks.attack --size quick   # this part alone, on the dataset's store

One server (`benchmarks.web_server`, clock fixed at the dataset's NOW, 127.0.0.1 declared a trusted
proxy so that each attacking connection speaks for an address of its own through X-Forwarded-For) over
a copy of the dataset's store. A valid caller sends sequential REST dashboard requests (one keep-alive
connection, an address of its own) alone, then while 64 attacking connections send wrong keys at 560
requests/s in all (the rate of the attack the throttle was built against), three times in turn. The
target compares the valid caller's median latency under attack with its quiet median (the medians of
the three rounds), all measured in this run. The same
attack against a second server whose budget is out of reach (`--failed-auth-limit 1000000`) shows what
the throttle buys: there every wrong key costs a credential check.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any, Final

from benchmarks.data import NOW, SIZES, copy_store, dataset, ensure_store
from benchmarks.doors import DASHBOARD, ROOT, Log, api_key, free_port, serving
from benchmarks.report import Row, info, median, table, versus

TARGETS: Final = (("attack_p50", "valid REST p50 under a wrong-key flood / quiet", "<= 2 x"),)
ATTACKERS: Final = 64
ATTACK_RATE: Final = 560.0
SECONDS: Final = 4.0
ROUNDS: Final = 3
"""Quiet and attacked spans alternate this many times on each server; the target compares medians."""
WARMUP: Final = 1.0
VALID_ADDRESS: Final = "198.51.100.1"
WRONG_KEY: Final = "cym_" + "x" * 43
UNREACHABLE: Final = 1_000_000


def _load(port: int, headers: list[str], connections: int, rate: float | None) -> subprocess.Popen[str]:
    """Start the load generator (a process of its own) against 127.0.0.1:port."""
    command = [sys.executable, "-m", "benchmarks.load", "--port", str(port), "--path", DASHBOARD]
    command += ["--connections", str(connections), "--seconds", str(SECONDS), "--warmup", str(WARMUP)]
    if rate is not None:
        command += ["--rate", str(rate)]
    for header in headers:
        command += ["--header", header]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)


def _result(process: subprocess.Popen[str]) -> dict[str, Any]:
    out, err = process.communicate(timeout=120)
    if process.returncode != 0:
        raise RuntimeError(f"load generator failed: {err[-2000:]}")
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


def _phases(store: Path, port: int, key: str, failed_auth_limit: int | None) -> dict[str, Any]:
    """On one server: ROUNDS of the valid caller alone, then beside the attack."""
    valid = [f"Authorization: Bearer {key}", f"X-Forwarded-For: {VALID_ADDRESS}"]
    attack = [f"Authorization: Bearer {WRONG_KEY}", "X-Forwarded-For: 203.0.113.{connection}"]
    args = ["benchmarks.web_server", str(store), str(NOW), str(port), "3600", "--trusted-proxy", "127.0.0.1"]
    if failed_auth_limit is not None:
        args += ["--failed-auth-limit", str(failed_auth_limit)]
    rounds: list[dict[str, Any]] = []
    with serving(args, store.with_name(f"attack-server-{port}.log"), port):
        for _ in range(ROUNDS):
            quiet = _result(_load(port, valid, 1, None))
            attacker = _load(port, attack, ATTACKERS, ATTACK_RATE)
            under = _result(_load(port, valid, 1, None))
            rounds.append({"quiet": quiet, "under_attack": under, "attack": _result(attacker)})
    flood: Counter[str] = Counter()
    for part in rounds:
        flood.update(part["attack"]["statuses"])
    return {
        "rounds": rounds,
        "quiet_p50": median([part["quiet"]["latency_ms"]["p50"] for part in rounds]),
        "under_attack_p50": median([part["under_attack"]["latency_ms"]["p50"] for part in rounds]),
        "attack_rps": median([part["attack"]["rps"] for part in rounds]),
        "attack_statuses": dict(flood),
    }


def measure(store_path: Path, folder: Path, log: Log) -> tuple[list[Row], dict[str, Any]]:
    """The attack target's rows and raw figures, on a copy of the dataset's store."""
    store = copy_store(store_path, folder / "attack.db")
    key = api_key(store, "attack-bench")
    throttled = _phases(store, free_port(), key, None)
    open_door = _phases(store, free_port(), key, UNREACHABLE)
    details = {"throttled": throttled, "unthrottled": open_door}

    quiet, under = throttled["quiet_p50"], throttled["under_attack_p50"]
    flood = throttled["attack_statuses"]
    log(
        f"  valid p50 {quiet:.2f} ms quiet, {under:.2f} ms under {throttled['attack_rps']:.0f} wrong keys/s "
        f"({flood}); without the throttle {open_door['quiet_p50']:.2f} -> {open_door['under_attack_p50']:.2f} ms "
        f"({open_door['attack_statuses']})"
    )
    rows = [
        versus(
            "attack_p50",
            "valid REST p50 under a wrong-key flood",
            under,
            "ms",
            quiet,
            "(same caller, quiet)",
            2.0,
            note=f"medians of {ROUNDS} rounds; {ATTACKERS} addresses, {throttled['attack_rps']:.0f} wrong keys/s; "
            f"answers {flood}",
        ),
        info(
            "attack_p50_unthrottled",
            "the same without the throttle (budget out of reach)",
            open_door["under_attack_p50"] / open_door["quiet_p50"],
            "x",
            note=f"quiet {open_door['quiet_p50']:.2f} ms, under attack {open_door['under_attack_p50']:.2f} ms; "
            f"answers {open_door['attack_statuses']}",
        ),
    ]
    return rows, details


def main(argv: list[str] | None = None) -> int:
    """Run this part alone on the dataset of --size and print its rows."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--size", choices=sorted(SIZES), default="quick")
    args = parser.parse_args(argv)
    data = dataset(SIZES[args.size], log=print)
    ensure_store(data, log=print)
    with tempfile.TemporaryDirectory(dir=data.folder, prefix="attack-") as scratch:
        rows, _ = measure(data.store_path, Path(scratch), print)
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
