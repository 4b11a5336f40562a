"""A live-stream client of `cymetica-mcp serve`: follow one dashboard, switch it, answer heartbeats.

    export CYMETICA_API_KEY=$(cymetica-mcp --db demo.db keys create --name ws)
    cymetica-mcp --db demo.db serve --push-interval 5 &
    python examples/ws_client.py              # stops after UPDATES updates (default 3); 0 = run forever

Gets a JWT first (the token travels in the URL, so a short-lived JWT is better there than the key),
then connects with `?token=`, switches to humans/7d, and prints every figure it is sent.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import anyio
import httpx
import websockets

BASE = os.environ.get("CYMETICA_URL", "http://127.0.0.1:8000").rstrip("/")
CARDS = ("active_users", "trading_volume", "retention_rate", "avg_capital", "avg_roi")


def show_update(data: dict[str, Any]) -> None:
    """Print an `analytics_update`'s cards and series lengths."""
    m = data["metrics"]
    print(f"analytics_update: {m['filter']}, last {m['period']}, as of {m['timestamp']}")
    for key in CARDS:
        card = m[key]
        change = "n/a" if card["change"] is None else f"{card['change']:+.1f}%"
        suffix = {"": "", "%": "%"}.get(card["suffix"], " " + card["suffix"])
        print(f"  {card['label']}: {card['value']}{suffix} ({change})")
    print(f"  volume series: {len(data['volume_over_time'])} points")


async def jwt_for(key: str) -> str:
    """A JWT for the API key, from POST /api/v1/auth/token."""
    async with httpx.AsyncClient(base_url=BASE, timeout=30) as client:
        resp = await client.post("/api/v1/auth/token", headers={"Authorization": f"Bearer {key}"})
        resp.raise_for_status()
        return str(resp.json()["access_token"])


async def main() -> int:
    """Stream until `UPDATES` analytics updates have arrived after the switch to humans/7d."""
    key = os.environ.get("CYMETICA_API_KEY")
    if not key:
        print("set CYMETICA_API_KEY (cymetica-mcp keys create --name ws)", file=sys.stderr)
        return 2
    wanted = int(os.environ.get("UPDATES", "3"))
    token = await jwt_for(key)
    uri = "ws" + BASE.removeprefix("http") + f"/ws/analytics?token={token}"
    seen = 0
    async with websockets.connect(uri) as ws:
        async for raw in ws:
            msg = json.loads(raw)
            kind = msg["type"]
            if kind == "connected":
                print(
                    f"connected: session {msg['session_id']}, {msg['filter']}/{msg['period']}, "
                    f"push every {msg['push_interval']} s"
                )
                await ws.send(json.dumps({"type": "set_preferences", "filter": "humans", "period": "7d"}))
            elif kind == "preferences_ack":
                print(f"preferences_ack: now {msg['filter']}/{msg['period']}")
            elif kind == "analytics_update":
                show_update(msg["data"])
                if msg["data"]["metrics"]["filter"] == "humans":
                    seen += 1
                    if wanted and seen >= wanted:
                        break
            elif kind == "heartbeat":
                await ws.send(json.dumps({"type": "ping"}))
            elif kind == "pong":
                print(f"pong at {msg['timestamp']}")
            elif kind == "error":
                print(f"error {msg['error']['code']}: {msg['error']['message']}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(anyio.run(main))
    except websockets.ConnectionClosed as closed:
        print(f"closed by the server: {closed.rcvd}", file=sys.stderr)
        sys.exit(1)
