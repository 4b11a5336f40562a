"""A loopback HTTP/1.1 proxy that adds `Authorization: Bearer <key>` to every request, and nothing else.

The MCP conformance suite cannot send a header, and the server has no mode without authentication, so
the suite talks to this proxy, which talks to the real server. It is deliberately transparent:

- Request heads are forwarded byte for byte except that any `Authorization` line is dropped and the
  proxy's own is added. `Host` and `Origin` pass unchanged, so the server's DNS-rebinding check sees
  exactly what the suite sent (the `dns-rebinding-protection` scenario tests the server, not the proxy).
- Request bodies are forwarded as framed (`Content-Length` or chunked), so keep-alive connections
  carry one request after another.
- Responses are not parsed at all: bytes go back as they arrive, so Server-Sent Event streams stream.

It serves only 127.0.0.1 and lives as long as the `running_proxy` block that started it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

HEAD_LIMIT = 64 * 1024
"""Largest request head accepted; the suite's are well under 2 KB."""


class BadRequest(Exception):
    """A request the proxy cannot frame: it closes the connection (the suite never sends one)."""


@dataclass
class Proxy:
    """A running proxy: its URL, and how many requests it forwarded (a test checks traffic went through)."""

    url: str
    forwarded: int = 0
    hosts: list[str] = field(default_factory=list)


def _rewrite_head(head: bytes, authorization: bytes) -> tuple[bytes, int | None, bool, str]:
    """The head with our Authorization, the body's Content-Length, whether it is chunked, and its Host."""
    lines = head.split(b"\r\n")
    kept = [lines[0]]
    length: int | None = None
    chunked = False
    host = ""
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(b":")
        if not sep:
            raise BadRequest(f"malformed header line {line[:80]!r}")
        lowered = name.strip().lower()
        if lowered == b"authorization":
            continue
        if lowered == b"content-length":
            length = int(value.strip())
        elif lowered == b"transfer-encoding":
            chunked = b"chunked" in value.lower()
        elif lowered == b"host":
            host = value.strip().decode("latin-1")
        kept.append(line)
    kept.append(b"Authorization: " + authorization)
    return b"\r\n".join(kept) + b"\r\n\r\n", length, chunked, host


async def _copy_chunked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Forward one chunked body verbatim, up to and including its trailer's blank line."""
    while True:
        size_line = await reader.readuntil(b"\r\n")
        writer.write(size_line)
        size = int(size_line.split(b";", 1)[0].strip(), 16)
        if size == 0:
            while True:  # trailer fields, then the blank line
                line = await reader.readuntil(b"\r\n")
                writer.write(line)
                if line == b"\r\n":
                    return
        writer.write(await reader.readexactly(size + 2))
        await writer.drain()


async def _requests(
    proxy: Proxy,
    client: asyncio.StreamReader,
    upstream: asyncio.StreamWriter,
    authorization: bytes,
) -> None:
    """Forward the client's requests, one after another, until it closes its side."""
    while True:
        try:
            head = await client.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return  # the client closed between requests
        except asyncio.LimitOverrunError as error:
            raise BadRequest("request head too large") from error
        rewritten, length, chunked, host = _rewrite_head(head, authorization)
        proxy.forwarded += 1
        proxy.hosts.append(host)
        upstream.write(rewritten)
        if chunked:
            await _copy_chunked(client, upstream)
        elif length:
            upstream.write(await client.readexactly(length))
        await upstream.drain()


async def _responses(upstream: asyncio.StreamReader, client: asyncio.StreamWriter) -> None:
    """Copy the server's bytes back as they come."""
    while data := await upstream.read(65_536):
        client.write(data)
        await client.drain()


@asynccontextmanager
async def running_proxy(target_host: str, target_port: int, api_key: str) -> AsyncIterator[Proxy]:
    """Serve the proxy on 127.0.0.1:<free port> for the duration of the block.

    When either side of a connection closes, so does the other (an HTTP client that is gone takes its
    open SSE streams with it, and the server sees them end); at the end of the block every connection
    still open is closed and its handler awaited, so no socket outlives the proxy.
    """
    authorization = f"Bearer {api_key}".encode("ascii")
    handlers: set[asyncio.Task[None]] = set()
    writers: set[asyncio.StreamWriter] = set()

    async def relay(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(target_host, target_port, limit=HEAD_LIMIT)
        writers.add(up_writer)
        directions = {
            asyncio.create_task(_requests(proxy, client_reader, up_writer, authorization)),
            asyncio.create_task(_responses(up_reader, client_writer)),
        }
        try:
            await asyncio.wait(directions, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for direction in directions:
                direction.cancel()
            await asyncio.wait(directions)
            for direction in directions:  # retrieve every outcome: a closed peer is how relays end
                if not direction.cancelled():
                    direction.exception()
            up_writer.close()

    async def handle(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        handlers.add(task)
        writers.add(client_writer)
        try:
            await relay(client_reader, client_writer)
        except OSError:
            pass  # the server refused or dropped the connection: the client sees it closed
        finally:
            client_writer.close()
            handlers.discard(task)

    server = await asyncio.start_server(handle, "127.0.0.1", 0, limit=HEAD_LIMIT)
    port = server.sockets[0].getsockname()[1]
    proxy = Proxy(f"http://127.0.0.1:{port}")
    try:
        yield proxy
    finally:
        server.close()
        for writer in list(writers):
            writer.close()  # ends both relays of its connection
        if handlers:
            await asyncio.wait(set(handlers), timeout=5)
        for writer in list(writers):
            with contextlib.suppress(OSError):
                await writer.wait_closed()
        await server.wait_closed()
