"""The command line of the soak: flags, one run, the summary printed (and written with --json)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from benchmarks.soak._run import SoakConfig, soak


def parse(argv: list[str] | None) -> tuple[SoakConfig, Path | None, Path | None]:
    """The run's configuration, where to write the JSON summary, and where to keep the run's files."""
    default = SoakConfig()
    parser = argparse.ArgumentParser(prog="python -m benchmarks.soak", description=__doc__)
    parser.add_argument("--seconds", type=float, default=default.seconds, help="length of the load phase")
    parser.add_argument("--json", type=Path, help="write the summary as JSON to this file")
    parser.add_argument(
        "--keep", type=Path, help="keep the store, the replay and the server's log in this folder"
    )
    parser.add_argument("--rest-clients", type=int, default=default.rest_clients)
    parser.add_argument("--ws-clients", type=int, default=default.ws_clients)
    parser.add_argument("--mcp-sessions", type=int, default=default.mcp_sessions)
    parser.add_argument(
        "--import-every", type=float, default=default.import_every, help="seconds between imports"
    )
    parser.add_argument("--trades-per-import", type=float, default=default.trades_per_import)
    parser.add_argument(
        "--push-interval", type=float, default=default.push_interval, help="the server's --push-interval"
    )
    parser.add_argument(
        "--rss-growth-mb",
        type=float,
        help="largest allowed growth of the server's RSS (default: 48 MB, plus 1 MB a minute beyond two)",
    )
    parser.add_argument("--seed", type=int, default=default.seed)
    args = parser.parse_args(argv)
    if args.seconds <= 0 or min(args.rest_clients, args.ws_clients, args.mcp_sessions) < 0:
        parser.error("--seconds must be positive and client counts not negative")
    config = SoakConfig(
        seconds=args.seconds,
        rest_clients=args.rest_clients,
        ws_clients=args.ws_clients,
        mcp_sessions=args.mcp_sessions,
        import_every=args.import_every,
        trades_per_import=args.trades_per_import,
        push_interval=args.push_interval,
        rss_growth_mb=args.rss_growth_mb,
        seed=args.seed,
    )
    return config, args.json, args.keep


def describe(summary: dict[str, Any]) -> str:
    """The summary in a few lines."""
    server = summary["server"]
    rss, fds = server["rss_mb"], server["fds"]
    versions = summary["versions"]
    lines = [
        f"soak: {summary['load_seconds']:g} s of load, {summary['wall_seconds']:g} s in all "
        f"({json.dumps(summary['phase_seconds'])}): " + ("PASSED" if summary["passed"] else "FAILED"),
        "  requests per door:",
        *(f"    {door:7} {json.dumps(counts)}" for door, counts in summary["requests"].items()),
        f"  per second: {json.dumps(summary['per_second'])}",
        f"  dashboards received: {json.dumps(summary['dashboards_received'])}",
        f"  documented 429s: {json.dumps(summary['rate_limited_429'])}",
        f"  errors: {json.dumps(summary['errors'])}",
        f"  data versions: {versions['start']} -> {versions['final']} ({versions['seen']} seen by clients; "
        f"imports {json.dumps(versions['imports'])}); {versions['ws_connections']} WebSocket connections, "
        f"{versions['ws_steps_back']} steps back, {versions['ws_clients_on_final']} clients on the final version",
        f"  server RSS: start {rss['start']} MB, peak {rss['peak']} MB, end {rss['end']} MB "
        f"(growth {rss['growth']:+g} MB, bound {rss['bound']:g}); fds: start {fds['start']}, peak {fds['peak']}, "
        f"end {fds['end']}; threads {json.dumps(server['threads'])}",
        "  checks:",
        *(f"    [{'ok' if c['ok'] else 'FAIL'}] {c['name']}: {c['detail']}" for c in summary["checks"]),
    ]
    for kind, examples in summary["error_examples"].items():
        lines += [f"  {kind}:", *(f"    {e}" for e in examples)]
    problems = summary["verification"]["problems"]
    lines += [f"  mismatch: {p}" for p in problems]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run one soak; exit status 0 when every check passed, 1 otherwise."""
    config, output, keep = parse(argv)
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
        summary = asyncio.run(soak(config, keep))
    else:
        with tempfile.TemporaryDirectory(prefix="cymetica-soak-") as folder:
            summary = asyncio.run(soak(config, Path(folder)))
    print(describe(summary), flush=True)
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(json.dumps(summary, indent=1) + "\n")
        print(f"summary written to {output}")
    return 0 if summary["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
