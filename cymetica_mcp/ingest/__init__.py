"""Getting data in: users and trades from CSV or JSON Lines files, all rows or none, and demo data.

Files are read row by row (`_rows`, `_values`), or for a plain CSV trades file a block of lines at a
time with numpy (`_fastpath`, `_blocks`); valid rows go in file order to the store's one import
transaction (`_sink`, `_importer`). A file with any bad row is refused whole, with every bad row's
line and reason, and leaves the store untouched. Demo data (`_demo`) and a live simulator
(`_simulator`) make realistic rows.
"""

from __future__ import annotations

from cymetica_mcp.ingest._demo import DemoSpec, write_demo
from cymetica_mcp.ingest._importer import import_files
from cymetica_mcp.ingest._report import MAX_LISTED_ERRORS, ImportRefused, ImportReport, RowError
from cymetica_mcp.ingest._rows import Format, Progress, detect_format
from cymetica_mcp.ingest._simulator import Batch, Simulator
from cymetica_mcp.ingest._values import parse_micro, parse_ts

__all__ = [
    "MAX_LISTED_ERRORS",
    "Batch",
    "DemoSpec",
    "Format",
    "ImportRefused",
    "ImportReport",
    "Progress",
    "RowError",
    "Simulator",
    "detect_format",
    "import_files",
    "parse_micro",
    "parse_ts",
    "write_demo",
]
