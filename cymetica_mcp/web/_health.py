"""`GET /healthz` (the process answers) and `GET /readyz` (the store is reachable, its schema current).

Neither needs a credential and neither shows any figure.
"""

from __future__ import annotations

import logging

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from cymetica_mcp.store import SCHEMA_VERSION, Store
from cymetica_mcp.web._envelope import json_response

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
        return json_response({"status": "ok"}, headers=NO_STORE)

    async def readyz(request: Request) -> Response:
        """Readiness: 200 when the store answers with the current schema, else 503 with the reason."""
        try:
            version = await anyio.to_thread.run_sync(_schema_version, store)
        except Exception as exc:
            log.warning("readiness check failed: %s: %s", type(exc).__name__, exc)
            return json_response(
                {"status": "unavailable", "reason": "the store cannot be read"}, 503, NO_STORE
            )
        if version != SCHEMA_VERSION:
            reason = f"the store has schema version {version}, this server needs {SCHEMA_VERSION}"
            return json_response({"status": "unavailable", "reason": reason}, 503, NO_STORE)
        return json_response({"status": "ready", "schema_version": version}, headers=NO_STORE)

    return [Route("/healthz", healthz, methods=["GET"]), Route("/readyz", readyz, methods=["GET"])]
