"""cymetica-mcp: exact, live analytics of a trading platform for AI agents and people.

One package per layer; imports only point down (import-linter checks it, docs/architecture.md
draws it):

    cli/                    the command line
    web/                    HTTP and WebSocket (mounts the MCP server at /mcp)
    mcp_server/             the MCP door
    engine/ ingest/ auth/   the figures; getting data in; who is calling
    store/                  the only code that speaks SQL
    config windows exact models errors   the vocabulary every layer shares
"""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"
