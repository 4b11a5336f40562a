"""Rotating the JWT secret refuses every JWT issued before, on every server of the store, and nothing else."""

from __future__ import annotations

import subprocess
import sys

import pytest

from cymetica_mcp.auth import Authenticator, KeyRing
from cymetica_mcp.errors import AnalyticsError
from cymetica_mcp.store import Store
from tests.backends import location
from tests.conftest import clean_env


def test_a_rotation_by_another_process_refuses_old_jwts_only(store: Store) -> None:
    _, key = KeyRing(store).create("agent")
    serving = Authenticator(store)  # the store's secret, as `serve` and `mcp` use it
    old, _ = serving.issue(serving.authenticate(key))
    assert serving.authenticate(old).key_id == 1
    done = subprocess.run(
        [sys.executable, "-m", "cymetica_mcp", "--db", location(store), "keys", "rotate-jwt-secret"],
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=60,
        check=False,
    )
    assert done.returncode == 0 and "every JWT issued so far is refused" in done.stdout
    with pytest.raises(AnalyticsError) as refused:
        serving.authenticate(old)
    assert refused.value.code == "unauthorized"
    assert serving.authenticate(key).key_id == 1  # the key itself still works
    new, _ = serving.issue(serving.authenticate(key))
    assert serving.authenticate(new).key_id == 1
    serving.close()


def test_a_configured_secret_is_not_rotated(store: Store) -> None:
    _, key = KeyRing(store).create("agent")
    fixed = Authenticator(store, b"s" * 32)
    token, _ = fixed.issue(fixed.authenticate(key))
    env = {**clean_env(), "CYMETICA_JWT_SECRET": "s" * 32}
    done = subprocess.run(
        [sys.executable, "-m", "cymetica_mcp", "--db", location(store), "keys", "rotate-jwt-secret"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2 and "CYMETICA_JWT_SECRET is set" in done.stderr
    assert fixed.authenticate(token).key_id == 1
    fixed.close()
