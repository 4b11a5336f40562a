"""`POST /api/v1/ingest/trades` and `POST /api/v1/ingest/users`: the platform sends data as it happens.

    body (CSV with a header row, or JSON Lines; gzip allowed)
      -> streamed to a temporary file, counted as it is decoded (413 past the limit)
      -> a place in the writer's queue (503 + Retry-After when it is full)
      -> `ingest.import_files`, the code of `cymetica-mcp import`: one all-or-nothing transaction,
         idempotent by trade_id, the same messages and line numbers
      -> {counts, data_version, seconds}, or 400 `import_refused` with the first bad rows

A slow upload never holds the store's writer: the body is whole on disk before the import starts.
"""

from __future__ import annotations

import logging
import tempfile
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import anyio
import anyio.to_thread
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from cymetica_mcp.errors import AnalyticsError
from cymetica_mcp.ingest import Format, ImportRefused, ImportReport, import_files
from cymetica_mcp.models import Scope
from cymetica_mcp.web._door import Door, bearer, bearer_sent
from cymetica_mcp.web._envelope import error_response, json_response
from cymetica_mcp.web._ratelimit import RateLimiter
from cymetica_mcp.web._wire import BadRow, ErrorDetail, ImportRefusedBody, IngestReport

log = logging.getLogger(__name__)

PATHS: Final = {"/api/v1/ingest/trades": "trades", "/api/v1/ingest/users": "users"}
MEDIA_TYPES: Final[dict[str, Format]] = {
    "text/csv": "csv",
    "application/x-ndjson": "jsonl",
    "application/jsonl": "jsonl",
    "application/ndjson": "jsonl",
}
RETRY_AFTER: Final = 1
"""Seconds a client refused for a full queue is told to wait."""
READ_AT_ONCE: Final = 1 << 20
"""Most decoded bytes taken from one gzip chunk at a time (a small body cannot expand without bound)."""


