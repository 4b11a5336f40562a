"""One server on PostgreSQL answers every door as one on SQLite does, for the same data.

The demo store on each backend (SQLite's private copy, PostgreSQL's copy of the session's import), the
same API key, the same requests over real HTTP: REST dashboards, ingest (accepted, repeated, refused),
the dashboards after it, and the MCP tool and resources through the SDK's client. Every answer must be
equal as JSON values, except the seconds an import took and the instant an MCP answer was computed.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from cymetica_mcp.auth import KeyRing
from cymetica_mcp.mcp_server import TOOL_NAME
from cymetica_mcp.models import Filter, Period, Scope
from cymetica_mcp.store import SQLiteStore, Store
from cymetica_mcp.windows import iso
from tests.backends import pg_copy
from tests.conftest import NOW
from tests.postgres import Cluster

from .conftest import serving

pytestmark = pytest.mark.anyio

PAIRS = [(f.value, p.value) for f in Filter for p in Period]
AT = iso(NOW - 60)
USERS = (
    '{"user_id": "live-h", "kind": "human", "capital_usdc": "1000", "created_at": "2026-01-01T00:00:00Z"}\n'
    '{"user_id": "live-a", "kind": "agent", "capital_usdc": "0.5", "created_at": "2026-01-01T00:00:00Z"}\n'
)
HEADER = "trade_id,user_id,ts,volume_usdc,pnl_usdc\n"
GOOD = HEADER + f"live-1,live-h,{AT},250.125,-3\nlive-2,live-a,{AT},100,7.5\nlive-1,live-a,{AT},1,1\n"
BAD = HEADER + f"ok-1,live-h,{AT},1,0\nbad-1,ghost,{AT},1,0\nbad-2,live-h,{AT},-5,0\n"


def untimed(envelope: dict[str, Any] | None) -> dict[str, Any] | None:
    """An MCP envelope without `meta.computed_at` (the wall-clock instant it was computed)."""
    if envelope is None or "meta" not in envelope:
        return envelope
    return {**envelope, "meta": {k: v for k, v in envelope["meta"].items() if k != "computed_at"}}


async def answers(store: Store) -> dict[str, Any]:
    """What every door answers for `store`, in order (imports change it on the way)."""
    _, secret = KeyRing(store).create("compare", (Scope.READ, Scope.INGEST))
    got: dict[str, Any] = {}
    with serving(store) as served:
        auth = {"Authorization": f"Bearer {secret}"}
        async with httpx.AsyncClient(base_url=served.url, headers=auth, timeout=30) as http:

            async def dashboards(tag: str) -> None:
                for f, p in PAIRS:
                    resp = await http.get("/api/v1/analytics/dashboard", params={"filter": f, "period": p})
                    got[f"{tag} {f} {p}"] = (resp.status_code, resp.json())

            def posted(resp: httpx.Response) -> tuple[int, dict[str, Any]]:
                body: dict[str, Any] = resp.json()
                body.pop("seconds", None)  # how long the import took: the one figure that may differ
                return resp.status_code, body

            await dashboards("before")
            bad_period = await http.get("/api/v1/analytics/dashboard", params={"period": "1y"})
            got["bad period"] = (bad_period.status_code, bad_period.json())
            csv, jsonl = {"Content-Type": "text/csv"}, {"Content-Type": "application/x-ndjson"}
            got["users"] = posted(await http.post("/api/v1/ingest/users", content=USERS, headers=jsonl))
            got["refused"] = posted(await http.post("/api/v1/ingest/trades", content=BAD, headers=csv))
            got["trades"] = posted(await http.post("/api/v1/ingest/trades", content=GOOD, headers=csv))
            got["retry"] = posted(await http.post("/api/v1/ingest/trades", content=GOOD, headers=csv))
            await dashboards("after")
        async with (
            httpx2.AsyncClient(headers=auth, timeout=30) as http2,
            Client(streamable_http_client(f"{served.url}/mcp", http_client=http2)) as mcp,
        ):
            got["tools"] = [tool.name for tool in (await mcp.list_tools()).tools]
            for f, p in PAIRS:
                result = await mcp.call_tool(TOOL_NAME, {"filter": f, "period": p})
                got[f"mcp {f} {p}"] = (result.is_error, untimed(result.structured_content))
            refused = await mcp.call_tool(TOOL_NAME, {"period": "1y"})
            got["mcp refused"] = (refused.is_error, refused.structured_content)
            got["resources"] = sorted(str(r.uri) for r in (await mcp.list_resources()).resources)
            read = await mcp.read_resource("analytics://dashboard/humans/30d")
            got["resource"] = [untimed(json.loads(getattr(part, "text", "null"))) for part in read.contents]
    return got


async def test_rest_and_mcp_on_postgresql_answer_as_on_sqlite(
    demo_store: SQLiteStore, pg_cluster: Cluster, pg_demo_original: str
) -> None:
    lite = await answers(demo_store)
    with pg_copy(pg_cluster, pg_demo_original) as store:
        pg = await answers(store)
    assert lite.keys() == pg.keys()
    differing = [name for name in lite if lite[name] != pg[name]]
    assert not differing, f"PostgreSQL answers differently at: {differing}\n" + "\n".join(
        f"{name}:\n  sqlite:     {str(lite[name])[:2000]}\n  postgresql: {str(pg[name])[:2000]}"
        for name in differing[:2]
    )
    # the comparison covers what it claims: imports happened, were refused, and moved the figures
    assert lite["users"][0] == 200 and lite["users"][1]["users_inserted"] == 2
    assert lite["refused"][0] == 400 and lite["refused"][1]["total"] == 2
    assert (lite["trades"][1]["trades_inserted"], lite["retry"][1]["trades_present"]) == (2, 3)
    assert lite["before all 24h"] != lite["after all 24h"]
    assert lite["bad period"][0] == 400 and lite["mcp refused"][0] is True
    assert lite["mcp all 24h"][1]["data"] == lite["after all 24h"][1]
    assert lite["mcp all 24h"][1]["meta"]["data_version"] == lite["retry"][1]["data_version"]
