"""The skip rule of tests/conftest.py: outside CI a missing tool skips with its install command; under
CI the same skip fails the run (checked in a real pytest run of its own with `CI=true`)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ALLOWED_CI_SKIPS, ci_skip_verdict, require_system, under_ci

ROOT = Path(__file__).resolve().parent.parent
MISSING = "cymetica-no-such-tool"
INSTALL = f"apt-get install -y {MISSING}"

A_TEST_NEEDING_A_MISSING_TOOL = f'''
from tests.conftest import require_system

def test_needs_it():
    require_system("{MISSING}", "{INSTALL}")

def test_plain():
    assert True
'''


def run_pytest(folder: Path, ci: str) -> subprocess.CompletedProcess[str]:
    """pytest on `folder` (whose conftest takes the hook from tests/conftest.py), as a user runs it."""
    env = {**os.environ, "CI": ci, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "pytest", str(folder), "-q", "-rs", "-p", "no:cacheprovider"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_under_ci_a_missing_tool_fails_the_run(tmp_path: Path) -> None:
    """A real pytest run with `CI=true` (outside CI the same test skips: `require_system` below, and the
    hook leaves skips alone when `ci_skip_verdict` says so)."""
    (tmp_path / "conftest.py").write_text(
        "from tests.conftest import pytest_runtest_makereport  # noqa: F401\n"
    )
    (tmp_path / "test_needs_tool.py").write_text(A_TEST_NEEDING_A_MISSING_TOOL)
    inside = run_pytest(tmp_path, "true")
    assert inside.returncode == 1, inside.stdout + inside.stderr
    assert "1 failed, 1 passed" in inside.stdout
    assert "skipped under CI" in inside.stdout and INSTALL in inside.stdout


def test_the_verdict_spares_allowed_tests_and_runs_outside_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    assert ci_skip_verdict("tests/x.py::test_y", "tool missing", ci=False) is None
    verdict = ci_skip_verdict("tests/x.py::test_y", "tool missing", ci=True)
    assert verdict is not None and "tool missing" in verdict
    monkeypatch.setitem(ALLOWED_CI_SKIPS, "tests/x.py::*", "a reason")
    assert ci_skip_verdict("tests/x.py::test_y", "tool missing", ci=True) is None
    assert ci_skip_verdict("tests/z.py::test_y", "tool missing", ci=True) is not None


@pytest.mark.parametrize(
    ("value", "ci"),
    [("true", True), ("TRUE", True), ("1", True), ("yes", True), ("", False), ("false", False)],
)
def test_ci_is_read_from_the_environment(value: str, ci: bool) -> None:
    assert under_ci({"CI": value}) is ci
    assert under_ci({}) is False


def test_require_system_returns_the_program_or_the_given_file(tmp_path: Path) -> None:
    assert (
        require_system("sh", "apt-get install -y dash")
        == subprocess.run(
            ["sh", "-c", "command -v sh"], capture_output=True, text=True, check=True
        ).stdout.strip()
    )
    program = tmp_path / "tool"
    program.write_text("#!/bin/sh\n")
    assert require_system("tool", "make it", path=program) == str(program)
    with pytest.raises(pytest.skip.Exception, match=r"tool \(.*\) is missing; install it with: make it"):
        require_system("tool", "make it", path=tmp_path / "absent")
    with pytest.raises(pytest.skip.Exception, match=f"{MISSING} is missing; install it with: {INSTALL}"):
        require_system(MISSING, INSTALL)
