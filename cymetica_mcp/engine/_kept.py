"""The index kept beside the store: one file of raw arrays that a starting process maps instead of
rebuilding the index from the store's rows.

The file is a cache, never the truth. It records the data version it was built at, the horizon it
was built with and a fingerprint of the last trade it holds (that trade's stored row). A process
that opens it checks all three against the store: a file from a later version, another horizon or
another history (a restored backup, a replaced database) is ignored and rebuilt; a file from an
earlier version is brought up to date from the store's newer trades, as a running server does after
an import. A missing, truncated or foreign file is rebuilt the same way.

Layout: the magic bytes, the header's length (8 bytes, little-endian), the header (JSON: the
scalars, and each array's dtype, shape and offset), then each array's bytes at an offset aligned to
a page. Arrays are mapped read-only (`mmap`), so start-up reads nothing but the header: pages come
in as dashboards touch them, stay in the page cache across restarts, and are shared by every process
that maps the same file (`serve --workers N`). A new file is written beside the old one and renamed
over it, so a reader sees the old file or the new one whole, and a process that mapped the old one
keeps it until it lets go.
"""

from __future__ import annotations

import contextlib
import json
import mmap
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

from cymetica_mcp.engine._directory import Directory
from cymetica_mcp.engine._index import TradeIndex
from cymetica_mcp.engine._rollups import Rollup
from cymetica_mcp.engine._runs import Run
from cymetica_mcp.engine._timeline import Timeline
from cymetica_mcp.store import Store

MAGIC: Final = b"CYMIDX\x00\x01"
FORMAT: Final = 2
"""Bump when the layout or the meaning of an array changes: older files are then rebuilt."""
PAGE: Final = 4096
KEYS: Final = frozenset(
    {"version", "last_trade", "fingerprint", "horizon", "cutoff", "trades", "runs", "rollups", "arrays"}
)


@dataclass(frozen=True, slots=True)
class KeptInfo:
    """What a kept file's header says about it."""

    path: Path
    version: int
    last_trade: int
    trades: int
    horizon: int
    cutoff: int
    bytes: int
    fingerprint: str


def _arrays(index: TradeIndex) -> dict[str, NDArray[Any]]:
    """Every array of the index, by name."""
    found: dict[str, NDArray[Any]] = {"kind": index.kind, "capital": index.capital}
    for i, users in enumerate(index.traders):
        found[f"traders.{i}"] = users
    for name, run in (("main", index.main), ("delta", index.delta)):
        found[f"{name}.key"], found[f"{name}.cum"] = run.key, run.cum
        for i, directory in enumerate(run.directories):
            found[f"{name}.directory.{i}"] = directory.table
            if directory.offsets is not None:
                found[f"{name}.directory.{i}.offsets"] = directory.offsets
        if run.timeline is not None:
            timeline = run.timeline
            found[f"{name}.timeline.starts"] = timeline.starts
            found[f"{name}.timeline.user"] = timeline.user
            found[f"{name}.timeline.offset"] = timeline.offset
    for size, rollup in index.rollups.items():
        for column in ("volume", "trades", "users"):
            found[f"rollup.{size}.{column}"] = getattr(rollup, column)
    return found


def _scalars(index: TradeIndex, fingerprint: str) -> dict[str, Any]:
    runs = {}
    for name, run in (("main", index.main), ("delta", index.delta)):
        runs[name] = {
            "directories": [
                {
                    "shift": d.shift,
                    "width": d.width,
                    "first": d.first,
                    "slots": d.slots,
                    "complete": d.complete,
                    "every": d.every,
                }
                for d in run.directories
            ],
            "timeline": None
            if run.timeline is None
            else {"width": run.timeline.width, "first": run.timeline.first},
        }
    return {
        "format": FORMAT,
        "version": index.version,
        "last_trade": index.last_trade,
        "fingerprint": fingerprint,
        "horizon": index.horizon,
        "cutoff": index.cutoff,
        "trades": index.trade_count,
        "runs": runs,
        "rollups": {str(size): rollup.base for size, rollup in index.rollups.items()},
    }


