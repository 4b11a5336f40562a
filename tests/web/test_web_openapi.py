"""`GET /openapi.json`: valid OpenAPI 3.1, the app's routes exactly, and what the server really answers.

The fuzzing with schemathesis is in `test_web_fuzz_rest.py`; this module checks the document itself and a
table of real requests provoking every documented status of every operation.
"""

from __future__ import annotations

import copy
import gzip
import sqlite3
from collections.abc import Callable
from contextlib import closing
from functools import partial
from typing import Any

import anyio
import httpx
import pytest
from openapi_spec_validator import validate
from openapi_spec_validator.validation.exceptions import OpenAPIValidationError
from starlette.routing import Route, WebSocketRoute

from cymetica_mcp.auth import KeyRing
from cymetica_mcp.errors import HTTP_STATUS
from cymetica_mcp.models import Scope
from cymetica_mcp.store import SQLiteStore
from cymetica_mcp.web._ingest import MEDIA_TYPES as ACCEPTED_MEDIA_TYPES
from cymetica_mcp.web._openapi import MEDIA_TYPES, OPENAPI_PATH, openapi_document
from cymetica_mcp.web._openapi_components import error_codes

from .conftest import Served, serving
from .contract import envelope_problems, schema_problems

pytestmark = pytest.mark.anyio

DASHBOARD = "/api/v1/analytics/dashboard"
TOKEN = "/api/v1/auth/token"
TRADES = "/api/v1/ingest/trades"
USERS = "/api/v1/ingest/users"
OUTSIDE_THE_DOCUMENT = {"/ws/analytics": "x-websocket", "/mcp": "x-mcp"}
"""Served paths the document describes in extensions instead of `paths` (OpenAPI has no WebSocket
operation; /mcp is JSON-RPC under the MCP specification, and its 401 is the SDK's, not the envelope)."""
MCP_METADATA = "/.well-known/oauth-protected-resource/mcp"
CSV = {"Content-Type": "text/csv"}
GZIP_CSV = {"Content-Type": "text/csv", "Content-Encoding": "gzip"}
ALL_OPERATIONS = [
    ("get", DASHBOARD),
    ("post", TOKEN),
    ("post", TRADES),
    ("post", USERS),
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", OPENAPI_PATH),
    ("get", "/metrics"),
    ("get", "/"),
    ("get", "/assets/page.js"),
]
NO_CREDENTIAL = ("/healthz", "/readyz", OPENAPI_PATH, "/", "/assets/page.js")


def bearer(token: str, **headers: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", **headers}


@pytest.fixture
async def document(served: Served) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=served.url) as http:
        answer = await http.get(OPENAPI_PATH)  # no credential: the published API is public
    assert answer.status_code == 200 and answer.headers["content-type"] == "application/json"
    published: dict[str, Any] = answer.json()
    return published


async def test_the_document_is_valid_openapi_3_1_and_names_this_server(
    document: dict[str, Any], served: Served
) -> None:
    validate(document)  # openapi-spec-validator: the OpenAPI 3.1 schema, references, parameters
    assert document["openapi"] == "3.1.0"
    assert document["servers"] == [{"url": served.url}]
    assert document["components"]["securitySchemes"].keys() == {"apiKey", "jwt"}
    # ... and the validator refuses a broken document (a response without its required description),
    # so the line above can fail.
    broken = copy.deepcopy(document)
    del broken["paths"][DASHBOARD]["get"]["responses"]["200"]["description"]
    with pytest.raises(OpenAPIValidationError, match="description"):
        validate(broken)


async def test_every_route_is_documented_with_its_methods_and_nothing_else(
    document: dict[str, Any], served: Served
) -> None:
    served_paths: dict[str, set[str]] = {}
    for route in served.app.routes:
        if isinstance(route, WebSocketRoute):
            assert route.path in OUTSIDE_THE_DOCUMENT, route.path
            continue
        assert isinstance(route, Route), route
        if route.path in OUTSIDE_THE_DOCUMENT or route.path == MCP_METADATA:
            assert route.methods is None  # the SDK's apps take their own methods
            continue
        assert route.methods is not None
        # Starlette answers HEAD wherever it answers GET; the document names GET alone.
        assert ("HEAD" in route.methods) == ("GET" in route.methods), route.path
        served_paths[route.path] = {m.lower() for m in route.methods - {"HEAD"}}
    documented = {path: set(item) for path, item in document["paths"].items()}
    assert documented == served_paths
    assert document["x-websocket"]["path"] == "/ws/analytics"
    assert document["x-mcp"]["path"] == "/mcp"
    assert document["x-mcp"]["protected_resource_metadata"] == MCP_METADATA
    assert set(OUTSIDE_THE_DOCUMENT) | {MCP_METADATA} <= {getattr(r, "path", None) for r in served.app.routes}


