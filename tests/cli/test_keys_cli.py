"""`cymetica-mcp keys create|list|revoke`: the secret shown once, only a hash stored, revocation at once."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from cymetica_mcp.auth import Authenticator, jwt_secret
from cymetica_mcp.cli import main
from cymetica_mcp.errors import AnalyticsError
from cymetica_mcp.store import SQLiteStore


@pytest.fixture
def db(tmp_path: Path) -> Path:
    """A store file that does not exist yet (the first command creates it)."""
    return tmp_path / "keys.db"


def run(db: Path, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Run the command line against `db`: exit status, stdout, stderr."""
    status = main(["--db", str(db), *args])
    out, err = capsys.readouterr()
    return status, out, err


def create(db: Path, capsys: pytest.CaptureFixture[str], name: str) -> str:
    """Create a key and return its secret (the whole of stdout)."""
    status, out, _ = run(db, capsys, "keys", "create", "--name", name)
    assert status == 0
    return out.strip()


def authenticate(db: Path, secret: str) -> int:
    """The key id behind `secret`, as every door checks it."""
    store = SQLiteStore(db)
    authenticator = Authenticator(store, jwt_secret(store, None))
    try:
        return authenticator.authenticate(secret).key_id
    finally:
        authenticator.close()


def test_create_prints_the_secret_once_and_stores_only_its_hash(
    db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, err = run(db, capsys, "keys", "create", "--name", "claude-desktop")
    secret = out.strip()
    assert status == 0 and out == secret + "\n"  # stdout is the secret alone: $(cymetica-mcp keys create ...)
    assert secret.startswith("cym_") and len(secret) > 40
    assert "will not be shown again" in err and "claude-desktop" in err and secret not in err
    with closing(sqlite3.connect(db)) as conn:
        rows = conn.execute("SELECT * FROM api_keys").fetchall()
    (row,) = rows
    assert not any(isinstance(cell, str) and secret in cell for cell in row)
    assert hashlib.sha256(secret.encode()).digest() in row
    assert authenticate(db, secret) == 1


def test_list_shows_id_name_prefix_scopes_times_and_status_never_the_secret(
    db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first, second = create(db, capsys, "desktop"), create(db, capsys, "ci robot")
    authenticate(db, first)
    status, table, _ = run(db, capsys, "keys", "list")
    assert status == 0
    header, row1, row2 = table.splitlines()
    assert header.split() == [
        "id",
        "name",
        "prefix",
        "scopes",
        "created",
        "expires",
        "last",
        "used",
        "status",
    ]
    assert row1.startswith("1 ") and "desktop" in row1 and first[:12] in row1 and row1.endswith("active")
    assert row1.split()[3] == "read" and "never" in row1  # keys made without --scope read; none expire
    assert row2.startswith("2 ") and "ci robot" in row2 and "never" in row2
    assert first not in table and second not in table and first[12:20] not in table


def test_list_json_and_revoke_take_effect_at_once(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    secret = create(db, capsys, "agent")
    assert authenticate(db, secret) == 1
    status, out, _ = run(db, capsys, "keys", "revoke", "1")
    assert status == 0 and "revoked API key 1" in out
    with pytest.raises(AnalyticsError) as refused:
        authenticate(db, secret)
    assert refused.value.code == "unauthorized"
    status, out, _ = run(db, capsys, "keys", "list", "--json")
    (key,) = json.loads(out)
    assert key["id"] == 1 and key["name"] == "agent" and key["status"] == "revoked"
    assert (
        key["prefix"] == secret[:12] and key["revoked_at"].endswith("Z") and key["created_at"].endswith("Z")
    )
    assert key["last_used_at"] is not None and secret not in out


def test_an_empty_store_says_how_to_create_a_key(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(db, capsys, "keys", "list") == (
        0,
        "no API keys yet: create one with `cymetica-mcp keys create --name NAME`\n",
        "",
    )
    assert run(db, capsys, "keys", "list", "--json") == (0, "[]\n", "")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("keys", "revoke", "7"), "error (not_found): no API key with id 7"),
        (
            ("keys", "create", "--name", "  "),
            "error (invalid_argument): a key name must be 1 to 100 characters",
        ),
    ],
)
def test_mistakes_get_a_clear_error_and_status_2(
    db: Path, capsys: pytest.CaptureFixture[str], args: tuple[str, ...], message: str
) -> None:
    status, out, err = run(db, capsys, *args)
    assert (status, out) == (2, "") and err.startswith(message)


def test_create_takes_scopes_and_an_expiry_and_refuses_bad_ones(
    db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, secret, said = run(
        db, capsys, "keys", "create", "--name", "platform", "--scope", "ingest,read", "--expires", "90d"
    )
    assert status == 0 and "scopes read,ingest, expires at " in said
    (key,) = json.loads(run(db, capsys, "keys", "list", "--json")[1])
    assert key["scopes"] == ["read", "ingest"] and key["expires_at"] is not None
    assert authenticate(db, secret.strip()) == 1
    for flags, says in (
        (("--scope", "write"), "scope must be one of read, ingest; got 'write'"),
        (("--expires", "90"), "--expires must be a positive whole number of d, h, m or s"),
        (("--expires", "0d"), "--expires must be a positive whole number"),
    ):
        status, out, err = run(db, capsys, "keys", "create", "--name", "bad", *flags)
        assert status == 2 and out == "" and says in err
