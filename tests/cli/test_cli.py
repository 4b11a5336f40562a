"""The command line as a user runs it: a real subprocess, real files, exit codes and output."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cymetica_mcp.engine import Engine
from cymetica_mcp.models import Filter, Period
from cymetica_mcp.store import SQLiteStore
from tests.conftest import NOW, NOW_ISO


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cymetica_mcp", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=60,
    )


def test_dashboard_json_is_exactly_the_engines_rest_object(demo_store: SQLiteStore) -> None:
    engine = Engine(demo_store)
    for f in Filter:
        for p in Period:
            done = cli(
                "--db",
                str(demo_store.path),
                "dashboard",
                "--filter",
                f,
                "--period",
                p,
                "--now",
                NOW_ISO,
                "--json",
            )
            assert done.returncode == 0, done.stderr
            assert json.loads(done.stdout) == engine.dashboard(f, p, NOW).to_wire()
    engine.close()


def test_cymetica_now_fixes_the_instant_and_the_summary_is_readable(demo_store: SQLiteStore) -> None:
    done = cli("--db", str(demo_store.path), "dashboard", "--period", "7d", env={"CYMETICA_NOW": NOW_ISO})
    assert done.returncode == 0, done.stderr
    assert f"Analytics for all, last 7d, as of {NOW_ISO}" in done.stdout
    for label in (
        "Active Users",
        "Trading Volume",
        "Retention Rate",
        "Avg Capital",
        "Avg ROI",
        "ROI distribution",
    ):
        assert label in done.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["dashboard", "--filter", "bots"],
            "error (invalid_filter): filter must be one of all, humans, agents; got 'bots'",
        ),
        (
            ["dashboard", "--period", "1y"],
            "error (invalid_period): period must be one of 24h, 7d, 30d; got '1y'",
        ),
        (["dashboard", "--now", "2026-03-20T12:00:00"], "error (invalid_as_of): time without a UTC offset"),
        (["import"], "error (invalid_argument): nothing to import"),
    ],
)
def test_bad_input_gets_the_contracts_message_and_no_traceback(
    tmp_path: Path, args: list[str], message: str
) -> None:
    done = cli("--db", str(tmp_path / "x.db"), *args)
    assert done.returncode == 2
    assert done.stderr.startswith(message)
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (
            ["--log-level", "loud"],
            {},
            "error (invalid_argument): bad setting: CYMETICA_LOG_LEVEL or --log-level: "
            "must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL",
        ),
        (
            [],
            {"CYMETICA_CACHE_SECONDS": "soon-ish"},
            "error (invalid_argument): bad setting: CYMETICA_CACHE_SECONDS: Input should be a valid number",
        ),
        (
            [],
            {"CYMETICA_CACHE_SECONDS": "-1"},
            "error (invalid_argument): bad setting: CYMETICA_CACHE_SECONDS: Input should be greater than",
        ),
    ],
)
def test_a_bad_setting_is_named_with_what_is_accepted_never_echoed(
    tmp_path: Path, args: list[str], env: dict[str, str], message: str
) -> None:
    done = cli("--db", str(tmp_path / "x.db"), *args, "dashboard", env=env)
    assert done.returncode == 2
    assert done.stderr.startswith(message)
    assert "Traceback" not in done.stderr
    assert "soon-ish" not in done.stderr and "loud" not in done.stderr  # values may be secrets: never shown


def test_a_refused_import_exits_non_zero_and_lists_the_bad_lines(tmp_path: Path) -> None:
    users = tmp_path / "users.csv"
    users.write_text(
        "user_id,kind,capital_usdc,created_at\nu1,human,1,2026-01-01T00:00:00Z\nu2,martian,1,x\n"
    )
    done = cli("--db", str(tmp_path / "x.db"), "import", "--users", str(users))
    assert done.returncode == 2
    assert "import refused: 1 bad row; the store is unchanged" in done.stderr
    assert "users.csv:3: kind must be 'human' or 'agent', got 'martian'" in done.stderr


def test_the_demo_is_deterministic_for_a_seed_and_instant(tmp_path: Path) -> None:
    outputs = []
    for name in ("a.db", "b.db"):
        db = str(tmp_path / name)
        made = cli("--db", db, "demo", "--users", "50", "--trades", "800", "--days", "10", "--now", NOW_ISO)
        assert made.returncode == 0, made.stderr
        assert "800 inserted" in made.stdout
        shown = cli("--db", db, "dashboard", "--json", "--now", NOW_ISO)
        outputs.append(json.loads(shown.stdout))
    assert outputs[0] == outputs[1]
    assert outputs[0]["metrics"]["active_users"]["value"] > 0
