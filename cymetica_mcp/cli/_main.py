"""The command line: thin. It parses, calls the package and prints.

cymetica-mcp [--db PATH] [--log-level LEVEL] COMMAND ...
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from cymetica_mcp import __version__
from cymetica_mcp.cli import _index, _maintenance, _simulate
from cymetica_mcp.cli import _mcp as cli_mcp
from cymetica_mcp.cli import _web as cli_web
from cymetica_mcp.config import Settings, load_settings, parse_now
from cymetica_mcp.engine import Engine, refresh_index, system_clock
from cymetica_mcp.errors import AnalyticsError
from cymetica_mcp.ingest import DemoSpec, ImportReport, import_files, write_demo
from cymetica_mcp.models import Dashboard, Filter, Period
from cymetica_mcp.store import open_store
from cymetica_mcp.web import install_redaction

log = logging.getLogger("cymetica_mcp")

Command = Callable[[argparse.Namespace, Settings], int]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cymetica-mcp", description="Exact live analytics of a trading platform."
    )
    parser.add_argument("--version", action="version", version=f"cymetica-mcp {__version__}")
    parser.add_argument(
        "--db",
        help="the store: a SQLite file or postgresql://user@host:port/db (default: $CYMETICA_DB or ./cymetica.db)",
    )
    parser.add_argument(
        "--log-level", help="DEBUG, INFO, WARNING or ERROR (default: $CYMETICA_LOG_LEVEL or INFO)"
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    imp = commands.add_parser("import", help="import users and/or trades (CSV with header, or JSON Lines)")
    imp.add_argument("--users", type=Path, help="users file: user_id, kind, capital_usdc, created_at")
    imp.add_argument("--trades", type=Path, help="trades file: trade_id, user_id, ts, volume_usdc, pnl_usdc")
    imp.add_argument("--format", choices=["csv", "jsonl"], help="override detection by file extension")
    imp.add_argument(
        "--no-index",
        action="store_true",
        help="leave the index kept beside the store (<db>.index) as it is; by default an import brings it up to date",
    )
    imp.set_defaults(run=_import)

    dash = commands.add_parser("dashboard", help="compute the analytics dashboard")
    dash.add_argument("--filter", default="all", help="all, humans or agents (default: all)")
    dash.add_argument("--period", default="24h", help="24h, 7d or 30d (default: 24h)")
    dash.add_argument("--now", help="evaluation instant, ISO 8601 UTC (default: $CYMETICA_NOW or the clock)")
    dash.add_argument("--json", action="store_true", help="print the REST JSON object instead of a summary")
    dash.set_defaults(run=_dashboard)

    demo = commands.add_parser("demo", help="generate deterministic demo data ending now and import it")
    demo.add_argument("--users", type=int, default=DemoSpec.users, help=f"default {DemoSpec.users}")
    demo.add_argument("--trades", type=int, default=DemoSpec.trades, help=f"default {DemoSpec.trades}")
    demo.add_argument("--days", type=int, default=DemoSpec.days, help=f"default {DemoSpec.days}")
    demo.add_argument("--seed", type=int, default=DemoSpec.seed, help=f"default {DemoSpec.seed}")
    demo.add_argument("--now", help="last instant of the data, ISO 8601 UTC (default: the clock)")
    demo.set_defaults(run=_demo)
    _extend(commands)
    return parser


def _extend(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Commands of the other doors register here: one `add_commands(commands)` line per door module."""
    cli_mcp.add_commands(commands)
    cli_web.add_commands(commands)
    _simulate.add_commands(commands)
    _maintenance.add_commands(commands)
    _index.add_commands(commands)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    args = _parser().parse_args(argv)
    try:
        settings = load_settings(db=args.db, log_level=args.log_level)
        logging.basicConfig(
            level=settings.log_level.upper(),
            stream=sys.stderr,
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        )
        install_redaction()  # no credential in any log line, whichever command logs it
        run: Command = args.run
        return run(args, settings)
    except AnalyticsError as exc:
        print(f"error ({exc.code}): {exc.message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # the reader went away (`| head`): stop quietly, as Unix tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except Exception as exc:  # a last resort: a clear line, the traceback only at DEBUG
        log.debug("unexpected failure", exc_info=True)
        print(f"error (internal): {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


def evaluation_instant(text: str | None, settings: Settings) -> int:
    """--now if given, else CYMETICA_NOW, else the clock."""
    if text:
        return parse_now(text)
    return settings.now if settings.now is not None else system_clock()


def _progress_bar(label: str) -> Callable[[int, int], None] | None:
    if not sys.stderr.isatty():
        return None

    def show(done: int, total: int) -> None:
        share = done / total if total else 1.0
        bar = "#" * int(share * 30)
        print(
            f"\r{label} [{bar:<30}] {share:6.1%}",
            end="" if done < total else "\n",
            file=sys.stderr,
            flush=True,
        )

    return show


def _report(report: ImportReport) -> None:
    print(
        f"users: {report.users_inserted} inserted, {report.users_updated} updated; "
        f"trades: {report.trades_inserted} inserted, {report.trades_present} already present; "
        f"{report.rows} rows in {report.seconds:.2f} s ({report.rate:,.0f} rows/s); data version {report.data_version}"
    )


def _import(args: argparse.Namespace, settings: Settings) -> int:
    store = open_store(settings.db)
    report = import_files(store, args.users, args.trades, args.format, _progress_bar("importing"))
    _report(report)
    if report.data_version and not args.no_index:
        kept = refresh_index(store, settings.now)  # a server started next maps it at once
        if kept is not None:
            print(f"kept index {kept.path} brought to data version {kept.version} ({kept.trades:,} trades)")
    return 0


def _dashboard(args: argparse.Namespace, settings: Settings) -> int:
    filter, period = Filter.parse(args.filter), Period.parse(args.period)
    now = evaluation_instant(args.now, settings)
    engine = Engine(open_store(settings.db))
    try:
        dashboard = engine.dashboard(filter, period, now)
    finally:
        engine.close()
    if args.json:
        print(json.dumps(dashboard.to_wire()))
    else:
        print(summary(dashboard))
    return 0


def summary(dashboard: Dashboard) -> str:
    """A readable, terminal-sized rendering of a dashboard."""
    m = dashboard.metrics
    lines = [f"Analytics for {m.filter.value}, last {m.period.value}, as of {m.timestamp}", ""]
    for card in (m.active_users, m.trading_volume, m.retention_rate, m.avg_capital, m.avg_roi):
        change = "n/a" if card.change is None else f"{card.change:+.1f}%"
        places = 1 if card.suffix == "%" else 2
        value = f"{card.value:,}" if isinstance(card.value, int) else f"{card.value:,.{places}f}"
        lines.append(f"  {card.label:<15} {value:>16} {card.suffix:<4}  change {change}")
    volumes = [p.total_volume for p in dashboard.volume_over_time]
    users = [p.total_users for p in dashboard.user_activity]
    lines += [
        "",
        f"  volume per bucket  {_spark(volumes)}  (max {max(volumes):,.2f} USDC)",
        f"  users per bucket   {_spark([float(u) for u in users])}  (max {max(users)})",
        "",
        "  ROI distribution   "
        + "  ".join(f"{b.range}: {b.count}" for b in dashboard.profitability_distribution),
    ]
    return "\n".join(lines)


def _spark(values: list[float]) -> str:
    ticks = " ▁▂▃▄▅▆▇█"
    top = max(values) or 1.0
    return "".join(ticks[round(v / top * (len(ticks) - 1))] for v in values)


def _demo(args: argparse.Namespace, settings: Settings) -> int:
    now = evaluation_instant(args.now, settings)
    spec = DemoSpec(users=args.users, trades=args.trades, days=args.days, seed=args.seed)
    for name in ("users", "trades", "days"):
        if getattr(spec, name) <= 0:
            raise AnalyticsError("invalid_argument", f"--{name} must be a positive whole number")
    store = open_store(settings.db)
    with tempfile.TemporaryDirectory() as folder:
        users, trades = write_demo(spec, now, Path(folder))
        _report(import_files(store, users, trades, progress=_progress_bar("importing demo")))
    print(f"demo store: {settings.store_shown}")
    return 0
