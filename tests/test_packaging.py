"""A plain `pip install` of the built wheel, no extras, in a fresh venv: every door answers.

The dev tools are not there, so this catches a runtime dependency kept only in the dev extras (as
`websockets` once was: without it uvicorn answers /ws/analytics with 404).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import venv
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from mcp import Client, StdioServerParameters
from websockets.sync.client import connect

from tests.web.helpers import MCP_INITIALIZE

ROOT = Path(__file__).resolve().parents[1]
NOW_ISO = "2026-03-20T12:34:56Z"


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The `bin` folder of a fresh venv holding the wheel built from this tree, without extras."""
    folder = tmp_path_factory.mktemp("plain")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(folder / "dist"), str(ROOT)],
        check=True,
        timeout=300,
    )
    (wheel,) = (folder / "dist").glob("cymetica_mcp-*.whl")
    venv.EnvBuilder(with_pip=True).create(folder / "venv")
    bin = folder / "venv" / "bin"
    subprocess.run(
        [str(bin / "python"), "-m", "pip", "install", "--quiet", str(wheel)], check=True, timeout=600
    )
    return bin


def cli(bin: Path, db: Path, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CYMETICA_")} | {"CYMETICA_NOW": NOW_ISO}
    done = subprocess.run(
        [str(bin / "cymetica-mcp"), "--db", str(db), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture
def store(installed: Path, tmp_path: Path) -> tuple[Path, str]:
    """A demo store made by the installed command, and a key that may read and ingest."""
    db = tmp_path / "plain.db"
    cli(installed, db, "demo", "--users", "50", "--trades", "500", "--now", NOW_ISO)
    return db, cli(installed, db, "keys", "create", "--name", "plain", "--scope", "read,ingest").strip()


@pytest.fixture
def serving(installed: Path, store: tuple[Path, str]) -> Iterator[tuple[str, str]]:
    """The installed `serve` on a free loopback port: (url, key)."""
    db, key = store
    env = {k: v for k, v in os.environ.items() if not k.startswith("CYMETICA_")} | {"CYMETICA_NOW": NOW_ISO}
    server = subprocess.Popen(
        [str(installed / "cymetica-mcp"), "--db", str(db), "serve", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    try:
        assert server.stdout is not None
        url = None
        for line in server.stdout:  # the banner's first line names the URL once it listens
            found = re.search(r" at (http://127\.0\.0\.1:\d+)$", line.strip())
            if found:
                url = found.group(1)
                break
        assert url, "the installed server printed no URL"
        yield url, key
    finally:
        server.terminate()
        server.wait(30)
        if server.stdout is not None:
            server.stdout.close()


def test_a_plain_install_serves_every_door(serving: tuple[str, str]) -> None:
    url, key = serving
    auth = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=url, headers=auth, timeout=30) as http:
        assert http.get("/healthz").status_code == 200
        page = http.get("/")  # the page's files ship in the wheel
        assert page.status_code == 200 and "/assets/page.js" in page.text
        assert all(
            http.get(f"/assets/{name}").status_code == 200 for name in ("page.js", "page.css", "icon.svg")
        )
        board = http.get("/api/v1/analytics/dashboard", params={"filter": "agents", "period": "7d"})
        assert board.status_code == 200 and board.json()["metrics"]["filter"] == "agents"
        token = http.post("/api/v1/auth/token").json()["access_token"]
        trade = "trade_id,user_id,ts,volume_usdc,pnl_usdc\nplain-1,h0000001,2026-03-20T12:30:00Z,5,1\n"
        ingested = http.post("/api/v1/ingest/trades", content=trade, headers={"Content-Type": "text/csv"})
        assert ingested.status_code == 200 and ingested.json()["trades_inserted"] == 1
        mcp = http.post(
            "/mcp",
            headers={"Accept": "application/json, text/event-stream"},
            json=MCP_INITIALIZE,
        )
        assert mcp.status_code == 200 and "cymetica-analytics" in mcp.text
    with connect(url.replace("http", "ws") + f"/ws/analytics?token={token}") as ws:
        assert json.loads(ws.recv(timeout=10))["type"] == "connected"
        assert json.loads(ws.recv(timeout=10))["type"] == "analytics_update"


@pytest.mark.anyio
async def test_a_plain_install_serves_mcp_over_stdio(store: tuple[Path, str], installed: Path) -> None:
    db, key = store
    env = {
        "CYMETICA_DB": str(db),
        "CYMETICA_API_KEY": key,
        "CYMETICA_NOW": NOW_ISO,
        "PATH": os.environ["PATH"],
    }
    params = StdioServerParameters(command=str(installed / "cymetica-mcp"), args=["mcp"], env=env)
    async with Client(params) as client:
        result = await client.call_tool("et_analytics_dashboard", {"filter": "humans", "period": "30d"})
        (view,) = (await client.read_resource("ui://cymetica/dashboard.html")).contents
    assert view.mime_type == "text/html;profile=mcp-app" and "ui/initialize" in view.text  # type: ignore[union-attr]
    assert not result.is_error and result.structured_content is not None
    assert result.structured_content["data"]["metrics"]["filter"] == "humans"
