"""The project's web app under uvicorn, as `cymetica-mcp serve` runs it, plus two benchmark probes.

    python -m benchmarks.web_server STORE NOW PORT PUSH_INTERVAL [--trusted-proxy ADDR] [--failed-auth-limit N]

Built like `serve` (`create_app` over an engine with the default cache age, `make_server` with INFO
logs and the access log, on stderr and stdout: the benchmark sends them to a file), with the clock
fixed at NOW, MCP over HTTP left out (it has its own target, over stdio), and the per-key limits
(rate, burst, WebSockets per key, and the ingest rate and burst, as `serve --rate-limit --rate-burst
--ingest-rate-limit --ingest-burst` would) raised so that one benchmark key can drive thousands of
requests, sockets and imports: the limits are policy, not speed. `GET /bench/ticks` lists every
finished push tick: its CLOCK_MONOTONIC start (shared by the processes of one machine, so clients
can time their updates against it), how long it took and how many dashboards the hub computed for it.
The refused-credential budget keeps `serve`'s defaults unless told (`--failed-auth-limit`, and
`--trusted-proxy` so that a benchmark client can speak for many addresses through X-Forwarded-For).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from typing import Final

LIMIT: Final = 10**9
TICKS_PATH: Final = "/bench/ticks"


def main(argv: list[str]) -> int:
    """Serve until terminated."""
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from cymetica_mcp.auth import Authenticator, jwt_secret
    from cymetica_mcp.engine import open_engine
    from cymetica_mcp.store import SQLiteStore
    from cymetica_mcp.web import WebOptions, bind, create_app, make_server

    parser = argparse.ArgumentParser(prog="benchmarks.web_server")
    for name in ("store", "now", "port", "push_interval"):
        parser.add_argument(name)
    parser.add_argument("--trusted-proxy", action="append", default=[])
    parser.add_argument("--failed-auth-limit", type=int)
    args = parser.parse_args(argv)
    store_path, now, port, push_interval = args.store, args.now, args.port, args.push_interval
    limit = args.failed_auth_limit
    failures = {} if limit is None else {"failures_per_address": limit, "failures_total": 20 * limit}
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    store = SQLiteStore(store_path)
    engine = open_engine(store, now=int(now))
    authenticator = Authenticator(store, jwt_secret(store, None))
    options = WebOptions(
        public_url=f"http://127.0.0.1:{port}",
        push_interval=float(push_interval),
        rate_per_minute=LIMIT,
        rate_burst=LIMIT,
        connections_per_key=LIMIT,
        ingest_rate_per_minute=LIMIT,
        ingest_burst=LIMIT,
        mcp=False,
        trusted_proxies=tuple(args.trusted_proxy),
        **failures,
    )
    app = create_app(engine, authenticator, options)
    ticks: list[dict[str, float]] = []
    push = app.hub.push

    async def timed_push() -> None:
        started, computed = time.monotonic(), app.hub.computations
        await push()
        ticks.append(
            {
                "start": started,
                "seconds": time.monotonic() - started,
                "computations": app.hub.computations - computed,
            }
        )

    app.hub.push = timed_push  # type: ignore[method-assign]  # before the lifespan starts the loop

    async def report(request: Request) -> JSONResponse:
        return JSONResponse({"ticks": ticks})

    app.router.routes.append(Route(TICKS_PATH, report))
    sock = bind("127.0.0.1", int(port))
    server = make_server(app, log_level="info")
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
        engine.close()
        authenticator.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
