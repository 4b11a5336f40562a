"""`cymetica-mcp check` on PostgreSQL: the rules of the rows, checked by queries.

The database itself guarantees what SQLite's `integrity_check` and `foreign_key_check` look for (its
constraints are always enforced); pages and indexes are checked by PostgreSQL's own `pg_amcheck`. This
checks what only cymetica-mcp knows: the schema version, the data version row, dense trade ids and the
kept totals against the sums of the rows.
"""

from __future__ import annotations

from cymetica_mcp.store import _totals
from cymetica_mcp.store.postgres._connect import Connection


def check(conn: Connection) -> list[str]:
    """Every problem found (none: the rows are sound)."""
    problems: list[str] = []
    with conn.transaction():
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        version = conn.execute("SELECT value FROM meta WHERE key = 'data_version'").fetchone()
        if version is None:
            problems.append("meta has no data_version row")
        row = conn.execute(
            "SELECT count(*), coalesce(min(id), 1), coalesce(max(id), 0),"
            " coalesce(sum(volume_micro), 0), coalesce(sum(abs(pnl_micro)), 0) FROM trades"
        ).fetchone()
        assert row is not None
        count, first, last, volume, abs_pnl = (int(v) for v in row)
        if count and (first != 1 or last != count):
            problems.append(f"trade ids are not 1..{count}: they run from {first} to {last}")
        kept: dict[str, int] = dict(
            conn.execute("SELECT key, value FROM meta WHERE key = ANY(%s)", (list(_totals.KEYS),)).fetchall()
        )
        for key, summed in zip(_totals.KEYS, (volume, abs_pnl), strict=True):
            if key in kept and int(kept[key]) != summed:
                problems.append(f"meta.{key} is {kept[key]} but the trades sum to {summed}")
            if key not in kept and count:
                problems.append(f"meta.{key} is missing ({count} trades are stored)")
    return problems
