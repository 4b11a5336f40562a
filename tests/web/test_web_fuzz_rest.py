"""Fuzzing the REST API with schemathesis, from the published document, against a real uvicorn server.

Each operation of `/openapi.json` is one test: a private copy of the demo store served on 127.0.0.1,
a key with the read and ingest scopes as its credential, and schemathesis's examples, coverage and
fuzzing phases (valid and invalid data) with a fixed number of fuzzing cases and a fixed seed, so a
failure in CI is the same failure on a laptop. Every answer must pass:

    not_a_server_error             no 5xx (`internal` or otherwise)
    status_code_conformance        the status is documented for the operation
    content_type_conformance       with its documented content type
    response_schema_conformance    the body validates against the documented schema
    response_headers_conformance   the documented headers are there (Retry-After, WWW-Authenticate, ...)
    error_envelope                 every 4xx/5xx is the contract's envelope (tests/web/contract.py)

The limits that would turn most cases into 429s (rate per key, refused credentials per address) are
lifted on the fuzzed server: they are tested on their own, and here they would hide the routes.
"""

from __future__ import annotations

import gzip
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis import Case, CheckContext
from schemathesis import Response as Answer
from schemathesis.checks import CheckFunction, not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from cymetica_mcp.auth import KeyRing
from cymetica_mcp.models import Scope
from cymetica_mcp.store import SQLiteStore
from cymetica_mcp.web import INGEST_MAX_BYTES
from cymetica_mcp.web._openapi import MEDIA_TYPES, openapi_document

from .conftest import serving
from .contract import envelope_problems
from .fuzz_bodies import body_for

MAX_EXAMPLES = 50
"""Cases of the fuzzing phase per operation and mode; the examples and coverage phases add their own."""
SEED = 20260320
UNLIMITED = 1_000_000
FuzzCase = Case[Any]  # schemathesis types the operation with four parameters; any will do here
INGESTS = {"/api/v1/ingest/trades": "trades", "/api/v1/ingest/users": "users"}

# The document as the server publishes it; the server's own URL is given to each call.
schema = schemathesis.openapi.from_dict(
    openapi_document("http://127.0.0.1", ingest_max_bytes=INGEST_MAX_BYTES),
    config=schemathesis.Config.from_dict(
        {
            "seed": SEED,
            "generation": {
                "mode": "all",  # valid and invalid data
                "max-examples": MAX_EXAMPLES,
                "deterministic": True,
                "database": "none",  # nothing carried over between runs: CI repeats the laptop's run
            },
            "phases": {"stateful": {"enabled": False}},
        }
    ),
)
# CSV goes as text already; JSON Lines is text too.
schemathesis.serializer.alias([m for m in MEDIA_TYPES if m != "text/csv"], "text/plain")


@schema.hook
def flatmap_case(context: schemathesis.HookContext, case: FuzzCase) -> st.SearchStrategy[FuzzCase]:
    """Half of the generated ingest cases get a body with rows (`fuzz_bodies.py`) in the case's format."""
    what = INGESTS.get(case.operation.path)
    if what is None or case.media_type not in MEDIA_TYPES:
        return st.just(case)

    def with_body(body: bytes) -> FuzzCase:
        encoding = {name.lower(): value for name, value in (case.headers or {}).items()}.get(
            "content-encoding"
        )
        case.body = gzip.compress(body, mtime=0) if encoding == "gzip" else body  # as a client would send it
        return case

    return st.just(case) | body_for(what, case.media_type).map(with_body)


def error_envelope(ctx: CheckContext, response: Answer, case: FuzzCase) -> bool | None:
    """Every 4xx and 5xx is the documented error envelope, with the headers its status needs."""
    headers = {name: values[-1] for name, values in response.headers.items()}
    problems = envelope_problems(case.operation.path, response.status_code, headers, response.content)
    if problems:
        raise AssertionError("; ".join(problems))
    return None


CHECKS: list[CheckFunction] = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
    error_envelope,
]


@dataclass
class Fuzzed:
    """The server under fuzzing, its credential and an HTTP session that ignores proxy settings."""

    url: str
    key: str
    session: requests.Session


CASES: Counter[str] = Counter()
SECONDS: defaultdict[str, float] = defaultdict(float)
STATUSES: defaultdict[str, Counter[int]] = defaultdict(Counter)


@pytest.fixture
def fuzzed(demo_store: SQLiteStore, request: pytest.FixtureRequest) -> Iterator[Fuzzed]:
    """A server over a private copy of the demo store, with the per-key and per-address limits lifted."""
    key = KeyRing(demo_store).create("fuzz", (Scope.READ, Scope.INGEST))[1]
    limits: dict[str, Any] = {
        "rate_per_minute": UNLIMITED,
        "rate_burst": UNLIMITED,
        "ingest_rate_per_minute": UNLIMITED,
        "ingest_burst": UNLIMITED,
        "failures_per_address": UNLIMITED,
        "failures_total": UNLIMITED,
    }
    started = time.perf_counter()
    with serving(demo_store, **limits) as served, requests.Session() as session:
        session.trust_env = False  # 127.0.0.1 directly, whatever HTTP_PROXY says
        yield Fuzzed(served.url, key, session)
    SECONDS[request.node.name] += time.perf_counter() - started


@schema.parametrize()
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])  # one server per operation, on purpose
def test_fuzz(case: FuzzCase, fuzzed: Fuzzed) -> None:
    CASES[case.operation.label] += 1
    answer = case.call_and_validate(
        base_url=fuzzed.url,
        session=fuzzed.session,
        headers={"Authorization": f"Bearer {fuzzed.key}"},
        checks=CHECKS,
        timeout=30,
    )
    STATUSES[case.operation.label][answer.status_code] += 1


def test_fuzz_report(request: pytest.FixtureRequest, capsys: pytest.CaptureFixture[str]) -> None:
    """Every selected operation was fuzzed with cases; how many each got and how long it took (for
    SECURITY.md). Runs after the fuzz tests, in file order."""
    selected = {item.name for item in request.session.items if item.name.startswith("test_fuzz[")}
    assert {f"test_fuzz[{label}]" for label in CASES} == selected
    assert all(cases >= 10 for cases in CASES.values()), CASES
    if len(selected) == len(list(schema.get_all_operations())):
        operations = {
            f"{m.upper()} {path}" for path, item in schema.raw_schema["paths"].items() for m in item
        }
        assert set(CASES) == operations
    with capsys.disabled():
        for label, cases in sorted(CASES.items()):
            print(f"\nfuzz {label}: {cases} cases, statuses {dict(sorted(STATUSES[label].items()))}")
        print(f"\nfuzz total: {sum(CASES.values())} cases in {sum(SECONDS.values()):.1f} s")
