"""`cymetica-mcp index rebuild|status`: the index a server maps at start instead of rebuilding it."""

from __future__ import annotations

import argparse
import time

from cymetica_mcp.config import Settings
from cymetica_mcp.engine import HORIZON_DAYS, kept_info, rebuild_index
from cymetica_mcp.errors import AnalyticsError
from cymetica_mcp.store import open_store
from cymetica_mcp.windows import iso


def add_horizon(parser: argparse.ArgumentParser) -> None:
    """The `--horizon-days` option of every command that builds an index."""
    parser.add_argument(
        "--horizon-days",
        type=int,
        default=HORIZON_DAYS,
        help="days of trades the index holds; older ones stay in the store and an as_of that needs them is "
        f"refused (0: all history; else at least 90, the 30d dashboard's three windows; default: {HORIZON_DAYS})",
    )


def horizon_days(args: argparse.Namespace) -> int:
    """The checked `--horizon-days`."""
    days: int = args.horizon_days
    if days != 0 and days < 90:
        raise AnalyticsError(
            "invalid_argument",
            f"--horizon-days {days}: accepted: 0 (all history) or at least 90 (a 30d dashboard reads 90 days)",
        )
    return days


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `index rebuild` and `index status`."""
    index = commands.add_parser(
        "index", help="the ready-built index kept beside the store (<db>.index), which servers map at start"
    )
    actions = index.add_subparsers(dest="action", required=True, metavar="ACTION")
    rebuild = actions.add_parser(
        "rebuild", help="build the index from the store's rows and keep it beside the store (servers may run)"
    )
    add_horizon(rebuild)
    rebuild.set_defaults(run=_rebuild)
    status = actions.add_parser("status", help="what the kept index holds, and whether it is current")
    status.set_defaults(run=_status)


def _rebuild(args: argparse.Namespace, settings: Settings) -> int:
    store = open_store(settings.db)
    began = time.perf_counter()
    kept = rebuild_index(store, horizon_days(args), settings.now)
    print(
        f"kept the index of {settings.store_shown} at {kept.path}: {kept.trades:,} trades since {iso(kept.cutoff)}, "
        f"data version {kept.version}, {kept.bytes / 1e6:,.1f} MB, in {time.perf_counter() - began:.2f} s"
    )
    return 0


def _status(args: argparse.Namespace, settings: Settings) -> int:
    store = open_store(settings.db)
    kept = kept_info(store)
    version = store.data_version()
    if kept is None:
        print(f"{settings.store_shown}: no kept index (the next server builds it from the rows and keeps it)")
        return 1
    horizon = f"{kept.horizon // 86_400} days" if kept.horizon else "all history"
    state = (
        "current" if kept.version == version else f"behind the store's {version}: brought up to date on open"
    )
    if kept.version > version:
        state = f"ahead of the store's {version}: not used, rebuilt on open"
    print(
        f"{kept.path}: data version {kept.version} ({state}); {kept.trades:,} trades since {iso(kept.cutoff)} "
        f"(horizon {horizon}); {kept.bytes / 1e6:,.1f} MB"
    )
    return 0
