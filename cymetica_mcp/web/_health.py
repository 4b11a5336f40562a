"""`GET /healthz` (the process answers) and `GET /readyz` (the store is reachable, its schema current).

Neither needs a credential and neither shows any figure.
"""

from __future__ import annotations

import logging

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from cymetica_mcp.errors import AnalyticsError
from cymetica_mcp.store import SCHEMA_VERSION, Store
from cymetica_mcp.web._envelope import json_response
from cymetica_mcp.web._wire import Alive, ErrorDetail, NotReady, Ready

log = logging.getLogger(__name__)

NO_STORE = {"Cache-Control": "no-store"}


def _schema_version(store: Store) -> int:
    version = store.schema_version()
    store.data_version()  # the data table answers too
    return version


def health_routes(store: Store) -> list[Route]:
    """The two probes over `store`."""

    async def healthz(request: Request) -> Response:
        """Liveness: always 200 while the process serves requests."""
        return json_response(Alive(status="ok").wire(), headers=NO_STORE)

    async def readyz(request: Request) -> Response:
        """Readiness: 200 when the store answers with the current schema, else 503 with the reason."""
        try:
            version = await anyio.to_thread.run_sync(_schema_version, store)
        except AnalyticsError as exc:
            log.warning("readiness check failed: %s", exc.message)
            return _not_ready(exc.cause or "the store cannot be read")
        except Exception as exc:
            log.warning("readiness check failed: %s: %s", type(exc).__name__, exc)
            return _not_ready("the store cannot be read")
        if version != SCHEMA_VERSION:
            return _not_ready(f"the store has schema version {version}, this server needs {SCHEMA_VERSION}")
        return json_response(Ready(status="ready", schema_version=version).wire(), headers=NO_STORE)

    return [Route("/healthz", healthz, methods=["GET"]), Route("/readyz", readyz, methods=["GET"])]


def _not_ready(reason: str) -> Response:
    """503 with the probe's {status, reason} inside the error envelope every route answers errors with."""
    body = NotReady(
        success=False,
        error=ErrorDetail(code="unavailable", message=f"not ready: {reason}"),
        status="unavailable",
        reason=reason,
    )
    return json_response(body.wire(), 503, NO_STORE)
