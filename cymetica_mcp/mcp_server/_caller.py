"""Who is calling the MCP server: the stdio key from the environment, or the HTTP Bearer token.

Over stdio the credential is the `CYMETICA_API_KEY` value the host put in the server's environment;
over Streamable HTTP it is the `Authorization: Bearer` token, checked by the SDK's bearer middleware
through `AnalyticsTokenVerifier` and handed to the call as `get_access_token()`. Either way the
credential goes through `Authenticator.authenticate` on every call that follows a commit to the
store by anyone (and at least once a minute; see `mcp_recent`), so a key revoked by any process is
refused on the next call. The credential itself is never logged.
"""

from __future__ import annotations

from typing import Final

import anyio.to_thread
from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.auth.provider import AccessToken
from mcp.server.auth.settings import AuthSettings

from cymetica_mcp.auth import HOW_TO_GET_A_KEY, Authenticator, Principal
from cymetica_mcp.errors import AnalyticsError
from cymetica_mcp.models import Scope

__all__ = ["SCOPE", "AnalyticsTokenVerifier", "Credentials", "http_auth_settings"]

SCOPE: Final = "analytics:read"
"""The one scope every valid credential carries: reading dashboards."""

NO_STDIO_KEY: Final = (
    "no API key: the MCP server reads its key from the environment variable CYMETICA_API_KEY; "
    f"{HOW_TO_GET_A_KEY} and set it in the host's server configuration"
)


class AnalyticsTokenVerifier:
    """The SDK's `TokenVerifier` over `Authenticator`: a Bearer API key or JWT becomes an `AccessToken`."""

    def __init__(self, authenticator: Authenticator, *, resource: str | None = None) -> None:
        self.authenticator = authenticator
        self.resource = resource

    async def verify_token(self, token: str) -> AccessToken | None:
        """The access granted by `token`, or None (the SDK then answers 401) when it is not valid; a
        store that cannot be used raises its `unavailable` (the web door answers 503: the credential
        was not refused, only not checked)."""
        try:
            principal = await anyio.to_thread.run_sync(self.authenticator.authenticate, token)
        except AnalyticsError as exc:
            if exc.code == "unavailable":
                raise
            return None
        return AccessToken(
            token=token,
            client_id=f"key-{principal.key_id}",
            scopes=[SCOPE],
            resource=self.resource,
            subject=str(principal.key_id),
            claims={"name": principal.name, "via": principal.via},
        )


def http_auth_settings(resource_server_url: str, issuer_url: str | None = None) -> AuthSettings:
    """`AuthSettings` for mounting the server over Streamable HTTP as a resource server of our own keys."""
    return AuthSettings(
        issuer_url=issuer_url or resource_server_url,
        resource_server_url=resource_server_url,
        required_scopes=[SCOPE],
        # Our verifier checks the credential itself (JWT audience pinned by Authenticator).
        validate_token_resource=False,
    )


class Credentials:
    """Authenticates the current call: the HTTP Bearer token if the transport has one, else the stdio key."""

    def __init__(self, authenticator: Authenticator, api_key: str | None) -> None:
        self.authenticator = authenticator
        self._api_key = api_key.strip() if api_key else None

    def __repr__(self) -> str:
        return f"Credentials(stdio_key={'set' if self._api_key else 'unset'})"

    @property
    def has_stdio_key(self) -> bool:
        """Whether a stdio key was configured (whatever its validity)."""
        return self._api_key is not None

    async def principal(self) -> Principal:
        """The caller of the current request, or `unauthorized` with a message saying how to fix it."""
        token = get_access_token()
        return await anyio.to_thread.run_sync(self.check, token)

    def credential(self, token: AccessToken | None) -> str | None:
        """What `check(token)` authenticates: the HTTP Bearer token, else the stdio key (None: none)."""
        return token.token if token is not None else self._api_key

    def check(self, token: AccessToken | None) -> Principal:
        """The caller holding `token` (the HTTP Bearer token; None: the stdio key), or `unauthorized`;
        `forbidden` unless its key has the `read` scope (every MCP request reads dashboards).

        Synchronous (a SQLite read): call it on a worker thread. `get_access_token()` must be read on
        the request's own task, so the caller passes its value in.
        """
        principal = self._authenticated(token)
        principal.require(Scope.READ)
        return principal

    def _authenticated(self, token: AccessToken | None) -> Principal:
        if token is not None:
            return self.authenticator.authenticate(token.token)
        if self._api_key is None:
            raise AnalyticsError("unauthorized", NO_STDIO_KEY)
        try:
            return self.authenticator.authenticate(self._api_key)
        except AnalyticsError as exc:
            if exc.code != "unauthorized":  # e.g. `unavailable`: the key was not refused, only not checked
                raise
            how = "" if HOW_TO_GET_A_KEY in exc.message else f" ({HOW_TO_GET_A_KEY})"
            raise AnalyticsError(
                "unauthorized",
                f"{exc.message}; the key comes from CYMETICA_API_KEY in the server's environment{how}",
            ) from None