def test_every_error_code_is_documented_with_its_status() -> None:
    document = openapi_document("http://127.0.0.1:8000", ingest_max_bytes=1 << 20)
    assert document["x-error-codes"] == HTTP_STATUS
    responses = document["components"]["responses"]
    titles = {
        400: "BadRequest",
        401: "Unauthorized",
        403: "Forbidden",
        404: "NotFound",
        405: "MethodNotAllowed",
    }
    titles |= {413: "PayloadTooLarge", 415: "UnsupportedMediaType", 421: "MisdirectedRequest"}
    titles |= {429: "TooManyRequests", 500: "InternalError", 503: "Unavailable"}
    assert set(responses) == set(titles.values())
    for status, title in titles.items():
        schema = responses[title]["content"]["application/json"]["schema"]
        assert schema["allOf"] == [{"$ref": "#/components/schemas/ErrorEnvelope"}]
        codes = schema["properties"]["error"]["properties"]["code"]["enum"]
        assert codes == list(error_codes(status)) and codes, title
    for code, status in HTTP_STATUS.items():
        assert code in error_codes(status)
    assert error_codes(421) == ("forbidden",) and error_codes(405) == ("invalid_argument",)
    assert set(MEDIA_TYPES) == set(ACCEPTED_MEDIA_TYPES)
    assert responses["TooManyRequests"]["headers"]["Retry-After"]["required"] is True
    assert responses["Unauthorized"]["headers"]["WWW-Authenticate"]["required"] is True


