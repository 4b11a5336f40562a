"""`cymetica-mcp backup PATH` and `cymetica-mcp check`: a consistent copy, and a check of the store."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cymetica_mcp.config import Settings
from cymetica_mcp.store import is_postgres, open_store


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
