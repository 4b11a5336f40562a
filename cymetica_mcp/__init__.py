"""cymetica-mcp: exact, live analytics of a trading platform for AI agents and people."""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"
