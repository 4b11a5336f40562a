"""An agent's first steps with cymetica-mcp: start the server over stdio, list its tools, ask for dashboards.

Uses only the official MCP SDK client, exactly as an agent framework or a desktop host would:

    cymetica-mcp --db demo.db demo                                # some data (once)
    export CYMETICA_API_KEY=$(cymetica-mcp --db demo.db keys create --name agent)
    CYMETICA_DB=demo.db python examples/agent_stdio.py

Every CYMETICA_* variable of this process is passed on to the server (the key, the store, a fixed
CYMETICA_NOW for reproducible figures); nothing else of the environment is, as the SDK does for hosts.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import anyio
from mcp import Client, StdioServerParameters

TOOL = "et_analytics_dashboard"
QUESTIONS = [("all", "24h"), ("humans", "7d"), ("agents", "7d"), ("agents", "30d")]


def server_command() -> str:
    """`cymetica-mcp` beside this Python (a virtualenv), else the one on PATH."""
    beside = Path(sys.executable).parent / "cymetica-mcp"
    return str(beside) if beside.exists() else shutil.which("cymetica-mcp") or "cymetica-mcp"


def server_parameters() -> StdioServerParameters:
    """How to start the server: `cymetica-mcp mcp` with this process's CYMETICA_* settings."""
    env = {name: value for name, value in os.environ.items() if name.startswith("CYMETICA_")}
    return StdioServerParameters(command=server_command(), args=["mcp"], env=env)


def envelope_of(result: Any) -> dict[str, Any]:
    """The tool's envelope: structured content, or the JSON text for clients without it."""
    if result.structured_content is not None:
        return dict(result.structured_content)
    return dict(json.loads(result.content[0].text))


async def main() -> int:
    """List the tools, then ask for several filter/period pairs and print what the agent would read."""
    async with Client(server_parameters()) as client:
        listing = await client.list_tools()
        for tool in listing.tools:
            properties = tool.input_schema.get("properties", {})
            print(f"tool {tool.name}: {tool.title}")
            print(f"  {tool.description.split(chr(10))[0] if tool.description else ''}")
            for name, schema in properties.items():
                choices = "|".join(schema.get("enum", [])) or "ISO 8601 time"
                print(f"  - {name}: {choices} (default {schema.get('default')})")
        print()
        for filter, period in QUESTIONS:
            result = await client.call_tool(TOOL, {"filter": filter, "period": period})
            envelope = envelope_of(result)
            if result.is_error:
                error = envelope["error"]
                print(f"error ({error['code']}): {error['message']}", file=sys.stderr)
                return 1
            meta = envelope["meta"]
            print(envelope["description"])
            print(
                f"  as of {meta['as_of']}: window {meta['window']['start']} .. {meta['window']['end']}, "
                f"compared with {meta['previous_window']['start']} .. {meta['previous_window']['end']}, "
                f"data version {meta['data_version']}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(anyio.run(main))
