"""`cymetica-mcp backup PATH`, `cymetica-mcp check` and `cymetica-mcp copy-store`: a consistent copy, a
check of the store, and a whole store copied into another (SQLite to PostgreSQL, or back to a file)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Final

from cymetica_mcp.config import Settings, shown
from cymetica_mcp.store import CopyReport, copy_store, is_postgres, open_store

PROGRESS_FROM: Final = 100_000
"""Copies of at least this many trades show their progress on stderr."""


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `backup` and `check`."""
    backup = commands.add_parser(
        "backup", help="copy the store to a new file, consistently, while servers run and imports commit"
    )
    backup.add_argument("path", type=Path, help="the new file (must not exist)")
    backup.set_defaults(run=_backup)
    check = commands.add_parser(
        "check", help="check the store: integrity, foreign keys, packed chunks against the rows, totals"
    )
    check.set_defaults(run=_check)
    copy = commands.add_parser(
        "copy-store",
        help="copy a whole store (users, trades, API keys, the JWT secret) into an empty one: "
        "SQLite to PostgreSQL, or PostgreSQL to a new SQLite file",
        description="Copies users, trades (same ids and order), API keys (hashes, scopes, expiry, times) and "
        "settings (the JWT secret) exactly, from one consistent read of the source, in one all-or-nothing "
        "transaction on the target (a failed copy leaves it as it was). The target's data version becomes "
        "the source's. --db is not used.",
    )
    copy.add_argument(
        "--from", dest="source", required=True, help="the store to copy: a SQLite file or postgresql://..."
    )
    copy.add_argument(
        "--to",
        dest="target",
        required=True,
        help="the store to fill: a SQLite file (created) or postgresql://...",
    )
    copy.add_argument(
        "--replace",
        action="store_true",
        help="empty the target first if it holds anything (in the copy's transaction: a failed copy keeps "
        "what it held); without it a target that holds anything is refused",
    )
    copy.set_defaults(run=_copy_store)


def _backup(args: argparse.Namespace, settings: Settings) -> int:
    version = open_store(settings.db).backup(args.path)
    print(f"backed up {settings.store_shown} to {args.path} at data version {version}")
    return 0


def _check(args: argparse.Namespace, settings: Settings) -> int:
    problems = open_store(settings.db).check()
    if not problems:
        checked = (
            "data version, dense trade ids, totals against the rows; PostgreSQL enforces the constraints"
            " itself, and its pages and indexes are checked by its own tool: pg_amcheck DATABASE"
            if is_postgres(settings.db)
            else "integrity, foreign keys, packed chunks, totals"
        )
        print(f"{settings.store_shown}: ok ({checked})")
        return 0
    print(f"{settings.store_shown}: {len(problems)} problem(s)", file=sys.stderr)
    for problem in problems:
        print(f"  {problem}", file=sys.stderr)
    return 2


def _copy_store(args: argparse.Namespace, settings: Settings) -> int:
    report = copy_store(
        args.source, args.target, replace=args.replace, progress=_progress(shown(args.target))
    )
    _print_copy(report)
    return 0


def _print_copy(report: CopyReport) -> None:
    if report.replaced is not None:
        print(f"emptied {report.target} first: it held {report.replaced}")
    print(
        f"copied {report.source} to {report.target}: {report.copied}; "
        f"in {report.seconds:.2f} s ({report.rate:,.0f} trades/s)"
    )


def _progress(target: str) -> Callable[[int, int], None]:
    """Progress on stderr for a large copy: a line at each tenth (a bar on a terminal)."""
    shown_tenths: set[int] = set()

    def show(done: int, total: int) -> None:
        if total < PROGRESS_FROM:
            return
        tenth = done * 10 // total
        if sys.stderr.isatty():
            print(
                f"\rcopying trades into {target}: {done:,} of {total:,}",
                end="" if done < total else "\n",
                file=sys.stderr,
                flush=True,
            )
        elif tenth not in shown_tenths:
            shown_tenths.add(tenth)
            print(
                f"copying trades into {target}: {done:,} of {total:,} ({tenth * 10}%)",
                file=sys.stderr,
                flush=True,
            )

    return show
