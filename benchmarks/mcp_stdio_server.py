"""The project's MCP server over stdio, plus one no-op tool: the reference for the MCP round trip.

    CYMETICA_API_KEY=... python -m benchmarks.mcp_stdio_server STORE NOW LOGFILE

Built as `cymetica-mcp mcp` builds it (`create_server` over an engine with the default cache age,
INFO logs), with the clock fixed at NOW so every run serves the same figures, and its logs written to
LOGFILE rather than the benchmark's terminal. The extra tool `noop` returns a constant: the
difference between the two round trips is what the dashboard tool itself costs.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Final

NOOP_TOOL: Final = "noop"


def main(argv: list[str]) -> int:
    """Serve over stdio until the client closes the pipe."""
    from cymetica_mcp.auth import Authenticator, jwt_secret
    from cymetica_mcp.engine import open_engine
    from cymetica_mcp.mcp_server import create_server
    from cymetica_mcp.store import SQLiteStore

    store_path, now, logfile = argv
    logging.basicConfig(
        level=logging.INFO,
        filename=logfile,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    store = SQLiteStore(store_path)
    engine = open_engine(store, now=int(now))
    authenticator = Authenticator(store, jwt_secret(store, None))
    server = create_server(engine, authenticator, api_key=os.environ.get("CYMETICA_API_KEY"))

    def noop() -> str:
        """Do nothing: the reference round trip."""
        return "ok"

    server.add_tool(noop, name=NOOP_TOOL)
    try:
        server.run("stdio")
    finally:
        engine.close()
        authenticator.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
