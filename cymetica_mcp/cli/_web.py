"""Commands of the web door: `serve` (REST, WebSocket and MCP over HTTP) and `token` (a JWT for a key)."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable

from pydantic import ValidationError

from cymetica_mcp.auth import Authenticator, configured_secret
from cymetica_mcp.cli._index import add_horizon, horizon_days
from cymetica_mcp.cli._workers import listener, reserve, shared_metrics_folder, supervise
from cymetica_mcp.config import Settings
from cymetica_mcp.engine import open_engine, prepare_index
from cymetica_mcp.errors import AnalyticsError
from cymetica_mcp.store import open_store
from cymetica_mcp.web import (
    FAILURES_PER_ADDRESS,
    INGEST_BURST,
    INGEST_MAX_BYTES,
    INGEST_QUEUE,
    INGEST_RATE_PER_MINUTE,
    MCP_SESSIONS_PER_KEY,
    PUSH_INTERVAL,
    RATE_BURST,
    RATE_PER_MINUTE,
    WebOptions,
    is_loopback,
)
from cymetica_mcp.windows import iso

log = logging.getLogger(__name__)


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `serve` and `token` on the main parser's subcommands."""
    serve = commands.add_parser(
        "serve", help="serve REST, the WebSocket stream and MCP over HTTP (Ctrl-C stops it gracefully)"
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    serve.add_argument(
        "--port", type=int, default=8000, help="port to bind, 0 for any free one (default: 8000)"
    )
    serve.add_argument(
        "--push-interval",
        type=float,
        default=PUSH_INTERVAL,
        help=f"seconds between WebSocket analytics_update pushes (default: {PUSH_INTERVAL:g})",
    )
    serve.add_argument(
        "--public-url",
        help="base URL clients use, e.g. https://analytics.example.com (default: the bound address)",
    )
    serve.add_argument(
        "--allow-origin",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="a browser origin allowed besides the server's own, e.g. https://app.example.com (repeatable)",
    )
    serve.add_argument(
        "--rate-limit",
        type=float,
        default=RATE_PER_MINUTE,
        help=f"requests per minute per API key, REST calls and WebSocket messages (default: {RATE_PER_MINUTE:g})",
    )
    serve.add_argument(
        "--rate-burst",
        type=int,
        default=RATE_BURST,
        help=f"requests allowed at once per key (default: {RATE_BURST})",
    )
    serve.add_argument(
        "--mcp-sessions-per-key",
        type=int,
        default=MCP_SESSIONS_PER_KEY,
        help=f"open MCP-over-HTTP sessions per API key; one more gets 503 (default: {MCP_SESSIONS_PER_KEY})",
    )
    serve.add_argument(
        "--failed-auth-limit",
        type=int,
        default=FAILURES_PER_ADDRESS,
        help=f"refused credentials a minute from one client address before it gets 429 (default: {FAILURES_PER_ADDRESS})",
    )
    serve.add_argument(
        "--trusted-proxy",
        action="append",
        default=[],
        metavar="ADDRESS",
        help="a reverse proxy whose X-Forwarded-For names the client (repeatable; default: none)",
    )
    serve.add_argument(
        "--ingest-max-bytes",
        type=int,
        default=INGEST_MAX_BYTES,
        help=f"largest ingest body once decoded, in bytes (default: {INGEST_MAX_BYTES:,} = 64 MiB)",
    )
    serve.add_argument(
        "--ingest-rate-limit",
        type=float,
        default=INGEST_RATE_PER_MINUTE,
        help=f"ingest requests per minute per API key (default: {INGEST_RATE_PER_MINUTE:g})",
    )
    serve.add_argument(
        "--ingest-burst",
        type=int,
        default=INGEST_BURST,
        help=f"ingest requests allowed at once per key (default: {INGEST_BURST})",
    )
    serve.add_argument(
        "--ingest-queue",
        type=int,
        default=INGEST_QUEUE,
        help=f"ingest requests that may wait for the store's writer; more get 503 (default: {INGEST_QUEUE})",
    )
    add_horizon(serve)
    serve.add_argument(
        "--workers",
        type=int,
        default=1,
        help="server processes behind the one port (default: 1); with more than one, MCP over HTTP is "
        "stateless and the rate, WebSocket and failed-credential limits apply per process",
    )
    serve.add_argument(
        "--mcp-stateless",
        action="store_true",
        help="answer every MCP-over-HTTP POST on its own, with no session kept in this process, so that "
        "an MCP client works whichever replica behind a load balancer each request reaches (implied "
        "by --workers above 1)",
    )
    serve.set_defaults(run=_serve)

    token = commands.add_parser("token", help="print a JWT (1 hour) for an API key")
    token.add_argument("--key", help="the API key, or - to read it from stdin (default: $CYMETICA_API_KEY)")
    token.set_defaults(run=_token)


def _options(args: argparse.Namespace, public_url: str) -> WebOptions:
    try:
        return WebOptions(
            public_url=public_url,
            push_interval=args.push_interval,
            rate_per_minute=args.rate_limit,
            rate_burst=args.rate_burst,
            failures_per_address=args.failed_auth_limit,
            mcp_sessions_per_key=args.mcp_sessions_per_key,
            trusted_proxies=tuple(args.trusted_proxy),
            ingest_max_bytes=args.ingest_max_bytes,
            ingest_rate_per_minute=args.ingest_rate_limit,
            ingest_burst=args.ingest_burst,
            ingest_queue=args.ingest_queue,
            allowed_origins=tuple(args.allow_origin),
            loopback_only=is_loopback(args.host),
        )
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise AnalyticsError("invalid_argument", f"bad serve option ({problems})") from None


def banner(url: str, settings: Settings, data_version: int) -> str:
    """What `serve` prints once listening: where everything is and a ready curl line."""
    ws = "ws" + url.removeprefix("http")
    dashboard = f"{url}/api/v1/analytics/dashboard?filter=all&period=24h"
    lines = [
        f"cymetica-mcp serving {settings.store_shown} (data version {data_version}) at {url}",
        f"  page       {url}/  (the live dashboard in a browser; sign in with an API key)",
        f"  REST       GET  {dashboard}",
        f"  token      POST {url}/api/v1/auth/token",
        f"  ingest     POST {url}/api/v1/ingest/trades  {url}/api/v1/ingest/users  (CSV or JSON Lines)",
        f"  WebSocket  {ws}/ws/analytics?token=<JWT or API key>",
        f"  MCP        {url}/mcp  (Streamable HTTP, Authorization: Bearer)",
        f"  health     {url}/healthz  {url}/readyz",
        f"  metrics    {url}/metrics  (Prometheus text, Authorization: Bearer)",
        f'  try        curl -H "Authorization: Bearer $CYMETICA_API_KEY" "{dashboard}"',
    ]
    if settings.now is not None:
        lines.append(f"  now        fixed at {iso(settings.now)} (CYMETICA_NOW)")
    return "\n".join(lines)


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    workers: int = args.workers
    if workers < 1:
        raise AnalyticsError("invalid_argument", f"--workers {workers}: accepted: 1 or more")
    horizon = horizon_days(args)
    if workers > 1:
        shared_metrics_folder()  # before the server stack loads prometheus_client
    from cymetica_mcp.web import base_url, bind, create_app, make_server  # the server stack loads only here

    try:
        sock = bind(args.host, args.port) if workers == 1 else reserve(args.host, args.port)
    except OSError as exc:
        raise AnalyticsError(
            "invalid_argument", f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}"
        ) from None
    url = (args.public_url or base_url(sock)).rstrip("/")
    options = _options(args, url).model_copy(update={"mcp_stateless": workers > 1 or args.mcp_stateless})

    def serve_one(listening: Callable[[], None] = lambda: None) -> int:
        store = open_store(settings.db)
        engine = open_engine(store, now=settings.now, max_age=settings.cache_seconds, horizon_days=horizon)
        authenticator = Authenticator(store, configured_secret(settings.jwt_secret))
        try:
            server = make_server(create_app(engine, authenticator, options), log_level=settings.log_level)
            if workers == 1:
                server.run(sockets=[sock])
            else:
                with listener(args.host, sock.getsockname()[1]) as own:
                    listening()
                    server.run(sockets=[own])
        finally:
            engine.close()
            authenticator.close()
            store.close()
        return 0

    try:
        store = open_store(settings.db)
        if workers == 1:
            try:
                print(banner(url, settings, store.data_version()), flush=True)
            finally:
                store.close()  # the server opens its own
            return serve_one()
        try:
            # the workers map one kept index instead of each building its own from the rows (a
            # PostgreSQL store keeps none: each worker builds its own from the database)
            prepare_index(store, horizon, settings.now)
            text = banner(url, settings, store.data_version()) + f"\n  workers    {workers} processes"
        finally:
            store.close()  # no connection, no pool thread crosses the fork
        return supervise(workers, serve_one, lambda: print(text, flush=True))
    finally:
        sock.close()


def _token(args: argparse.Namespace, settings: Settings) -> int:
    key = sys.stdin.readline().strip() if args.key == "-" else (args.key or settings.api_key)
    if not key:
        raise AnalyticsError(
            "unauthorized",
            "no API key: pass --key KEY (or --key - to read it from stdin) or set CYMETICA_API_KEY",
        )
    store = open_store(settings.db)
    authenticator = Authenticator(store, configured_secret(settings.jwt_secret))
    try:
        principal = authenticator.authenticate(key)
        if principal.via != "api_key":
            raise AnalyticsError("forbidden", "a token is issued for an API key only, not for another JWT")
        token, expires_in = authenticator.issue(principal)
    finally:
        authenticator.close()
    print(token)
    print(
        f"JWT for API key {principal.key_id} ({principal.name!r}), valid for {expires_in} s: send it as "
        "'Authorization: Bearer <JWT>' or /ws/analytics?token=<JWT>",
        file=sys.stderr,
    )
    return 0
