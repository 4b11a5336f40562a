"""Scoped keys: what each key may do, carried by its JWTs, and what older keys keep."""

from __future__ import annotations

import sqlite3
import time
from contextlib import closing
from pathlib import Path

import jwt
import psycopg
import pytest

from cymetica_mcp.auth import JWT_ALGORITHM, JWT_AUDIENCE, JWT_ISSUER, Authenticator, KeyRing, jwt_secret
from cymetica_mcp.errors import AnalyticsError
from cymetica_mcp.models import Scope
from cymetica_mcp.store import Store, open_store
from cymetica_mcp.store._schema import MIGRATIONS
from cymetica_mcp.store.postgres._schema import MIGRATIONS as PG_MIGRATIONS
from tests.backends import close


@pytest.fixture
def authenticator(store: Store) -> Authenticator:
    return Authenticator(store, jwt_secret(store, None))


def test_scopes_parse_from_a_list_and_refuse_the_unknown() -> None:
    assert Scope.parse_list("ingest, read") == (Scope.READ, Scope.INGEST)
    assert Scope.parse_list("read,read") == (Scope.READ,)
    for bad in ("", " , ", "read,write"):
        with pytest.raises(AnalyticsError) as refused:
            Scope.parse_list(bad)
        assert refused.value.code == "invalid_argument" and "read, ingest" in refused.value.message


def test_a_key_and_its_token_carry_its_scopes(store: Store, authenticator: Authenticator) -> None:
    _, reader = KeyRing(store).create("reader")
    _, writer = KeyRing(store).create("writer", (Scope.INGEST,))
    for secret, scopes in ((reader, {Scope.READ}), (writer, {Scope.INGEST})):
        principal = authenticator.authenticate(secret)
        assert principal.scopes == scopes
        token, _ = authenticator.issue(principal)
        assert authenticator.authenticate(token).scopes == scopes
    with pytest.raises(AnalyticsError) as refused:
        authenticator.authenticate(writer).require(Scope.READ)
    assert refused.value.code == "forbidden" and "--scope read" in refused.value.message


def test_a_token_from_before_scopes_reads_and_never_grants_more_than_its_key(
    store: Store, authenticator: Authenticator
) -> None:
    info, _ = KeyRing(store).create("reader")
    secret = jwt_secret(store, None)
    now = int(time.time())
    claims = {"sub": str(info.id), "iat": now, "exp": now + 60, "aud": JWT_AUDIENCE, "iss": JWT_ISSUER}
    old = jwt.encode(claims, secret, algorithm=JWT_ALGORITHM)
    assert authenticator.authenticate(old).scopes == {Scope.READ}
    greedy = jwt.encode({**claims, "scope": "read ingest"}, secret, algorithm=JWT_ALGORITHM)
    assert authenticator.authenticate(greedy).scopes == {Scope.READ}  # the key has no ingest


def test_an_expired_key_is_refused_and_its_token_expires_with_it(
    store: Store, authenticator: Authenticator
) -> None:
    _, secret = KeyRing(store).create("brief", lifetime=1)
    token, lifetime = authenticator.issue(authenticator.authenticate(secret))
    assert lifetime <= 1
    time.sleep(1.1)
    for credential in (secret, token):
        with pytest.raises(AnalyticsError) as refused:
            authenticator.authenticate(credential)
        assert refused.value.code == "unauthorized" and "expired" in refused.value.message


def test_keys_made_before_scopes_keep_read_and_never_expire(
    tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    """A store as the previous schema (3) left it, written with each backend's own SQL, then opened."""
    key_row = (
        "INSERT INTO api_keys (name, prefix, secret_hash, created_at) VALUES ('old', 'cym_x', '\\x00', 1)"
    )
    if backend == "sqlite":
        location = str(tmp_path / "old.db")
        with closing(sqlite3.connect(location)) as conn:
            for script in MIGRATIONS[:3]:
                conn.executescript(script)
            conn.execute(key_row.replace("'\\x00'", "x'00'"))
            conn.execute("PRAGMA user_version = 3")
            conn.commit()
    else:
        location = str(request.getfixturevalue("pg_url"))
        with psycopg.connect(location, autocommit=True) as pg, pg.transaction():
            pg.execute("CREATE TABLE cymetica_schema (version integer NOT NULL)")
            for script in PG_MIGRATIONS[:3]:
                for statement in filter(None, (part.strip() for part in script.split(";"))):
                    pg.execute(statement.encode())
            pg.execute(key_row.encode())
            pg.execute("INSERT INTO cymetica_schema (version) VALUES (3)")
    store = open_store(location)
    try:
        (key,) = KeyRing(store).list()
        assert (key.name, key.scopes, key.expires_at) == ("old", ("read",), None)
        assert store.schema_version() == len(MIGRATIONS) == len(PG_MIGRATIONS)
    finally:
        close(store)
