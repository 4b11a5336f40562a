"""The official MCP conformance suite against the server's `/mcp`, and the Node.js 22 it runs on.

Both are npm packages pinned in this folder (package.json, package-lock.json); `.ci/run` installs them
into its (git-ignored) node_modules with `npm ci`, as anyone can.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

HERE: Final = Path(__file__).resolve().parent
PINNED_NODE: Final = HERE / "node_modules" / ".bin" / "node"
"""Node.js 22 from the npm package `node` (the suite needs 22 or newer; the JavaScript examples 20+)."""
SUITE: Final = HERE / "node_modules" / "@modelcontextprotocol" / "conformance" / "dist" / "index.js"
"""The suite's command-line entry point, run with the pinned Node (its own `#!` would take PATH's)."""
INSTALL: Final = "cd tests/conformance && npm ci"
"""What installs both (npm itself comes with any Node.js: `apt-get install -y npm`)."""
