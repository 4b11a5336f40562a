"""The REST reference: a bare Starlette route returning fixed bytes, served by uvicorn like the app.

    python -m benchmarks.bare_server PORT PATH BODY_FILE

No auth, no engine, no middleware: one route answering GET PATH with the bytes of BODY_FILE as
application/json, under the same uvicorn settings as the app (INFO logs and the access log, which
the benchmark sends to a file). What the project's REST door costs beyond this is what the ratio
measures.
"""

from __future__ import annotations

import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    """Serve until killed."""
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    port, path, body_file = argv
    body = Path(body_file).read_bytes()

    async def endpoint(request: Request) -> Response:
        return Response(body, media_type="application/json")

    app = Starlette(routes=[Route(path, endpoint)])
    uvicorn.run(app, host="127.0.0.1", port=int(port), log_level="info", access_log=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
