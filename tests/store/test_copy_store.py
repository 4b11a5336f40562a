"""`copy_store` from SQLite to a real PostgreSQL and back to a new SQLite file: every dashboard, every
key's verdict through the real authenticator, a JWT issued before the copy, and the all-or-nothing
rule when the target is not empty or the copy fails midway."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from cymetica_mcp.auth import JWT_SECRET, Authenticator, KeyRing
from cymetica_mcp.engine import Engine
from cymetica_mcp.errors import AnalyticsError
from cymetica_mcp.ingest import import_files
from cymetica_mcp.models import Filter, Period, Scope
from cymetica_mcp.store import KeyInfo, SQLiteStore, Store, copy_store, open_store
from tests.conftest import NOW

if TYPE_CHECKING:
    from tests.postgres import Cluster

DAY = 86_400
INSTANTS = (NOW, NOW - 3 * DAY + 1_234, NOW - 20 * DAY, NOW + 2 * DAY)
TRICKY_USERS = 'user_id,kind,capital_usdc,created_at\n"a\\b\tc",human,1.5,2026-01-01T00:00:00Z\n'
TRICKY_TRADES = (
    'trade_id,user_id,ts,volume_usdc,pnl_usdc\n"x\ny\\N\r",a\\b\tc,2026-03-19T00:00:00Z,2.000001,-0.5\n'
)
Verdict = tuple[str, object, object, object]


def _import_tricky(store: Store, folder: Path) -> None:
    """A user and a trade whose ids hold a tab, a backslash, a newline and a carriage return."""
    (folder / "u.csv").write_text(TRICKY_USERS, encoding="utf-8")
    (folder / "t.csv").write_text(TRICKY_TRADES, encoding="utf-8")
    import_files(store, folder / "u.csv", folder / "t.csv")


def _credentials(store: SQLiteStore) -> dict[str, str]:
    """Keys of every kind in `store` (active, scoped, expiring later, revoked, expired), JWTs issued for
    two of them, and a key that was never made: name -> the credential a client would send."""
    ring = KeyRing(store)
    made = {
        "reader": ring.create("reader")[1],
        "ingester": ring.create("ingester", (Scope.READ, Scope.INGEST))[1],
        "expiring": ring.create("expiring", (Scope.INGEST,), lifetime=30 * DAY)[1],
    }
    revoked, made["revoked"] = ring.create("revoked")
    ring.revoke(revoked.id)
    expired = "cym_expired-" + "x" * 30
    now = int(time.time())
    store.keys.create(
        "expired", expired[:12], hashlib.sha256(expired.encode()).digest(), now - DAY, ("read",), now - 60
    )
    made["expired"] = expired
    made["unknown"] = "cym_never-made-" + "y" * 30
    authenticator = Authenticator(store)  # the store's JWT secret is generated here, once
    for name in ("reader", "ingester"):
        made[f"jwt of {name}"] = authenticator.issue(authenticator.authenticate(made[name]))[0]
    authenticator.close()
    return made


def _verdicts(store: Store, credentials: dict[str, str]) -> dict[str, Verdict]:
    authenticator = Authenticator(store)
    found: dict[str, Verdict] = {}
    for name, credential in credentials.items():
        try:
            principal = authenticator.authenticate(credential)
        except AnalyticsError as refused:
            found[name] = ("refused", refused.code, refused.message, None)
        else:
            found[name] = (
                "accepted",
                principal.key_id,
                principal.via,
                sorted(s.value for s in principal.scopes),
            )
    authenticator.close()
    return found


def _dashboards(store: Store) -> list[dict[str, object]]:
    engine = Engine(store)
    try:
        return [engine.dashboard(f, p, at).to_wire() for f in Filter for p in Period for at in INSTANTS]
    finally:
        engine.close()


def _held(store: Store) -> tuple[int, int, list[str], list[KeyInfo], bytes | None]:
    with store.snapshot() as snapshot:
        last = snapshot.last_trade_id()
        prints = [snapshot.trade_fingerprint(ref) for ref in (1, last // 2, last)]
    lookup = store.keys.lookup()
    try:
        return (store.data_version(), last, prints, store.keys.all(), lookup.secret(JWT_SECRET))
    finally:
        lookup.close()


def test_sqlite_to_postgresql_to_sqlite_keeps_every_dashboard_key_verdict_and_jwt(
    demo_store: SQLiteStore, pg_url: str, tmp_path: Path
) -> None:
    _import_tricky(demo_store, tmp_path)
    credentials = _credentials(demo_store)
    before = _held(demo_store)

    up = copy_store(demo_store.path, pg_url, block_rows=700)  # several blocks
    assert up.copied.trades == before[1] and up.copied.keys == 5 and up.copied.settings == 1
    assert up.replaced is None and up.target == open_store(pg_url).location
    back = tmp_path / "back.db"
    copy_store(pg_url, back, block_rows=1_000)
    stores: list[Store] = [open_store(pg_url), SQLiteStore(back)]

    for store in stores:
        assert _held(store) == before  # ids, rows, keys with their times, the JWT secret
        assert store.check() == []  # totals, dense ids and (SQLite) the packed chunks
    expected = _verdicts(demo_store, credentials)
    assert [name for name, verdict in expected.items() if verdict[0] == "accepted"] == [
        "reader",
        "ingester",
        "expiring",
        "jwt of reader",
        "jwt of ingester",
    ]
    assert expected["jwt of ingester"][3] == ["ingest", "read"] and expected["expiring"][3] == ["ingest"]
    for store in stores:
        assert _verdicts(store, credentials) == expected
    dashboards = _dashboards(demo_store)
    for store in stores:
        assert _dashboards(store) == dashboards

    # PostgreSQL numbers the next key and the next trades after the copied ones
    postgres = open_store(pg_url)
    assert KeyRing(postgres).create("after the copy")[0].id == max(k.id for k in before[3]) + 1
    (tmp_path / "more.csv").write_text(
        "trade_id,user_id,ts,volume_usdc,pnl_usdc\nnew-1,a\\b\tc,2026-03-20T00:00:00Z,1,0\n"
    )
    import_files(postgres, None, tmp_path / "more.csv")
    with postgres.snapshot() as snapshot:
        assert snapshot.last_trade_id() == before[1] + 1
    assert postgres.check() == []


def test_a_target_holding_anything_is_refused_untouched_and_replace_empties_it_first(
    demo_store: SQLiteStore, pg_url: str, tmp_path: Path
) -> None:
    other = SQLiteStore(tmp_path / "other.db")
    _import_tricky(other, tmp_path)
    KeyRing(other).create("only here")
    copy_store(other.path, pg_url)
    target = open_store(pg_url)
    held = _held(target)

    for source in (demo_store.path, tmp_path / "empty.db"):
        if source.name == "empty.db":
            SQLiteStore(source)
        with pytest.raises(AnalyticsError) as refused:
            copy_store(source, pg_url)
        assert refused.value.code == "invalid_argument"
        assert (
            "is not empty: it holds 1 user, 1 trade, 1 API key, 0 settings, data version 1"
            in refused.value.message
        )
        assert "--replace" in refused.value.message
        assert _held(target) == held
    with pytest.raises(AnalyticsError, match="no such file"):
        copy_store(tmp_path / "typo.db", pg_url)
    assert not (tmp_path / "typo.db").exists()
    with pytest.raises(AnalyticsError, match="the same store"):
        copy_store(demo_store.path, f"sqlite:///{demo_store.path}", replace=True)

    report = copy_store(demo_store.path, pg_url, replace=True)
    assert report.replaced is not None and report.replaced.trades == 1
    assert _held(target)[:3] == _held(demo_store)[:3] and target.keys.all() == []
    assert _dashboards(target) == _dashboards(demo_store) and target.check() == []
    # the other way: a SQLite file that holds something is refused, then replaced
    with pytest.raises(AnalyticsError, match="is not empty"):
        copy_store(pg_url, other.path)
    copy_store(pg_url, other.path, replace=True)
    assert _held(other)[:4] == _held(demo_store)[:4] and other.check() == []


def test_a_copy_failing_midway_leaves_the_target_as_it_was(
    demo_store: SQLiteStore, pg_url: str, pg_cluster: Cluster, tmp_path: Path
) -> None:
    old = SQLiteStore(tmp_path / "old.db")
    _import_tricky(old, tmp_path)
    copy_store(old.path, pg_url)
    target = open_store(pg_url)
    held, dashboards = _held(target), _dashboards(target)
    database = pg_url.rsplit("/", 1)[-1]

    def cut_the_connection(done: int, total: int) -> None:  # the target's server drops it midway
        if done >= 1_000:
            pg_cluster.admin_sql(
                f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{database}'"
            )

    with pytest.raises(AnalyticsError) as failed:
        copy_store(demo_store.path, pg_url, replace=True, progress=cut_the_connection, block_rows=500)
    assert failed.value.code == "unavailable" and "nothing was written" in failed.value.message
    target = open_store(pg_url)
    assert _held(target) == held and _dashboards(target) == dashboards and target.check() == []

    def interrupt(done: int, total: int) -> None:  # Ctrl-C midway
        if done >= 1_000:
            raise KeyboardInterrupt

    fresh = tmp_path / "fresh.db"
    with pytest.raises(KeyboardInterrupt):
        copy_store(demo_store.path, fresh, progress=interrupt, block_rows=500)
    assert not fresh.exists()  # the file the copy made is gone with it
    before = _held(old)
    with pytest.raises(KeyboardInterrupt):
        copy_store(demo_store.path, old.path, replace=True, progress=interrupt, block_rows=500)
    assert _held(old) == before and old.check() == []


def test_a_trade_id_postgresql_cannot_hold_is_named_and_the_target_left_empty(
    demo_store: SQLiteStore, pg_url: str
) -> None:
    with demo_store.write() as conn:  # SQLite keeps a NUL in a text; no PostgreSQL text can
        conn.execute("UPDATE trades SET trade_id = ? WHERE id = 3900", ("late\x00id",))
    with pytest.raises(AnalyticsError) as refused:
        copy_store(demo_store.path, pg_url, block_rows=500)
    assert refused.value.message == (
        "cannot copy: the trade_id 'late\\x00id' holds the character NUL (U+0000), which a PostgreSQL store"
        " cannot keep; the target is unchanged"
    )
    target = open_store(pg_url)
    assert target.data_version() == 0 and target.keys.all() == []
    with target.snapshot() as snapshot:
        assert snapshot.last_trade_id() == 0 and len(snapshot.users_changed_since(-1)) == 0
