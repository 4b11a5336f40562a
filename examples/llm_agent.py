"""An LLM answers questions about the trading platform by calling cymetica-mcp's tool itself.

The MCP tool list is translated into the Anthropic Messages API's tool format and a standard tool-use
loop runs: the model asks for `et_analytics_dashboard` with arguments of its choice, the call goes to
the MCP server over stdio, the result goes back to the model, until it answers.

    export CYMETICA_DB=demo.db CYMETICA_API_KEY=cym_...       # see examples/agent_stdio.py
    ANTHROPIC_API_KEY=sk-ant-... python examples/llm_agent.py "How did agents do this week vs humans?"

Without ANTHROPIC_API_KEY it prints the translated tool definitions and exits 0. Only the standard
library talks to the API (no extra dependency); ANTHROPIC_MODEL picks the model.
"""

from __future__ import annotations

import json
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import anyio.to_thread
from agent_stdio import server_parameters
from mcp import Client
from mcp.types import Tool

API_URL = "https://api.anthropic.com/v1/messages"
API_VERSION = "2023-06-01"
DEFAULT_MODEL = "claude-sonnet-4-5"
DEFAULT_QUESTION = "How active were trading agents this week compared with humans, and who made money?"
SYSTEM = (
    "You answer questions about a trading platform's analytics. Use the tools for every figure; quote "
    "figures with their units and the as_of instant from the result's meta; never invent numbers."
)

Post = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


def anthropic_tool(tool: Tool) -> dict[str, Any]:
    """One MCP tool as an Anthropic Messages API tool definition."""
    return {"name": tool.name, "description": tool.description or "", "input_schema": tool.input_schema}


def anthropic_post(api_key: str, url: str = API_URL) -> Post:
    """A function that sends one Messages API request (stdlib HTTP, on a worker thread)."""

    def send(body: dict[str, Any]) -> dict[str, Any]:
        request = urllib.request.Request(
            url,
            data=json.dumps(body).encode(),
            method="POST",
            headers={
                "x-api-key": api_key,
                "anthropic-version": API_VERSION,
                "content-type": "application/json",
            },
        )
        with urllib.request.urlopen(request, timeout=120) as response:
            reply: dict[str, Any] = json.loads(response.read())
            return reply

    async def post(body: dict[str, Any]) -> dict[str, Any]:
        return await anyio.to_thread.run_sync(send, body)

    return post


async def run_loop(
    client: Client,
    question: str,
    post: Post,
    *,
    model: str = DEFAULT_MODEL,
    max_turns: int = 8,
    show: Callable[[str], None] = print,
) -> str:
    """Ask `question`, run every tool call the model makes through MCP, and return its final text."""
    tools = [anthropic_tool(tool) for tool in (await client.list_tools()).tools]
    messages: list[dict[str, Any]] = [{"role": "user", "content": question}]
    for _ in range(max_turns):
        reply = await post(
            {"model": model, "max_tokens": 1500, "system": SYSTEM, "tools": tools, "messages": messages}
        )
        messages.append({"role": "assistant", "content": reply["content"]})
        uses = [block for block in reply["content"] if block.get("type") == "tool_use"]
        if reply.get("stop_reason") != "tool_use" or not uses:
            return "\n".join(block["text"] for block in reply["content"] if block.get("type") == "text")
        results = []
        for use in uses:
            show(f"-> {use['name']} {json.dumps(use['input'])}")
            result = await client.call_tool(use["name"], use["input"])
            text = "\n".join(block.text for block in result.content if block.type == "text")
            results.append(
                {
                    "type": "tool_result",
                    "tool_use_id": use["id"],
                    "content": text,
                    "is_error": result.is_error,
                }
            )
        messages.append({"role": "user", "content": results})
    raise RuntimeError(f"no final answer after {max_turns} turns")


async def main(argv: list[str]) -> int:
    """Print the translated tools (no API key) or answer the question on the command line."""
    question = " ".join(argv) or DEFAULT_QUESTION
    api_key = os.environ.get("ANTHROPIC_API_KEY")
    async with Client(server_parameters()) as client:
        if not api_key:
            tools = [anthropic_tool(tool) for tool in (await client.list_tools()).tools]
            print(json.dumps(tools, indent=2))
            print(
                "ANTHROPIC_API_KEY is not set: these are the tool definitions the model would get.",
                file=sys.stderr,
            )
            return 0
        model = os.environ.get("ANTHROPIC_MODEL", DEFAULT_MODEL)
        try:
            answer = await run_loop(client, question, anthropic_post(api_key), model=model)
        except urllib.error.HTTPError as exc:
            print(f"Anthropic API error {exc.code}: {exc.read().decode(errors='replace')}", file=sys.stderr)
            return 1
    print(answer)
    return 0


if __name__ == "__main__":
    sys.exit(anyio.run(main, sys.argv[1:]))
