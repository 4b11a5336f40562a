"""The platform's side: send users and trades to `cymetica-mcp serve` as they happen, safely.

    export CYMETICA_API_KEY=$(cymetica-mcp --db demo.db keys create --name platform --scope ingest)
    cymetica-mcp --db demo.db serve &                                # http://127.0.0.1:8000
    python examples/ingest_client.py                                 # CYMETICA_URL to point elsewhere

What a production sender needs, in a few lines of httpx:
- batches as JSON Lines (one request per batch, imported whole or refused whole);
- a 429 or 503 waits for its Retry-After (with backoff) and sends the same batch again;
- a timeout or a dropped connection sends the same batch again too: trades are idempotent by
  trade_id, so a batch that did land the first time changes nothing the second (`trades_present`);
- a 400 `import_refused` is not retried: its rows say what to fix, by line.
"""

from __future__ import annotations

import json
import os
import sys
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx

BASE = os.environ.get("CYMETICA_URL", "http://127.0.0.1:8000").rstrip("/")
ATTEMPTS = 6
JSONL = {"Content-Type": "application/x-ndjson"}


def send(client: httpx.Client, what: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """POST one batch of rows to /api/v1/ingest/{what}, retrying what is safe to retry."""
    body = "".join(json.dumps(row) + "\n" for row in rows)
    delay = 0.5
    for attempt in range(1, ATTEMPTS + 1):
        try:
            response = client.post(f"/api/v1/ingest/{what}", content=body, headers=JSONL)
        except httpx.TransportError as exc:  # timeout, reset: did it land? re-sending is harmless
            print(f"  {what}: {type(exc).__name__}, sending the batch again", file=sys.stderr)
        else:
            if response.status_code == 200:
                answer: dict[str, Any] = response.json()
                return answer
            if response.status_code not in (429, 503):
                error = response.json()["error"]
                for row in response.json().get("rows", []):
                    print(f"  line {row['line']}: {row['reason']}", file=sys.stderr)
                raise SystemExit(
                    f"{what} refused ({response.status_code} {error['code']}): {error['message']}"
                )
            delay = float(response.headers.get("Retry-After", delay))
            print(f"  {what}: {response.status_code}, waiting {delay:g} s", file=sys.stderr)
        if attempt < ATTEMPTS:
            time.sleep(delay)
            delay = min(delay * 2, 30.0)
    raise SystemExit(f"{what}: gave up after {ATTEMPTS} attempts")


def main() -> int:
    """Register two users, send three batches of trades, and re-send one as a retry would."""
    key = os.environ.get("CYMETICA_API_KEY")
    if not key:
        print("set CYMETICA_API_KEY to a key with the ingest scope", file=sys.stderr)
        return 2
    run = uuid.uuid4().hex[:8]  # ids unique to this run; a real platform uses its own ids
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    users = [
        {"user_id": f"{run}-alice", "kind": "human", "capital_usdc": "2500", "created_at": now},
        {"user_id": f"{run}-bot", "kind": "agent", "capital_usdc": "1000.5", "created_at": now},
    ]
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=BASE, headers=headers, timeout=10) as client:
        answer = send(client, "users", users)
        print(f"users: {answer['users_inserted']} new, data version {answer['data_version']}")
        batches = [
            [
                {
                    "trade_id": f"{run}-{b}-{i}",
                    "user_id": users[i % 2]["user_id"],
                    "ts": now,
                    "volume_usdc": f"{10 + i}.25",
                    "pnl_usdc": f"{(-1) ** i * 0.5}",
                }
                for i in range(5)
            ]
            for b in range(3)
        ]
        for batch in [*batches, batches[0]]:  # the last: a retry of a batch that already landed
            answer = send(client, "trades", batch)
            print(
                f"trades: {answer['trades_inserted']} new, {answer['trades_present']} already present, "
                f"data version {answer['data_version']} ({answer['seconds'] * 1000:.1f} ms)"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
