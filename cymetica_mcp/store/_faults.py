"""What a failing store file means to its caller: SQLite's faults as `AnalyticsError("unavailable")`.

A full disk, a read-only file or folder, a file that is not SQLite, damaged pages and I/O errors are
not bugs of ours, and a caller (the CLI, an ingest client, a dashboard reader) can only act on them if
told which one it is. Each becomes `unavailable` (HTTP 503, CLI exit status 2) with a message naming the
fault, what became of the write and what to do; any other SQLite error stays what it is (an `internal`
failure with its details in the log only).

    sqlite3.Error (primary result code)   ->  AnalyticsError("unavailable", "the store ... : <fault>; <effect>")
    SQLITE_FULL      13                        its disk is full
    SQLITE_READONLY   8                        it may not be written
    SQLITE_CANTOPEN  14                        it cannot be opened
    SQLITE_NOTADB    26                        it is not a SQLite database
    SQLITE_CORRUPT   11                        it is damaged
    SQLITE_IOERR     10                        an I/O error
    SQLITE_PERM       3                        access denied
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Final

from cymetica_mcp.errors import AnalyticsError

FAULTS: Final[dict[int, str]] = {
    sqlite3.SQLITE_FULL: "its disk is full (or its file reached the size it may have)",
    sqlite3.SQLITE_READONLY: (
        "it may not be written (a read-only file, a read-only folder, where SQLite keeps the -wal and"
        " -shm files beside it, or a read-only file system)"
    ),
    sqlite3.SQLITE_CANTOPEN: (
        "it cannot be opened (its folder is missing or may not be written, or no file descriptor is left)"
    ),
    sqlite3.SQLITE_NOTADB: "it is not a SQLite database",
    sqlite3.SQLITE_CORRUPT: "it is damaged (SQLite finds malformed pages)",
    sqlite3.SQLITE_IOERR: "reading or writing its file failed (an I/O error)",
    sqlite3.SQLITE_PERM: "access to its file was denied",
}
FULL_BELOW: Final = 1 << 20
"""An I/O error with fewer bytes than this free on the store's file system is a full disk."""
ADVICE: Final[dict[int, str]] = {
    sqlite3.SQLITE_FULL: "free space on its disk and retry",
    sqlite3.SQLITE_READONLY: "let this process write the file and its folder, then retry",
    sqlite3.SQLITE_CANTOPEN: "check the path given as --db / CYMETICA_DB and its folder",
    sqlite3.SQLITE_NOTADB: "check the path given as --db / CYMETICA_DB",
    sqlite3.SQLITE_CORRUPT: "run `cymetica-mcp check` and restore the last backup",
    sqlite3.SQLITE_IOERR: "check the disk and retry",
    sqlite3.SQLITE_PERM: "let this process read and write the file, then retry",
}


def fault_of(exc: sqlite3.Error, path: Path, *, writing: bool) -> AnalyticsError | None:
    """The `unavailable` error that `exc`, raised by the store at `path`, stands for; None when it is
    no fault of the file.

    SQLite reports a full disk as SQLITE_FULL where it sees ENOSPC itself, but as an I/O error where a
    write's error number is lost (growing the -shm file, a short write): an I/O error on a file system
    with less than FULL_BELOW bytes free is called a full disk too."""
    code = getattr(exc, "sqlite_errorcode", None)
    if code is None or code & 0xFF not in FAULTS:
        return None
    primary = code & 0xFF
    if primary == sqlite3.SQLITE_IOERR and _free_bytes(path) < FULL_BELOW:
        primary = sqlite3.SQLITE_FULL
    effect = "nothing was written" if writing else "nothing could be read"
    name = getattr(exc, "sqlite_errorname", "")
    return AnalyticsError(
        "unavailable", f"the store cannot be used: {FAULTS[primary]}; {effect}: {ADVICE[primary]} ({name})"
    )


def _free_bytes(path: Path) -> int:
    """Bytes free for this process on the file system holding `path`'s folder; if unknown, FULL_BELOW (not full)."""
    try:
        stat = os.statvfs(path.parent)
    except OSError:
        return FULL_BELOW
    return stat.f_bavail * stat.f_frsize


@contextmanager
def translated(path: Path, *, writing: bool) -> Iterator[None]:
    """Turn a fault of the store's file at `path` raised inside the block into its `unavailable` error."""
    try:
        yield
    except sqlite3.Error as exc:
        fault = fault_of(exc, path, writing=writing)
        if fault is None:
            raise
        raise fault from exc
