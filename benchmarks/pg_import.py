"""The PostgreSQL import target: our import against `psql \\copy` of the same file into a bare table.

Each side gets a fresh database of the benchmark's cluster, in turn (psql, ours, psql, ours, ...), so a
busy neighbour slows both alike:

- reference: `psql -c "\\copy bare FROM 'trades.csv' CSV HEADER"` into `bare (trade_id text, user_id text,
  ts text, volume_usdc text, pnl_usdc text)`: the file's own columns, no index, no constraint, no
  validation (as the SQLite target's `sqlite3 .import`);
- ours: `benchmarks.probe import URL users.csv trades.csv` (a process of its own): the users imported
  first, then the trades file timed alone: validated, every user looked up, a repeated trade_id kept
  once, dense ids, the primary key and the unique trade_id index maintained, one durable commit.

The rate of each side is the median of its rounds; the target is ours >= 0.5 x psql's.
"""

from __future__ import annotations

import statistics
from typing import Any, Final

from benchmarks.data import Dataset
from benchmarks.pg_cluster import Server
from benchmarks.report import Row, versus
from benchmarks.suite import probe

TARGET: Final = 0.5
ROUNDS: Final = {1_000_000: 3, 10_000_000: 1}
BARE: Final = "CREATE TABLE bare (trade_id text, user_id text, ts text, volume_usdc text, pnl_usdc text)"


def measure(server: Server, data: Dataset, log: Any, keep: bool = False) -> tuple[dict[str, Any], str | None]:
    """Time both sides over `data`'s trades file; returns the figures and, if `keep`, the URL of the
    last database our import filled (else every database is dropped)."""
    rounds = ROUNDS.get(data.size.trades, 1)
    label = f"{data.size.trades / 1e6:g}M"
    figures: dict[str, Any] = {"trades": data.size.trades, "psql": [], "ours": []}
    kept: str | None = None
    for n in range(rounds):
        url = server.database()
        try:
            server.psql(url, BARE)
            seconds = server.psql(url, f"\\copy bare FROM '{data.trades_csv}' CSV HEADER")
            server.psql(url, "DROP TABLE bare")  # nothing of it left for our side's round
        finally:
            server.drop(url)
        figures["psql"].append({"seconds": seconds, "rate": data.size.trades / seconds})
        log(
            f"  {label} round {n + 1}/{rounds}: psql \\copy {seconds:.2f} s = {data.size.trades / seconds:,.0f} rows/s"
        )
        url = server.database()
        result = probe("import", url, str(data.users_csv), str(data.trades_csv))
        if result["trades"] != data.size.trades:
            raise RuntimeError(f"our import stored {result['trades']:,} trades of {data.size.trades:,}")
        figures["ours"].append(result)
        log(
            f"  {label} round {n + 1}/{rounds}: ours {result['seconds']:.2f} s = {result['rate']:,.0f} trades/s"
        )
        if keep and n == rounds - 1:
            kept = url
        else:
            server.drop(url)
    figures["psql_rate"] = statistics.median(r["rate"] for r in figures["psql"])
    figures["ours_rate"] = statistics.median(r["rate"] for r in figures["ours"])
    return figures, kept


def row(figures: dict[str, Any]) -> Row:
    """The target row: our trades/s against psql's rows/s."""
    label = f"{figures['trades'] / 1e6:g}M"
    rounds = len(figures["ours"])
    return versus(
        f"pg_import_{label}",
        f"PostgreSQL import, {label} trades (validated, indexed)",
        figures["ours_rate"],
        "trades/s",
        figures["psql_rate"],
        "(psql \\copy, bare table)",
        TARGET,
        at_least=True,
        note=f"median of {rounds} round{'s' if rounds > 1 else ''} each side, alternating, a fresh database "
        f"each; our peak RSS {max(r['after']['peak_mb'] for r in figures['ours']):.0f} MB",
    )
