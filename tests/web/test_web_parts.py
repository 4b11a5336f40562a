"""The web door's small parts on their own: rate limiter, log redaction, origin rules, messages, ETags."""

from __future__ import annotations

import logging
import sys
from unittest import mock

import anyio
import pytest
from hypothesis import given
from hypothesis import strategies as st
from starlette.requests import Request
from uvicorn.logging import AccessFormatter, DefaultFormatter

from cymetica_mcp.errors import AnalyticsError
from cymetica_mcp.models import Filter, Period
from cymetica_mcp.web import _logs, is_loopback
from cymetica_mcp.web._logs import TokenRedactor, install_redaction, redact
from cymetica_mcp.web._messages import Ping, SetPreferences, close_reason, parse_client_message
from cymetica_mcp.web._origin import OriginGuard, origin_allowed
from cymetica_mcp.web._ratelimit import RateLimited, RateLimiter
from cymetica_mcp.web._rest import _choice, _queries, etag_of, matches


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def test_the_bucket_allows_a_burst_then_refuses_with_a_whole_retry_after_and_refills() -> None:
    clock = FakeClock()
    limiter = RateLimiter(per_minute=30, burst=3, clock=clock)  # one token every 2 s
    assert [limiter.retry_after("k") for _ in range(3)] == [0, 0, 0]
    assert limiter.retry_after("k") == 2
    assert limiter.retry_after("other") == 0, "each key has its own bucket"
    clock.now += 1.5
    assert limiter.retry_after("k") == 1, "a fraction of a second still waits a whole second"
    clock.now += 0.5
    assert limiter.retry_after("k") == 0
    clock.now += 3_600
    assert [limiter.retry_after("k") for _ in range(4)] == [0, 0, 0, 2], "refills to the burst, no more"
    with pytest.raises(RateLimited) as refused:
        limiter.check("k")
    assert refused.value.code == "rate_limited" and refused.value.retry_after == 2
    assert refused.value.http_status == 429


def test_the_limiter_refuses_nonsense_settings() -> None:
    with pytest.raises(ValueError, match="positive"):
        RateLimiter(per_minute=0, burst=1)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("/ws/analytics?token=eyJ.a.b", "/ws/analytics?token=[redacted]"),
        (
            "/ws/analytics?filter=all&token=cym_x&period=7d",
            "/ws/analytics?filter=all&token=[redacted]&period=7d",
        ),
        (
            '"WebSocket /ws/analytics?TOKEN=abc" [accepted]',
            '"WebSocket /ws/analytics?TOKEN=[redacted]" [accepted]',
        ),
        ("/x?access_token=abc#frag", "/x?access_token=[redacted]#frag"),
        ("/x?mytoken=abc", "/x?mytoken=abc"),
        ("/api/v1/auth/token", "/api/v1/auth/token"),
    ],
)
def test_redact_replaces_token_values_only(text: str, expected: str) -> None:
    assert redact(text) == expected


KEY = "cym_Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z_-AbCdEfGh"
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl"


@pytest.mark.parametrize(
    "text",
    [
        f"< Authorization: Bearer {KEY}",
        f"(b'authorization', b'Bearer {JWT}')",
        f"authorization: basic {KEY}",
        f"key {KEY} was used",
        f"token {JWT}.",
        "< Cookie: session=s3cret; theme=dark",
        "(b'cookie', b'session=s3cret')",
        "Set-Cookie: session=s3cret; HttpOnly",
    ],
)
def test_redact_removes_every_credential_shape(text: str) -> None:
    cleaned = redact(text)
    for secret in (KEY.removeprefix("cym_"), JWT.split(".")[1], "s3cret"):
        assert secret not in cleaned
    assert REDACTED_MARK in cleaned


REDACTED_MARK = "[redacted]"


def test_a_traceback_that_holds_a_credential_is_redacted() -> None:
    try:
        raise ValueError(f"bad credential {KEY}")
    except ValueError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", None, sys.exc_info())
    assert TokenRedactor().filter(record)
    line = logging.Formatter("%(message)s").format(record)
    assert "ValueError: bad credential cym_[redacted]" in line and KEY not in line


