"""`python -m cymetica_mcp` runs the command line."""

from __future__ import annotations

from cymetica_mcp.cli import main

raise SystemExit(main())
