"""The command line, `cymetica-mcp`: import, dashboard, demo, keys, mcp, serve and token commands."""

from __future__ import annotations

from cymetica_mcp.cli._main import main

__all__ = ["main"]
