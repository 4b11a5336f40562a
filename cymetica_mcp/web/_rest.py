"""REST routes: `GET /api/v1/analytics/dashboard` and `POST /api/v1/auth/token`.

Order of checks, so that strangers learn nothing: credential (401), rate limit (429), then the query
(400). The dashboard is the engine's object itself, with a strong `ETag` of its bytes:
`If-None-Match` answers 304 without a body, and `Cache-Control: private, no-cache` tells clients to
keep it and revalidate on every poll.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import OrderedDict
from typing import Final

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from cymetica_mcp.engine import Result
from cymetica_mcp.errors import AnalyticsError
from cymetica_mcp.models import Filter, Period, Scope
from cymetica_mcp.web._door import Door, bearer, bearer_sent
from cymetica_mcp.web._envelope import JSON, dumps, error_response, json_response
from cymetica_mcp.web._wire import TokenResponse

log = logging.getLogger(__name__)

DASHBOARD_PATH: Final = "/api/v1/analytics/dashboard"
TOKEN_PATH: Final = "/api/v1/auth/token"  # noqa: S105 - a path, not a secret
CACHE_CONTROL: Final = "private, no-cache"


def etag_of(body: bytes) -> str:
    """A strong entity tag for a response body."""
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def matches(if_none_match: str | None, etag: str) -> bool:
    """Whether an `If-None-Match` header matches `etag` (weak comparison, RFC 9110 13.1.2)."""
    if not if_none_match:
        return False
    tags = {t.strip().removeprefix("W/") for t in if_none_match.split(",")}
    return "*" in tags or etag in tags


_ENCODED_KEPT: Final = 64
_encoded_cache: OrderedDict[tuple[str, Filter, Period, int, int], tuple[bytes, str]] = OrderedDict()


def _encoded(store: str, filter: Filter, period: Period, result: Result) -> tuple[bytes, str]:
    """A dashboard's response body and ETag, encoded once per (store, filter, period, instant, version)."""
    key = (store, filter, period, result.now, result.data_version)
    found = _encoded_cache.get(key)
    if found is None:
        body = dumps(result.dashboard.to_wire())
        found = _encoded_cache[key] = (body, etag_of(body))
        while len(_encoded_cache) > _ENCODED_KEPT:
            _encoded_cache.popitem(last=False)
    return found


def _query_value(request: Request, name: str, default: str) -> object:
    """One query parameter; repeated values come back as a list (refused by the parser)."""
    values = request.query_params.getlist(name)
    if not values:
        return default
    return values[0] if len(values) == 1 else values


_QUERIES_KEPT: Final = 256
_queries: dict[bytes, tuple[Filter, Period]] = {}


def _choice(request: Request) -> tuple[Filter, Period]:
    """(filter, period) of ?filter=&period= (defaults all, 24h), or `invalid_filter` / `invalid_period`.

    Accepted query strings are remembered as sent: a dashboard poll repeats the same few."""
    raw: bytes = request.scope["query_string"]
    found = _queries.get(raw)
    if found is None:
        found = (
            Filter.parse(_query_value(request, "filter", Filter.ALL.value)),
            Period.parse(_query_value(request, "period", Period.H24.value)),
        )
        if len(_queries) >= _QUERIES_KEPT:
            _queries.clear()
        _queries[raw] = found
    return found


def rest_routes(door: Door) -> list[Route]:
    """The REST routes over `door`."""
    store = door.engine.store.location  # the cache key: one store per process, named once

    async def dashboard(request: Request) -> Response:
        """The analytics dashboard for ?filter=&period= (defaults all, 24h)."""
        started = time.perf_counter()
        header = request.headers.get("authorization")
        # One look at the store's commit stamp serves both memory checks while no await comes between.
        stamp = door.watch.stamp()
        try:
            credential = bearer(header)
            principal = door.remembered(credential, stamp)
            if principal is None:
                principal = await door.principal(credential, door.address(request.scope))
                stamp = door.watch.stamp()
            principal.require(Scope.READ)
            door.limiter.check(principal.key_id)
            filter, period = _choice(request)
        except AnalyticsError as exc:
            return error_response(exc, credential_sent=bearer_sent(header))
        result = door.cached(filter, period, stamp) or await door.result(filter, period)
        body, etag = _encoded(store, filter, period, result)
        headers = {
            "ETag": etag,
            "Cache-Control": CACHE_CONTROL,
            "Vary": "Authorization",
            "X-Data-Version": str(result.data_version),
        }
        log.debug(
            "dashboard %s/%s for key %d: %.1f ms%s",
            filter.value,
            period.value,
            principal.key_id,
            (time.perf_counter() - started) * 1000,
            " (cached)" if result.cached else "",
        )
        if matches(request.headers.get("if-none-match"), etag):
            return Response(status_code=304, headers=headers)
        return Response(body, headers=headers, media_type=JSON)

    async def token(request: Request) -> Response:
        """A JWT for the API key sent as Bearer: {access_token, token_type, expires_in}."""
        header = request.headers.get("authorization")
        try:
            principal = await door.admit(bearer(header), door.address(request.scope))
            if principal.via != "api_key":
                raise AnalyticsError(
                    "forbidden",
                    "a token is issued for an API key only: send 'Authorization: Bearer <API key>' "
                    "(a JWT cannot be exchanged for a longer-lived one)",
                )
        except AnalyticsError as exc:
            return error_response(exc, credential_sent=bearer_sent(header))
        access_token, expires_in = door.authenticator.issue(principal)
        log.info("issued a JWT for key %d (%d s)", principal.key_id, expires_in)
        return json_response(
            TokenResponse(access_token=access_token, expires_in=expires_in).wire(),
            headers={"Cache-Control": "no-store", "Pragma": "no-cache"},
        )

    return [
        Route(DASHBOARD_PATH, dashboard, methods=["GET"]),
        Route(TOKEN_PATH, token, methods=["POST"]),
    ]
