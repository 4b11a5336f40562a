"""The command line in a child forked from multiprocessing's fork server, which imported it once.

A kill test starts a dozen imports and servers only to kill them; from the fork server each start costs
a fork instead of an interpreter start and its imports (about a second each on a busy 2-core machine).
The child runs `cymetica_mcp.cli.main`, the console script's own code, with its output in a file.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
from multiprocessing.context import ForkServerContext

import uvicorn.lifespan.on
import uvicorn.loops.asyncio
import uvicorn.protocols.http.h11_impl

import cymetica_mcp.web
from cymetica_mcp.cli import main

PRELOADED = (cymetica_mcp.web, uvicorn.lifespan.on, uvicorn.loops.asyncio, uvicorn.protocols.http.h11_impl)
"""What `serve` would import on start (uvicorn's protocols, the web door), imported in the fork server."""


def run(argv: list[str], output: str) -> None:
    """`cymetica-mcp ARGV` with stdout and stderr written to the file `output`; exits with its status."""
    for name in [name for name in os.environ if name.startswith("CYMETICA_")]:
        del os.environ[name]  # only the flags given count
    fd = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    sys.exit(main(argv))


def forks() -> ForkServerContext:
    """The fork server, with the command line (and so the whole package) imported once in it."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__])
    return context