def test_redaction_sits_on_every_handler_whatever_logger_emits(caplog: pytest.LogCaptureFixture) -> None:
    install_redaction()  # caplog's handler is on the root logger: it gets the filter too
    with caplog.at_level(logging.DEBUG):
        logging.getLogger("some.library").debug("headers: %s", {"authorization": f"Bearer {KEY}"})
    assert KEY not in caplog.text and "Bearer [redacted]" in caplog.text
    root = logging.getLogger()
    assert all(any(isinstance(f, TokenRedactor) for f in h.filters) for h in root.handlers)


def _redact_always(text: str) -> str:
    """`redact` without its shortcut: every pattern on every text."""
    with mock.patch.object(_logs, "_suspect", return_value=True):
        return redact(text)


TRICKY = st.lists(
    st.sampled_from(
        [
            *"tokenTOKEN=_ac?&;%/ \"'#wsalyiTK\u212a\u0130\u017fbrBRSCyjJ.:",
            "/ws/analytics?",
            "token=",
            "bearer ",
            "Basic ",
            "cookie: ",
            "cym_",
            "eyJ",
        ]
    ),
    max_size=30,
).map("".join)


@given(st.one_of(TRICKY, st.text(max_size=60)))
def test_the_shortcut_past_lines_without_a_token_changes_nothing(text: str) -> None:
    assert redact(text) == _redact_always(text)


def test_uvicorn_log_lines_show_no_token_after_the_filter() -> None:
    secret = "cym_s3cret-value"
    access = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "GET", f"/ws/analytics?token={secret}", "1.1", 101),
        None,
    )
    handshake = logging.LogRecord(
        "uvicorn.error",
        logging.INFO,
        __file__,
        1,
        '%s - "WebSocket %s" [accepted]',
        ("127.0.0.1:5000", f"/ws/analytics?token={secret}"),
        None,
    )
    redactor = TokenRedactor()
    assert redactor.filter(access) and redactor.filter(handshake)
    lines = [AccessFormatter("%(message)s").format(access), DefaultFormatter("%(message)s").format(handshake)]
    assert all(secret not in line and "token=[redacted]" in line for line in lines), lines


@pytest.mark.parametrize(
    ("origin", "host", "allowed", "loopback", "ok"),
    [
        ("http://127.0.0.1:8000", "127.0.0.1:8000", (), True, True),
        ("http://localhost:3000", "127.0.0.1:8000", (), True, True),
        ("http://[::1]:3000", "127.0.0.1:8000", (), True, True),
        ("https://evil.example", "127.0.0.1:8000", (), True, False),
        ("null", "127.0.0.1:8000", (), True, False),
        ("file://", "127.0.0.1:8000", (), True, False),
        ("https://analytics.example", "analytics.example", (), False, True),
        ("https://analytics.example:443", "analytics.example", (), False, True),
        ("http://analytics.example", "analytics.example", (), False, True),
        ("https://analytics.example", "analytics.example:8443", (), False, False),
        ("http://localhost:3000", "analytics.example", (), False, False),
        ("https://app.example", "analytics.example", ("https://app.example",), False, True),
        ("https://app.example/", "analytics.example", ("https://app.example",), False, True),
    ],
)
def test_origin_rules(origin: str, host: str, allowed: tuple[str, ...], loopback: bool, ok: bool) -> None:
    assert origin_allowed(origin, host, allowed, loopback) is ok


def test_client_messages_parse_or_say_what_is_accepted() -> None:
    assert parse_client_message('{"type":"ping"}') == Ping()
    assert parse_client_message(
        '{"type":"set_preferences","filter":"agents","period":"30d"}'
    ) == SetPreferences(Filter.AGENTS, Period.D30)
    assert parse_client_message('{"type":"set_preferences"}') == SetPreferences(None, None)
    with pytest.raises(AnalyticsError) as bad:
        parse_client_message('{"type":"set_preferences","filter":null}')
    assert bad.value.code == "invalid_filter"


