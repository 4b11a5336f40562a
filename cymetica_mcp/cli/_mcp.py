"""Commands of the MCP door: `keys create|list|revoke` and `mcp` (the stdio server).

`mcp` writes nothing but protocol on stdout: every message of ours goes to stderr through logging.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from datetime import UTC, datetime
from typing import Final

from cymetica_mcp.auth import Authenticator, KeyInfo, KeyRing, configured_secret, rotate_jwt_secret
from cymetica_mcp.cli._index import add_horizon, horizon_days
from cymetica_mcp.config import Settings
from cymetica_mcp.engine import open_engine
from cymetica_mcp.errors import AnalyticsError
from cymetica_mcp.models import Scope
from cymetica_mcp.store import open_store

log = logging.getLogger(__name__)


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `keys` and `mcp` on the main parser's subcommands."""
    keys = commands.add_parser("keys", help="create, list and revoke API keys")
    actions = keys.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    create = actions.add_parser("create", help="create a key and print its secret (shown only this once)")
    create.add_argument("--name", required=True, help="what the key is for, e.g. claude-desktop")
    create.add_argument(
        "--scope",
        default="read",
        help="what it may do, comma-separated: read (dashboards on every door), ingest (write users "
        "and trades); default read",
    )
    create.add_argument(
        "--expires",
        metavar="DURATION",
        help="refuse the key after this long, e.g. 90d, 12h, 30m (default: never)",
    )
    create.set_defaults(run=_create)
    listing = actions.add_parser(
        "list", help="list keys: id, name, prefix, scopes, created, expires, last used, status"
    )
    listing.add_argument("--json", action="store_true", help="print JSON instead of a table")
    listing.set_defaults(run=_list)
    revoke = actions.add_parser("revoke", help="revoke a key: refused at once, also by running servers")
    revoke.add_argument("id", type=int, help="the key's id (see `keys list`)")
    revoke.set_defaults(run=_revoke)
    rotate = actions.add_parser(
        "rotate-jwt-secret",
        help="replace the stored JWT secret: every JWT issued so far is refused, keys are not",
    )
    rotate.set_defaults(run=_rotate)

    mcp = commands.add_parser(
        "mcp", help="run the MCP server over stdio (key from CYMETICA_API_KEY); for hosts like Claude Desktop"
    )
    add_horizon(mcp)
    mcp.set_defaults(run=_mcp)


def _when(ts: int | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _status(key: KeyInfo) -> str:
    if not key.active:
        return "revoked"
    return "expired" if key.expired(time.time()) else "active"


def parse_duration(text: str) -> int:
    """`90d`, `12h`, `30m` or `45s` as seconds; anything else refused, saying what is accepted."""
    number, unit = text.strip()[:-1], text.strip()[-1:].lower()
    if unit in _UNITS and number.isascii() and number.isdigit() and int(number) > 0:
        return int(number) * _UNITS[unit]
    raise AnalyticsError(
        "invalid_argument",
        f"--expires must be a positive whole number of d, h, m or s, such as 90d; got {text!r}",
    )


_UNITS: Final = {"d": 86_400, "h": 3_600, "m": 60, "s": 1}


def _create(args: argparse.Namespace, settings: Settings) -> int:
    scopes = Scope.parse_list(args.scope)
    lifetime = None if args.expires is None else parse_duration(args.expires)
    info, secret = KeyRing(open_store(settings.db)).create(args.name, scopes, lifetime)
    print(secret)
    expiry = "never expires" if info.expires_at is None else f"expires at {_when(info.expires_at)}"
    print(
        f"created API key {info.id} ({info.name!r}, prefix {info.prefix}, scopes {','.join(info.scopes)}, "
        f"{expiry}) in {settings.store_shown}.\n"
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
                "scopes": list(k.scopes),
                "expires_at": _when(k.expires_at),
                "status": _status(k),
            }
            for k in keys
        ]
        print(json.dumps(rows, indent=2))
        return 0
    if not keys:
        print("no API keys yet: create one with `cymetica-mcp keys create --name NAME`")
        return 0
    header = ("id", "name", "prefix", "scopes", "created", "expires", "last used", "status")
    table = [
        (
            str(k.id),
            k.name,
            k.prefix + "…",
            ",".join(k.scopes),
            _when(k.created_at) or "",
            _when(k.expires_at) or "never",
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


def _rotate(args: argparse.Namespace, settings: Settings) -> int:
    if settings.jwt_secret:
        raise AnalyticsError(
            "invalid_argument",
            "CYMETICA_JWT_SECRET is set, so the stored secret is not used: change that variable and restart the servers",
        )
    rotate_jwt_secret(open_store(settings.db))
    print(
        "replaced the JWT secret: every JWT issued so far is refused from the next request on, on every door; API keys still work"
    )
    return 0


def _mcp(args: argparse.Namespace, settings: Settings) -> int:
    from cymetica_mcp.mcp_server import create_server  # the SDK loads only for this command

    store = open_store(settings.db)
    engine = open_engine(
        store, now=settings.now, max_age=settings.cache_seconds, horizon_days=horizon_days(args)
    )
    authenticator = Authenticator(store, configured_secret(settings.jwt_secret))
    try:
        _check_key(authenticator, settings.api_key)
        server = create_server(engine, authenticator, api_key=settings.api_key)
        log.info(
            "MCP server on stdio, store %s (data version %d)", settings.store_shown, engine.data_version()
        )
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
