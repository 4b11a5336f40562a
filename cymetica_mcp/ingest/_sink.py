"""The trades of one file, row by row or a block at a time: validated, counted, handed to the store's
writer in file order, and every bad row reported by its line."""

from __future__ import annotations

from typing import Final

from cymetica_mcp.ingest._report import Errors, ImportReport
from cymetica_mcp.ingest._values import BadValue, parse_trade, short
from cymetica_mcp.store import PreparedTrades, TradeRow, TradeWriter

BATCH: Final = 10_000
"""Trades read row by row are written this many at a time (each batch also becomes one chunk)."""


class TradeSink:
    """Validates trade rows and writes them in file order; counts and reports like every import.

    With no writer it only validates (a file that is refused whatever happens, read again for its
    messages). Once any row is bad it stops writing: the transaction will be rolled back."""

    def __init__(
        self, writer: TradeWriter | None, name: str, ids: dict[str, int], errors: Errors, report: ImportReport
    ) -> None:
        self.writer, self.name, self.ids, self.errors, self.report = writer, name, ids, errors, report
        self.batch: list[TradeRow] = []
        self.seen = 0

    def row(self, line: int, row: tuple[object, ...]) -> None:
        """One row of the file (fields in TRADE_FIELDS order) at `line`: validated, then written."""
        self.report.rows += 1
        try:
            trade_id, user_id, ts, volume, pnl = parse_trade(row)
        except BadValue as bad:
            self.errors.add(self.name, line, str(bad))
            return
        ref = self.ids.get(user_id)
        if ref is None:
            self.errors.add(self.name, line, f"unknown user_id {short(user_id)}: import the user first")
            return
        self.seen += 1
        if self.errors.total or self.writer is None:
            return
        self.batch.append((trade_id, ref, ts, volume, pnl))
        if len(self.batch) >= BATCH:
            self._flush(self.writer)

    def block(self, prepared: PreparedTrades) -> None:
        """Rows that the fast path found valid, next in the file: written at once."""
        lines = prepared.rows.lines
        self.report.rows += lines
        self.seen += lines
        if self.errors.total or self.writer is None:
            return
        if self.batch:
            self._flush(self.writer)
        self.report.trades_inserted += self.writer.write_prepared(prepared)

    def close(self) -> None:
        """The last rows written, their users checked; the report's counts completed."""
        writing = self.writer is not None and not self.errors.total
        if self.batch and writing and self.writer is not None:
            self._flush(self.writer)
        self.report.trades_present += self.seen - self.report.trades_inserted
        if writing and self.writer is not None:
            self.writer.finish()

    def _flush(self, writer: TradeWriter) -> None:
        self.report.trades_inserted += writer.write(self.batch)
        self.batch.clear()