def test_close_reasons_fit_a_close_frame() -> None:
    assert close_reason("short") == "short"
    long = close_reason("é" * 200)
    assert len(long.encode()) <= 123 and long.endswith("...")


def test_etags_match_strongly_and_weakly() -> None:
    tag = etag_of(b"{}")
    assert tag.startswith('"') and tag == etag_of(b"{}") != etag_of(b"[]")
    assert matches(tag, tag) and matches(f"W/{tag}", tag) and matches("*", tag)
    assert matches(f'"x", {tag}', tag)
    assert not matches(None, tag) and not matches('"x"', tag)


def _request(query: bytes) -> Request:
    return Request({"type": "http", "method": "GET", "path": "/", "query_string": query, "headers": []})


def test_query_choices_are_remembered_only_when_accepted() -> None:
    assert _choice(_request(b"")) == (Filter.ALL, Period.H24)
    assert _choice(_request(b"period=7d&filter=agents")) == (Filter.AGENTS, Period.D7)
    assert _choice(_request(b"period=7d&filter=agents")) == (Filter.AGENTS, Period.D7)
    for _ in range(2):  # refused every time, with the first bad parameter named
        with pytest.raises(AnalyticsError) as both_bad:
            _choice(_request(b"filter=bots&period=1y"))
        assert both_bad.value.code == "invalid_filter"
        with pytest.raises(AnalyticsError) as repeated:
            _choice(_request(b"period=7d&period=7d"))
        assert repeated.value.code == "invalid_period"
    for n in range(600):  # many distinct query strings: the memory stays bounded
        _choice(_request(f"filter=all&n={n}".encode()))
    assert len(_queries) <= 256


def test_the_origin_guard_reads_the_last_host_and_origin_header_in_any_case() -> None:
    sent: list[dict[str, object]] = []

    async def app(scope: object, receive: object, send: object) -> None:
        sent.append({"type": "passed"})

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    async def receive() -> dict[str, object]:
        return {"type": "http.request"}

    guard = OriginGuard(app, allowed_origins=(), loopback_only=True)

    def run(headers: list[tuple[bytes, bytes]]) -> object:
        sent.clear()
        scope = {"type": "http", "headers": headers}
        anyio.run(guard, scope, receive, send)  # type: ignore[arg-type]
        return sent[0].get("status", "passed")

    assert run([(b"host", b"127.0.0.1:8000")]) == "passed"
    assert run([(b"Host", b"evil.example"), (b"host", b"127.0.0.1:8000")]) == "passed"
    assert run([(b"host", b"127.0.0.1:8000"), (b"HOST", b"evil.example")]) == 421
    assert run([(b"host", b"127.0.0.1:8000"), (b"Origin", b"https://evil.example")]) == 403
    assert run([(b"host", b"127.0.0.1:8000"), (b"origin", b"http://localhost:3000")]) == "passed"
    assert run([(b"host", b"127.0.0.2:8000")]) == "passed"  # all of 127.0.0.0/8 is loopback
    assert run([(b"host", b"[::ffff:127.0.0.1]:8000")]) == "passed"
    assert run([(b"host", b"127.0.0.1.evil.example:8000")]) == 421


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.0.0.2", True),
        ("127.255.255.254", True),
        ("::1", True),
        ("[::1]", True),
        ("::ffff:127.0.0.1", True),
        ("localhost", True),
        ("LocalHost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("::ffff:10.0.0.1", False),
        ("192.168.1.2", False),
        ("example.com", False),
        ("localhost.example.com", False),
        ("127.0.0.1.nip.io", False),
    ],
)
def test_bound_to_loopback_is_decided_from_the_parsed_address(host: str, loopback: bool) -> None:
    """`serve --host` turns the DNS-rebinding check on for every loopback address, not only the usual names."""
    assert is_loopback(host) is loopback
