"""`cymetica-mcp backup PATH` and `cymetica-mcp check`: a consistent copy, and a check of the store."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cymetica_mcp.config import Settings
from cymetica_mcp.store import open_store


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


def _backup(args: argparse.Namespace, settings: Settings) -> int:
    version = open_store(settings.db).backup(args.path)
    print(f"backed up {settings.db} to {args.path} at data version {version}")
    return 0


def _check(args: argparse.Namespace, settings: Settings) -> int:
    problems = open_store(settings.db).check()
    if not problems:
        print(f"{settings.db}: ok (integrity, foreign keys, packed chunks, totals)")
        return 0
    print(f"{settings.db}: {len(problems)} problem(s)", file=sys.stderr)
    for problem in problems:
        print(f"  {problem}", file=sys.stderr)
    return 2