class Recorder:
    """Sends requests and records (method, path, status, response) for the conformance checks."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http
        self.seen: list[tuple[str, str, httpx.Response]] = []

    async def __call__(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        answer = await self.http.request(method.upper(), path, **kwargs)
        documented = "/assets/{name}" if path.startswith("/assets/") else path.split("?")[0]
        self.seen.append((method, documented, answer))
        return answer


@pytest.fixture
def keys(demo_store: SQLiteStore) -> dict[str, str]:
    ring = KeyRing(demo_store)
    return {
        "both": ring.create("openapi-both", (Scope.READ, Scope.INGEST))[1],
        "read": ring.create("openapi-read", (Scope.READ,))[1],
        "ingest": ring.create("openapi-ingest", (Scope.INGEST,))[1],
        "spare": ring.create("openapi-spare", (Scope.READ,))[1],
    }


async def test_real_answers_of_every_documented_status_match_the_document(
    demo_store: SQLiteStore, keys: dict[str, str]
) -> None:
    seen: list[tuple[str, str, httpx.Response]] = []
    with serving(demo_store) as served:
        async with httpx.AsyncClient(base_url=served.url, timeout=30) as client:
            published = (await client.get(OPENAPI_PATH)).json()
            send = Recorder(client)
            await _every_status_but_limits(send, published, keys)
            with closing(sqlite3.connect(served.store.path)) as conn:
                conn.execute("PRAGMA user_version = 99")
            await send("get", "/readyz")  # 503
            await _store_unavailable(send, served, keys)
            seen += send.seen
    limits: dict[str, Any] = {
        "rate_burst": 1,
        "rate_per_minute": 1,
        "ingest_burst": 4,
        "ingest_rate_per_minute": 1,
    }
    with serving(demo_store, ingest_max_bytes=64, ingest_queue=1, **limits) as tight:
        async with httpx.AsyncClient(base_url=tight.url, timeout=30) as client:
            send = Recorder(client)
            await _limits(send, tight, keys)
            seen += send.seen

    problems = [
        problem
        for method, path, answer in seen
        for problem in envelope_problems(path, answer.status_code, answer.headers, answer.content)
        + schema_problems(published, method, path, answer.status_code, answer.headers, answer.content)
    ]
    assert not problems, "\n".join(problems)
    provoked = {(method, path, str(answer.status_code)) for method, path, answer in seen}
    documented = {
        (method, path, status)
        for path, item in published["paths"].items()
        for method, operation in item.items()
        for status in operation["responses"]
    }
    assert provoked <= documented
    # Every documented status was seen but 500, a failure of ours that no request provokes.
    assert {status for _, _, status in documented - provoked} == {"500"}


async def _every_status_but_limits(send: Recorder, published: dict[str, Any], keys: dict[str, str]) -> None:
    both, read = keys["both"], keys["read"]
    await send("get", OPENAPI_PATH)
    await send("get", "/healthz")
    await send("get", "/readyz")
    for query in ("", "?filter=humans&period=7d", "?filter=agents&period=30d"):
        fresh = await send("get", DASHBOARD + query, headers=bearer(read))
    tag = {"If-None-Match": fresh.headers["ETag"]}
    await send("get", DASHBOARD + "?filter=agents&period=30d", headers=bearer(read, **tag))  # 304
    await send("get", DASHBOARD + "?filter=bots", headers=bearer(read))
    await send("get", DASHBOARD + "?period=1y", headers=bearer(read))
    await send("get", DASHBOARD, headers=bearer(keys["ingest"]))  # 403: no read scope
    await send("get", "/metrics", headers=bearer(read))
    await send("get", "/metrics", headers=bearer(keys["ingest"]))  # 403: no read scope
    for path in ("/", "/assets/page.js", "/assets/page.css", "/assets/icon.svg"):
        page = await send("get", path)
        await send("get", path, headers={"If-None-Match": page.headers["ETag"]})  # 304
    await send("get", "/assets/secrets.txt")  # 404: only the page's files are served
    token = await send("post", TOKEN, headers=bearer(both))
    await send("post", TOKEN, headers=bearer(token.json()["access_token"]))  # 403: a JWT
    # The document's own examples import, users first: they are real, not decoration.
    for path in (USERS, TRADES):
        content = published["paths"][path]["post"]["requestBody"]["content"]
        for media in ("text/csv", "application/x-ndjson"):
            sent = bearer(both, **{"Content-Type": media})
            answer = await send("post", path, content=content[media]["example"].encode(), headers=sent)
            assert answer.status_code == 200, answer.text
    zipped = gzip.compress(content["text/csv"]["example"].encode())
    again = await send("post", TRADES, content=zipped, headers=bearer(both, **GZIP_CSV))
    assert again.json()["trades_inserted"] == 0 and again.json()["trades_present"] == 2
    for path in (USERS, TRADES):
        await send("post", path, content=b"nonsense\n1,2\n", headers=bearer(both, **CSV))
        await send("post", path, content=b"\x1f\x8b-no", headers=bearer(both, **GZIP_CSV))
        await send("post", path, content=b"{}", headers=bearer(both, **{"Content-Type": "application/json"}))
        await send("post", path, content=b"x", headers=bearer(both, **CSV, **{"Content-Encoding": "br"}))
        await send("post", path, content=b"x", headers=bearer(read, **CSV))  # 403: no ingest scope
    for method, path in ALL_OPERATIONS:
        await send(method, path, headers={"Host": "evil.example"})  # 421
        await send(method, path, headers={"Origin": "https://evil.example", **bearer(both)})  # 403
        if path not in NO_CREDENTIAL:
            await send(method, path)  # 401: none
            await send(method, path, headers=bearer("cym_" + "x" * 43))  # 401: unknown


async def _store_unavailable(send: Recorder, served: Served, keys: dict[str, str]) -> None:
    """503 `unavailable` on the routes that read the store, while its file is not SQLite (then put back)."""
    path = served.store.path
    with closing(sqlite3.connect(path)) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    kept = path.read_bytes()
    path.write_bytes(b"not a SQLite file " * 512)
    try:
        for _ in range(2):  # a fresh key: not remembered, so checked against the store
            await send("get", DASHBOARD, headers=bearer(keys["spare"]))
            await send("post", TOKEN, headers=bearer(keys["spare"]))
            await send("get", "/metrics", headers=bearer(keys["spare"]))
    finally:
        path.write_bytes(kept)


async def _limits(send: Recorder, tight: Served, keys: dict[str, str]) -> None:
    """429 (read and ingest), 413 and 503 (ingest queue full) on a server with tight limits."""
    for _ in range(2):
        await send("get", DASHBOARD, headers=bearer(keys["read"]))
        await send("post", TOKEN, headers=bearer(keys["read"]))
        await send("get", "/metrics", headers=bearer(keys["read"]))
    for _ in range(3):  # the ingest burst is 4: 413, 413, 413, 413, then 429, 429
        for path in (USERS, TRADES):
            await send("post", path, content=b"x" * 65, headers=bearer(keys["ingest"], **CSV))
    blocker = tight.store.connect()
    blocker.execute("BEGIN IMMEDIATE")  # another process's import holds the writer
    try:
        for path in (USERS, TRADES):
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(
                    partial(send, "post", path, content=b"", headers=bearer(keys["both"], **CSV))
                )
                await _until(lambda: tight.app.writer.waiting == 1)
                await send("post", path, content=b"", headers=bearer(keys["both"], **CSV))  # 503
                blocker.execute("ROLLBACK")
            blocker.execute("BEGIN IMMEDIATE")
    finally:
        blocker.close()


async def _until(condition: Callable[[], bool]) -> None:
    with anyio.fail_after(10):
        while not condition():  # noqa: ASYNC110 - the state lives in the server's thread
            await anyio.sleep(0.01)
