"""The store remembers user refs between imports, and never one that was not committed."""

from __future__ import annotations

from pathlib import Path

import pytest

from cymetica_mcp.errors import AnalyticsError
from cymetica_mcp.ingest import import_files
from cymetica_mcp.store import SQLiteStore
from tests.ingest.test_ingest import TRADES, USERS, write


def test_users_added_elsewhere_or_rolled_back_are_seen_as_they_are(tmp_path: Path) -> None:
    here, elsewhere = SQLiteStore(tmp_path / "s.db"), SQLiteStore(tmp_path / "s.db")  # two processes' views
    import_files(here, write(tmp_path, "u1.csv", USERS + "ann,human,1,2026-01-01T00:00:00Z\n"))
    import_files(elsewhere, write(tmp_path, "u2.csv", USERS + "bob,agent,1,2026-01-01T00:00:00Z\n"))
    trade = write(tmp_path, "t.csv", TRADES + "t1,bob,2026-03-20T00:00:00Z,1,0\n")
    assert import_files(here, trades=trade).trades_inserted == 1  # bob, committed by the other, is known
    refused = write(
        tmp_path, "u3.csv", USERS + "cat,human,1,2026-01-01T00:00:00Z\ndog,robot,1,2026-01-01T00:00:00Z\n"
    )
    with pytest.raises(AnalyticsError):
        import_files(here, refused)  # cat is written, then rolled back with the bad row
    cat_trade = write(tmp_path, "t2.csv", TRADES + "t2,cat,2026-03-20T00:00:00Z,1,0\n")
    with pytest.raises(AnalyticsError) as unknown:
        import_files(here, trades=cat_trade)
    assert "unknown user_id 'cat'" in unknown.value.message
