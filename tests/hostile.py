"""Small misbehaving HTTP servers for the tests: each answers as its handler says and records
every request it receives, so a test can prove what did (or did not) reach it."""

from __future__ import annotations

import asyncio
import json
import ssl
import struct
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Seen:
    """One request a server received."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Server:
    """A running server: its base URL and everything it has received so far."""

    url: str
    seen: list[Seen] = field(default_factory=list)

    def headers_named(self, name: str) -> list[str]:
        """The values of header ``name`` in every request received."""
        return [s.headers[name] for s in self.seen if name in s.headers]


@asynccontextmanager
async def serve(handler: Handler, *, tls: ssl.SSLContext | None = None) -> AsyncIterator[Server]:
    """Serve ``handler`` for every method and path on a free loopback port (https with
    ``tls``)."""
    server = Server("")

    async def record(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        server.seen.append(Seen(request.method, request.path_qs, dict(request.headers), body))
        return await handler(request)

    app = web.Application(client_max_size=16 * 1024 * 1024)
    app.router.add_route("*", "/{tail:.*}", record)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=tls)
    await site.start()
    port = runner.addresses[0][1]
    server.url = f"{'https' if tls else 'http'}://127.0.0.1:{port}"
    try:
        yield server
    finally:
        await runner.cleanup()


def json_answer(body: object, status: int = 200, **headers: str) -> Handler:
    """Always answer ``body`` as JSON."""

    async def answer(request: web.Request) -> web.StreamResponse:
        return web.Response(
            status=status,
            body=json.dumps(body).encode(),
            headers={"Content-Type": "application/json", **headers},
        )

    return answer


async def nothing_expected(request: web.Request) -> web.StreamResponse:
    """The answer of a server that should never be asked: a 200 that would look like success."""
    return web.json_response({"status": "success", "result": {}})


def redirect(status: int, location: Callable[[web.Request], str]) -> Handler:
    """Answer every request with a redirect to ``location(request)``."""

    async def answer(request: web.Request) -> web.StreamResponse:
        return web.Response(status=status, headers={"Location": location(request)})

    return answer


def streamed(chunk: bytes, *, most: int, headers: dict[str, str] | None = None) -> Handler:
    """A 200 that sends ``chunk`` again and again (up to ``most`` bytes) until the client goes."""

    async def answer(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers=headers or {})
        await response.prepare(request)
        sent = 0
        try:
            while sent < most:
                await response.write(chunk)
                sent += len(chunk)
        except (ConnectionError, RuntimeError):
            pass  # the client stopped reading and closed: what the test wants
        return response

    return answer


def gzip_bomb(decoded_mib: int) -> bytes:
    """A gzip stream of ``decoded_mib`` MiB of zeros: some 1 KB per MiB on the wire."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = bytes(1024 * 1024)
    parts = [compressor.compress(block) for _ in range(decoded_mib)]
    parts.append(compressor.flush())
    return b"".join(parts)


def tiny_png() -> bytes:
    """A valid 1x1 PNG."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00\xff\x00\x00")
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


@dataclass
class Proxy:
    """A running proxy: its URL and the request line of every request it received."""

    url: str
    requests: list[str] = field(default_factory=list)


@asynccontextmanager
async def refusing_proxy() -> AsyncIterator[Proxy]:
    """An HTTP proxy on a free loopback port that refuses every CONNECT with 403."""
    proxy = Proxy("")

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        proxy.requests.append(head.split(b"\r\n", 1)[0].decode())
        writer.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    proxy.url = f"http://127.0.0.1:{port}"
    try:
        yield proxy
    finally:
        server.close()
        await server.wait_closed()
