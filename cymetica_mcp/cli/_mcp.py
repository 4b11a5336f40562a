"""Commands of the MCP door: `keys create|list|revoke` and `mcp` (the stdio server).

`mcp` writes nothing but protocol on stdout: every message of ours goes to stderr through logging.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from datetime import UTC, datetime

from cymetica_mcp.auth import Authenticator, KeyInfo, KeyRing, jwt_secret
from cymetica_mcp.config import Settings
from cymetica_mcp.engine import open_engine
from cymetica_mcp.errors import AnalyticsError
from cymetica_mcp.store import open_store

log = logging.getLogger(__name__)


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `keys` and `mcp` on the main parser's subcommands."""
    keys = commands.add_parser("keys", help="create, list and revoke API keys")
    actions = keys.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    create = actions.add_parser("create", help="create a key and print its secret (shown only this once)")
    create.add_argument("--name", required=True, help="what the key is for, e.g. claude-desktop")
    create.set_defaults(run=_create)
    listing = actions.add_parser("list", help="list keys: id, name, prefix, created, last used, status")
    listing.add_argument("--json", action="store_true", help="print JSON instead of a table")
    listing.set_defaults(run=_list)
    revoke = actions.add_parser("revoke", help="revoke a key: refused at once, also by running servers")
    revoke.add_argument("id", type=int, help="the key's id (see `keys list`)")
    revoke.set_defaults(run=_revoke)

    mcp = commands.add_parser(
        "mcp", help="run the MCP server over stdio (key from CYMETICA_API_KEY); for hosts like Claude Desktop"
    )
    mcp.set_defaults(run=_mcp)


def _when(ts: int | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _status(key: KeyInfo) -> str:
    return "active" if key.active else "revoked"


def _create(args: argparse.Namespace, settings: Settings) -> int:
    info, secret = KeyRing(open_store(settings.db)).create(args.name)
    print(secret)
    print(
        f"created API key {info.id} ({info.name!r}, prefix {info.prefix}) in {settings.db}.\n"
        "This secret will not be shown again: store it now, e.g. as CYMETICA_API_KEY for "
        "`cymetica-mcp mcp`, or send it as 'Authorization: Bearer <key>'.",
        file=sys.stderr,
    )
    return 0


def _list(args: argparse.Namespace, settings: Settings) -> int:
    keys = KeyRing(open_store(settings.db)).list()
    if args.json:
        rows = [
            {
                "id": k.id,
                "name": k.name,
                "prefix": k.prefix,
                "created_at": _when(k.created_at),
                "last_used_at": _when(k.last_used_at),
                "revoked_at": _when(k.revoked_at),
                "status": _status(k),
            }
            for k in keys
        ]
        print(json.dumps(rows, indent=2))
        return 0
    if not keys:
        print("no API keys yet: create one with `cymetica-mcp keys create --name NAME`")
        return 0
    header = ("id", "name", "prefix", "created", "last used", "status")
    table = [
        (
            str(k.id),
            k.name,
            k.prefix + "…",
            _when(k.created_at) or "",
            _when(k.last_used_at) or "never",
            _status(k) if k.active else f"revoked {_when(k.revoked_at)}",
        )
        for k in keys
    ]
    widths = [max(len(row[i]) for row in [header, *table]) for i in range(len(header))]
    for row in [header, *table]:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    return 0


def _revoke(args: argparse.Namespace, settings: Settings) -> int:
    info = KeyRing(open_store(settings.db)).revoke(args.id)
    print(
        f"revoked API key {info.id} ({info.name!r}, prefix {info.prefix}) at {_when(info.revoked_at)}: "
        "every door refuses it from the next request on"
    )
    return 0


def _mcp(args: argparse.Namespace, settings: Settings) -> int:
    from cymetica_mcp.mcp_server import create_server  # the SDK loads only for this command

    store = open_store(settings.db)
    engine = open_engine(store, now=settings.now, max_age=settings.cache_seconds)
    authenticator = Authenticator(store, jwt_secret(store, settings.jwt_secret))
    try:
        _check_key(authenticator, settings.api_key)
        server = create_server(engine, authenticator, api_key=settings.api_key)
        log.info("MCP server on stdio, store %s (data version %d)", settings.db, engine.data_version())
        server.run("stdio")
    finally:
        engine.close()
        authenticator.close()
    return 0


def _check_key(authenticator: Authenticator, api_key: str | None) -> None:
    """Say at start-up, on stderr, whether calls will be refused (the server starts either way)."""
    from cymetica_mcp.mcp_server import NO_STDIO_KEY

    if not api_key:
        log.warning("%s; until then every call is refused with 'unauthorized'", NO_STDIO_KEY)
        return
    try:
        principal = authenticator.authenticate(api_key)
    except AnalyticsError as exc:
        log.warning("CYMETICA_API_KEY is not usable (%s); every call is refused until it is", exc.message)
        return
    log.info("API key %d (%r) accepted; it is checked again on every call", principal.key_id, principal.name)
