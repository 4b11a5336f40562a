"""A REST client of `cymetica-mcp serve`: a JWT for the key, every dashboard, and a cheap revalidation.

    cymetica-mcp --db demo.db demo                                   # some data (once)
    export CYMETICA_API_KEY=$(cymetica-mcp --db demo.db keys create --name rest)
    cymetica-mcp --db demo.db serve &                                # http://127.0.0.1:8000
    python examples/rest_client.py                                   # CYMETICA_URL to point elsewhere

Only httpx: the same calls work from any HTTP client (see docs/web.md for curl).
"""

from __future__ import annotations

import os
import sys
from typing import Any

import anyio
import httpx

BASE = os.environ.get("CYMETICA_URL", "http://127.0.0.1:8000").rstrip("/")
CARDS = ("active_users", "trading_volume", "retention_rate", "avg_capital", "avg_roi")


def card_line(card: dict[str, Any]) -> str:
    """`Trading Volume: 165521.49 USDC (-1.1%)`: a metric card as a person reads it."""
    change = "n/a" if card["change"] is None else f"{card['change']:+.1f}%"
    suffix = {"": "", "%": "%"}.get(card["suffix"], " " + card["suffix"])
    return f"{card['label']}: {card['value']}{suffix} ({change})"


async def main() -> int:
    """Exchange the key for a JWT, print three dashboards, then revalidate one with its ETag."""
    key = os.environ.get("CYMETICA_API_KEY")
    if not key:
        print("set CYMETICA_API_KEY (cymetica-mcp keys create --name rest)", file=sys.stderr)
        return 2
    async with httpx.AsyncClient(base_url=BASE, timeout=30) as client:
        issued = await client.post("/api/v1/auth/token", headers={"Authorization": f"Bearer {key}"})
        if issued.status_code != 200:
            print(f"token refused: {issued.status_code} {issued.json()['error']}", file=sys.stderr)
            return 1
        jwt = issued.json()["access_token"]
        print(f"JWT issued, valid for {issued.json()['expires_in']} s")
        auth = {"Authorization": f"Bearer {jwt}"}
        for filter, period in (("all", "24h"), ("humans", "7d"), ("agents", "30d")):
            resp = await client.get(
                "/api/v1/analytics/dashboard", params={"filter": filter, "period": period}, headers=auth
            )
            resp.raise_for_status()
            data = resp.json()
            m = data["metrics"]
            print(f"\n{filter}, last {period}, as of {m['timestamp']}:")
            for key_name in CARDS:
                print(f"  {card_line(m[key_name])}")
            busiest = max(data["volume_over_time"], key=lambda p: p["total_volume"])
            print(
                f"  {len(data['volume_over_time'])} volume points, busiest bucket {busiest['timestamp']} "
                f"({busiest['total_volume']} USDC in {busiest['trade_count']} trades)"
            )
        again = await client.get(
            "/api/v1/analytics/dashboard",
            params={"filter": "agents", "period": "30d"},
            headers={**auth, "If-None-Match": resp.headers["ETag"]},
        )
        print(f"\nrevalidated agents/30d with its ETag: {again.status_code}", end=" ")
        print("(unchanged, no body)" if again.status_code == 304 else "(changed: new figures)")
        wrong = await client.get("/api/v1/analytics/dashboard", params={"period": "1y"}, headers=auth)
        print(
            f"period=1y: {wrong.status_code} {wrong.json()['error']['code']}: {wrong.json()['error']['message']}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(anyio.run(main))