class WriterQueue:
    """Imports one at a time, at most `size` waiting: the one writer of the store, fairly shared."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.waiting = 0
        self._writer = anyio.Lock()

    async def run(self, store_import: Callable[[], ImportReport]) -> ImportReport:
        """Run `store_import` (a callable) on a worker thread once the writer is free."""
        if self.waiting >= self.size:
            raise AnalyticsError(
                "unavailable",
                f"{self.waiting} imports are already waiting for the store's writer; retry in {RETRY_AFTER} s",
                retry_after=RETRY_AFTER,
            )
        self.waiting += 1
        try:
            async with self._writer:
                report: ImportReport = await anyio.to_thread.run_sync(store_import)
                return report
        finally:
            self.waiting -= 1


def ingest_routes(door: Door, queue: WriterQueue) -> list[Route]:
    """The two ingest routes over `door`, with their own per-key rate limit, importing through `queue`."""
    options = door.options
    limiter = RateLimiter(options.ingest_rate_per_minute, options.ingest_burst)

    async def ingest(request: Request) -> Response:
        """Users or trades in the body, imported whole or refused whole."""
        what = PATHS[request.url.path]
        header = request.headers.get("authorization")
        try:
            principal = await door.principal(bearer(header), door.address(request.scope))
            principal.require(Scope.INGEST)
            limiter.check(principal.key_id)
            fmt = _format(request.headers.get("content-type"))
        except AnalyticsError as exc:
            return error_response(exc, credential_sent=bearer_sent(header))
        started = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="cymetica-ingest-") as folder:
            body = Path(folder) / f"{what}.{fmt}"
            try:
                size = await _receive(request, body, options.ingest_max_bytes)
                report = await queue.run(lambda: _import(door, what, body, fmt))
            except ClientDisconnect:
                log.info(
                    "ingest of %s for key %d: the client left before the body ended", what, principal.key_id
                )
                return Response(status_code=400)  # nobody reads it; nothing was imported
            except ImportRefused as exc:
                log.info("ingest of %s for key %d refused: %d bad rows", what, principal.key_id, exc.total)
                return _refused(exc)
            except AnalyticsError as exc:
                # a store that cannot take writes (full disk, read-only, damaged) is the operator's to fix
                level = logging.WARNING if exc.code == "unavailable" else logging.INFO
                log.log(
                    level,
                    "ingest of %s for key %d refused: %s: %s",
                    what,
                    principal.key_id,
                    exc.code,
                    exc.message,
                )
                return error_response(exc)
        log.debug(  # routine, as dashboard requests are; refusals are logged at INFO
            "ingest of %s for key %d: %d bytes, %d rows, %d trades new, %d users new, version %d, %.1f ms",
            what,
            principal.key_id,
            size,
            report.rows,
            report.trades_inserted,
            report.users_inserted,
            report.data_version,
            (time.perf_counter() - started) * 1000,
        )
        answer = IngestReport(
            success=True,
            rows=report.rows,
            users_inserted=report.users_inserted,
            users_updated=report.users_updated,
            trades_inserted=report.trades_inserted,
            trades_present=report.trades_present,
            data_version=report.data_version,
            seconds=round(time.perf_counter() - started, 6),
        )
        return json_response(answer.wire(), headers={"Cache-Control": "no-store"})

    return [Route(path, ingest, methods=["POST"]) for path in PATHS]


def _format(content_type: str | None) -> Format:
    """The import format named by a Content-Type header (its parameters, such as charset, ignored)."""
    media = (content_type or "").split(";")[0].strip().lower()
    if media in MEDIA_TYPES:
        return MEDIA_TYPES[media]
    raise AnalyticsError(
        "unsupported_media_type",
        f"Content-Type must be text/csv (with a header row) or application/x-ndjson (JSON Lines); got {media or 'none'!r}",
    )


async def _receive(request: Request, path: Path, limit: int) -> int:
    """Write the decoded body to `path` as it arrives; return its size. Refuses a body that decodes to
    more than `limit` bytes, an unknown Content-Encoding and a gzip stream that is cut short."""
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in {"identity", "gzip"}:
        raise AnalyticsError(
            "unsupported_media_type", f"Content-Encoding must be gzip or none; got {encoding!r}"
        )
    declared = request.headers.get("content-length", "")
    if encoding == "identity" and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    inflate = zlib.decompressobj(16 + zlib.MAX_WBITS) if encoding == "gzip" else None
    size = 0
    with path.open("wb") as out:
        async for chunk in request.stream():
            pieces = [chunk] if inflate is None else _inflated(inflate, chunk, limit - size)
            for piece in pieces:
                size += len(piece)
                if size > limit:
                    raise _too_large(limit)
                out.write(piece)
    if inflate is not None and not inflate.eof:
        raise AnalyticsError("invalid_argument", "the gzip body ended before its end: send the whole stream")
    return size


def _inflated(inflate: Any, chunk: bytes, room: int) -> list[bytes]:
    """The bytes `chunk` decodes to, at most `room` + 1 of them (enough to tell the limit is passed)."""
    out: list[bytes] = []
    data = chunk
    try:
        while data or inflate.unconsumed_tail:
            piece = inflate.decompress(data or inflate.unconsumed_tail, min(READ_AT_ONCE, room + 1))
            data = b""
            out.append(piece)
            room -= len(piece)
            if room < 0 or not piece:
                break
    except zlib.error:
        raise AnalyticsError(
            "invalid_argument", "the body is not valid gzip (Content-Encoding: gzip)"
        ) from None
    return out


def _too_large(limit: int) -> AnalyticsError:
    return AnalyticsError(
        "payload_too_large",
        f"the body decodes to more than {limit:,} bytes; send it in smaller batches",
    )


def _import(door: Door, what: str, body: Path, fmt: Format) -> ImportReport:
    """The import itself, on a worker thread (what `cymetica-mcp import` runs)."""
    store = door.engine.store
    if what == "users":
        return import_files(store, users=body, fmt=fmt)
    return import_files(store, trades=body, fmt=fmt)


def _refused(exc: ImportRefused) -> Response:
    """400 `import_refused` with the first bad rows by line, and how many in all."""
    body = ImportRefusedBody(
        success=False,
        error=ErrorDetail(code=exc.code, message=exc.message),
        rows=[BadRow(line=e.line, reason=e.reason) for e in exc.errors],
        total=exc.total,
    )
    return json_response(body.wire(), 400, {"Cache-Control": "no-store"})
