"""What a response must be, per the published document (`/openapi.json`) and the error contract.

Both the real-response test and the fuzzing check use these, so they hold every answer to one rule:

- `envelope_problems`: an error (4xx, 5xx) is `{success: false, error: {code, message}}` with a known
  code whose status is the one sent, `Cache-Control: no-store`, `WWW-Authenticate` on a 401,
  `Retry-After` on a 429, and nothing else in the body but the extras its route documents.
- `schema_problems`: the status is documented for the operation, with its content type, its body
  validates against the documented schema (JSON Schema 2020-12, OpenAPI 3.1's dialect) and its
  required headers are there, each matching its schema.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, get_args

from jsonschema import Draft202012Validator

from cymetica_mcp.errors import HTTP_STATUS, ErrorCode

CODES = frozenset(get_args(ErrorCode))
SPECIAL_STATUS: dict[int, str] = {405: "invalid_argument", 421: "forbidden"}
"""Statuses whose code maps elsewhere in `HTTP_STATUS` (a wrong method; a foreign Host)."""
EXTRAS: dict[tuple[str, int], frozenset[str]] = {
    ("/api/v1/ingest/trades", 400): frozenset({"rows", "total"}),
    ("/api/v1/ingest/users", 400): frozenset({"rows", "total"}),
    ("/readyz", 503): frozenset({"status", "reason"}),
}
"""Fields a route documents beside the envelope (`ImportRefusedBody`, `NotReady`)."""


def envelope_problems(path: str, status: int, headers: Mapping[str, str], content: bytes) -> list[str]:
    """Why an error response breaks the envelope contract (empty when it keeps it)."""
    if status < 400:
        return []
    problems: list[str] = []
    try:
        body = json.loads(content)
    except ValueError:
        return [f"{status}: the body is not JSON: {content[:200]!r}"]
    if not isinstance(body, dict):
        return [f"{status}: the body is not an object: {body!r}"]
    extra = set(body) - {"success", "error"} - EXTRAS.get((path, status), frozenset())
    if body.get("success") is not False or extra:
        problems.append(f"{status}: not the envelope (success={body.get('success')!r}, extra keys {extra})")
    error = body.get("error")
    if not isinstance(error, dict) or set(error) != {"code", "message"}:
        return [*problems, f"{status}: `error` is not {{code, message}}: {error!r}"]
    code, message = error["code"], error["message"]
    if code not in CODES:
        problems.append(f"{status}: unknown code {code!r}")
    elif status != HTTP_STATUS[code] and SPECIAL_STATUS.get(status) != code:
        problems.append(f"{status}: code {code!r} belongs to status {HTTP_STATUS[code]}")
    if not isinstance(message, str) or not message.strip() or "Traceback" in message:
        problems.append(f"{status}: the message is empty or a trace: {message!r}")
    lower = {name.lower(): value for name, value in headers.items()}
    if lower.get("cache-control") != "no-store":
        problems.append(f"{status}: Cache-Control is {lower.get('cache-control')!r}, not no-store")
    if lower.get("content-type", "").split(";")[0] != "application/json":
        problems.append(f"{status}: Content-Type is {lower.get('content-type')!r}")
    if status == 401 and not lower.get("www-authenticate", "").startswith("Bearer "):
        problems.append("401 without a Bearer WWW-Authenticate challenge")
    if status == 429 and not lower.get("retry-after", "").isdigit():
        problems.append(f"429 without whole seconds in Retry-After: {lower.get('retry-after')!r}")
    return problems


def operation_of(document: dict[str, Any], method: str, path: str) -> dict[str, Any]:
    """The document's operation for `method` on `path` (KeyError when undocumented)."""
    operation: dict[str, Any] = document["paths"][path][method.lower()]
    return operation


def _resolved(document: dict[str, Any], item: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in item:
        node: Any = document
        for part in item["$ref"].removeprefix("#/").split("/"):
            node = node[part.replace("~1", "/").replace("~0", "~")]
        item = node
    return item


def _validator(document: dict[str, Any], schema: dict[str, Any]) -> Draft202012Validator:
    """A validator of `schema` whose `#/components/...` references resolve in `document`."""
    return Draft202012Validator({**document, **schema})


def schema_problems(
    document: dict[str, Any],
    method: str,
    path: str,
    status: int,
    headers: Mapping[str, str],
    content: bytes,
) -> list[str]:
    """Why a response breaks the document (empty when it conforms)."""
    responses = operation_of(document, method, path)["responses"]
    if str(status) not in responses:
        return [f"{method} {path}: status {status} is not documented (documented: {sorted(responses)})"]
    response = _resolved(document, responses[str(status)])
    where = f"{method} {path} -> {status}"
    problems: list[str] = []
    lower = {name.lower(): value for name, value in headers.items()}
    for name, spec in response.get("headers", {}).items():
        value = lower.get(name.lower())
        if value is None:
            if spec.get("required"):
                problems.append(f"{where}: required header {name} is missing")
            continue
        typed: Any = int(value) if spec["schema"].get("type") == "integer" and value.isdigit() else value
        problems += [
            f"{where}: header {name}: {e.message}"
            for e in _validator(document, spec["schema"]).iter_errors(typed)
        ]
    content_types = response.get("content", {})
    if not content_types:
        return problems + ([f"{where}: a body where none is documented"] if content else [])
    media = lower.get("content-type", "").split(";")[0].strip()
    if media not in content_types:
        return [*problems, f"{where}: Content-Type {media!r} is not one of {sorted(content_types)}"]
    schema = content_types[media]["schema"]
    if media != "application/json":  # text: the page's files, the metrics exposition
        if schema.get("type") == "string" and content:
            return problems
        return [*problems, f"{where}: an empty {media} body"]
    body = json.loads(content)
    return problems + [
        f"{where}: {'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in _validator(document, schema).iter_errors(body)
    ]