def write(index: TradeIndex, path: Path, fingerprint: str) -> int:
    """Write the index to `path` (through a temporary file renamed over it); return its size."""
    arrays = _arrays(index)
    header = _scalars(index, fingerprint)
    # offsets depend on the header's length, which depends on the offsets: leave room for them
    layout: dict[str, list[Any]] = {}
    header["arrays"] = layout
    for name, array in arrays.items():
        layout[name] = [array.dtype.str, list(array.shape), 0]
    start = _aligned(len(MAGIC) + 8 + len(json.dumps(header)) + 24 * len(arrays) + PAGE)
    at = start
    for name, array in arrays.items():
        layout[name][2] = at
        at = _aligned(at + array.nbytes)
    text = json.dumps(header).encode()
    if len(MAGIC) + 8 + len(text) > start:
        raise AssertionError("the kept index's header outgrew its room")
    temporary = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        with open(temporary, "wb") as out:
            out.write(MAGIC + len(text).to_bytes(8, "little") + text)
            for name, array in arrays.items():
                out.seek(layout[name][2])
                out.write(np.ascontiguousarray(array).data)
            out.truncate(at)
        os.replace(temporary, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
    return at


def _aligned(offset: int) -> int:
    return -(-offset // PAGE) * PAGE


def info(path: Path) -> KeptInfo | None:
    """What the file at `path` holds, from its header; None if there is no whole kept index there."""
    header = _header(path)
    try:
        if header is None or not _whole(header, path.stat().st_size):
            return None
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return KeptInfo(
        path,
        header["version"],
        header["last_trade"],
        header["trades"],
        header["horizon"],
        header["cutoff"],
        path.stat().st_size,
        header["fingerprint"],
    )


def _header(path: Path) -> dict[str, Any] | None:
    try:
        with open(path, "rb") as file:
            head = file.read(len(MAGIC) + 8)
            if len(head) < len(MAGIC) + 8 or head[: len(MAGIC)] != MAGIC:
                return None
            length = int.from_bytes(head[len(MAGIC) :], "little")
            if length > 1 << 24:
                return None
            header: dict[str, Any] = json.loads(file.read(length))
    except (OSError, ValueError):
        return None
    if not isinstance(header, dict) or header.get("format") != FORMAT or not header.keys() >= KEYS:
        return None
    return header


def read(path: Path, store: Store, horizon: int) -> TradeIndex | None:
    """The index kept at `path`, mapped, if it belongs to `store`'s history, was built with
    `horizon` and is not ahead of the store; else None (rebuild it)."""
    header = _header(path)
    if header is None or header["horizon"] != horizon:
        return None
    with store.snapshot() as snapshot:
        if header["version"] > snapshot.data_version():
            return None
        if snapshot.trade_fingerprint(header["last_trade"]) != header["fingerprint"]:
            return None
    try:
        with open(path, "rb") as file:
            size = os.fstat(file.fileno()).st_size
            layout = header["arrays"]
            if not _whole(header, size):
                return None  # cut short: rebuilt
            mapped = mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) if size else None
        return _index(header, _views(layout, mapped))
    except (OSError, ValueError, KeyError, TypeError, IndexError):  # not a file this program wrote
        return None


def _whole(header: dict[str, Any], size: int) -> bool:
    """Does a file of `size` bytes hold every array its header names?"""
    arrays = header["arrays"].values()
    return all(offset + _nbytes(dtype, shape) <= size for dtype, shape, offset in arrays)


def _nbytes(dtype: str, shape: list[int]) -> int:
    return int(np.dtype(dtype).itemsize * int(np.prod(shape)))


def _views(layout: dict[str, list[Any]], mapped: mmap.mmap | None) -> dict[str, NDArray[Any]]:
    """Each array as a read-only view of the mapped file (empty ones as fresh empty arrays)."""
    views: dict[str, NDArray[Any]] = {}
    for name, (dtype, shape, offset) in layout.items():
        count = int(np.prod(shape))
        if count == 0 or mapped is None:
            views[name] = np.zeros(shape, dtype=np.dtype(dtype))
        else:
            views[name] = np.frombuffer(mapped, dtype=np.dtype(dtype), count=count, offset=offset).reshape(
                shape
            )
    return views


def _index(header: dict[str, Any], arrays: dict[str, NDArray[Any]]) -> TradeIndex:
    runs = {}
    for name in ("main", "delta"):
        described = header["runs"][name]
        directories = tuple(
            Directory(
                d["shift"],
                d["width"],
                d["first"],
                d["slots"],
                d["complete"],
                arrays[f"{name}.directory.{i}"],
                arrays[f"{name}.directory.{i}.offsets"] if d["every"] > 1 else None,
                d["every"],
            )
            for i, d in enumerate(described["directories"])
        )
        line = described["timeline"]
        timeline = (
            None
            if line is None
            else Timeline(
                line["width"],
                line["first"],
                arrays[f"{name}.timeline.starts"],
                arrays[f"{name}.timeline.user"],
                arrays[f"{name}.timeline.offset"],
            )
        )
        runs[name] = Run(arrays[f"{name}.key"], arrays[f"{name}.cum"], directories, timeline)
    rollups = {
        int(size): Rollup(
            int(size),
            base,
            arrays[f"rollup.{size}.volume"],
            arrays[f"rollup.{size}.trades"],
            arrays[f"rollup.{size}.users"],
        )
        for size, base in header["rollups"].items()
    }
    return TradeIndex(
        version=header["version"],
        previous_version=-1,  # no kept dashboard state is of this index's making
        latest=Run.empty(),
        last_trade=header["last_trade"],
        kind=arrays["kind"],
        capital=arrays["capital"],
        main=runs["main"],
        delta=runs["delta"],
        traders=(arrays["traders.0"], arrays["traders.1"], arrays["traders.2"]),
        rollups=rollups,
        horizon=header["horizon"],
        cutoff=header["cutoff"],
    )
