"""Revocation: a key revoked through any store object of the same database (another process, another
replica) is refused at once with every JWT issued for it; revoking again keeps the first time."""

from __future__ import annotations

import pytest

from cymetica_mcp.auth import Authenticator, KeyRing
from cymetica_mcp.errors import AnalyticsError
from cymetica_mcp.store import Store, open_store
from tests.backends import close, location


def refusal(authenticator: Authenticator, credential: str) -> str:
    with pytest.raises(AnalyticsError) as refused:
        authenticator.authenticate(credential)
    assert refused.value.code == "unauthorized"
    return refused.value.message


def test_a_key_revoked_elsewhere_is_refused_at_once_with_its_jwts(store: Store) -> None:
    info, secret = KeyRing(store).create("agent")
    _, other_secret = KeyRing(store).create("other")
    serving = Authenticator(store)
    principal = serving.authenticate(secret)
    token, _ = serving.issue(principal)
    elsewhere = open_store(location(store))  # what another process or replica opens
    try:
        revoked = KeyRing(elsewhere).revoke(info.id)
    finally:
        close(elsewhere)
    assert revoked.revoked_at is not None and not revoked.active
    # the very next check refuses the key and its JWT, and a revoked key reads like an unknown one
    assert "invalid or revoked API key" in refusal(serving, secret)
    assert refusal(serving, secret) == refusal(serving, "cym_" + "x" * 40)
    assert "was revoked" in refusal(serving, token)
    with pytest.raises(AnalyticsError) as refused:
        serving.issue(principal)
    assert refused.value.code == "unauthorized"
    assert serving.authenticate(other_secret).name == "other"  # the other key is untouched
    # revoking again keeps the first time; an unknown id is named
    assert revoked.revoked_at is not None
    again = store.keys.revoke(info.id, revoked.revoked_at + 100)
    assert again is not None and again.revoked_at == revoked.revoked_at
    assert [k.revoked_at for k in KeyRing(store).list()] == [revoked.revoked_at, None]
    assert store.keys.revoke(99, revoked.revoked_at) is None
    with pytest.raises(AnalyticsError) as missing:
        KeyRing(store).revoke(99)
    assert missing.value.code == "not_found" and "no API key with id 99" in missing.value.message
    serving.close()
