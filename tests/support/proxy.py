"""A real HTTP proxy on 127.0.0.1 for tests, in a daemon thread with its own event loop.

It does what a corporate proxy does with the two kinds of request a client sends it: an
absolute-URI request (``GET http://host:port/path HTTP/1.1``, for ``http://`` targets) is
forwarded to the target in origin form, its ``Proxy-Authorization`` left out, one request per
connection (``Connection: close``); ``CONNECT host:port`` (for ``https://`` targets) is answered
``200`` and then the bytes are passed both ways unread (the tunnel: the proxy never sees what
goes through it). ``auth=("user", "pass")`` asks for Basic credentials first (``407`` with
``Proxy-Authenticate`` without them or with others); ``close=True`` makes a proxy that closes
each connection as soon as the request head is in.

``seen`` lists each request the proxy was asked (method, target, headers), for a test to count.
"""

from __future__ import annotations

import asyncio
import base64
import threading
from dataclasses import dataclass, field
from urllib.parse import urlsplit


@dataclass
class Seen:
    method: str
    target: str
    headers: dict[str, str] = field(default_factory=dict)


class LocalProxy:
    def __init__(self, *, auth: tuple[str, str] | None = None, close: bool = False) -> None:
        self.auth = auth
        self.close = close
        self.port = 0
        self.seen: list[Seen] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.AbstractServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url_with_auth(self, user: str, password: str) -> str:
        return f"http://{user}:{password}@127.0.0.1:{self.port}"

    def __enter__(self) -> LocalProxy:
        ready = threading.Event()

        def serve() -> None:
            loop = self._loop = asyncio.new_event_loop()
            self._server = loop.run_until_complete(asyncio.start_server(self._client, "127.0.0.1", 0))
            self.port = self._server.sockets[0].getsockname()[1]
            ready.set()
            loop.run_forever()
            self._server.close()
            loop.run_until_complete(self._server.wait_closed())
            loop.close()

        self._thread = threading.Thread(target=serve, name="LocalProxy", daemon=True)
        self._thread.start()
        ready.wait(30)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await self._serve(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        method, target, _version = lines[0].split(" ", 2)
        headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
        self.seen.append(Seen(method, target, headers))
        if self.close:
            return
        if self.auth is not None:
            expected = "Basic " + base64.b64encode(":".join(self.auth).encode()).decode()
            if headers.get("Proxy-Authorization") != expected:
                writer.write(b"HTTP/1.1 407 Proxy Authentication Required\r\n"
                             b"Proxy-Authenticate: Basic realm=\"test\"\r\nContent-Length: 0\r\n"
                             b"Connection: close\r\n\r\n")
                await writer.drain()
                return
        if method == "CONNECT":
            host, _, port = target.rpartition(":")
            up_reader, up_writer = await asyncio.open_connection(host, int(port))
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            await writer.drain()
            await _pipe_both(reader, writer, up_reader, up_writer)
            return
        parts = urlsplit(target)
        up_reader, up_writer = await asyncio.open_connection(parts.hostname, parts.port or 80)
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        kept = {k: v for k, v in headers.items()
                if k.lower() not in ("proxy-authorization", "proxy-connection", "connection")}
        kept["Connection"] = "close"
        up_writer.write(f"{method} {path} HTTP/1.1\r\n".encode("latin-1")
                        + "".join(f"{k}: {v}\r\n" for k, v in kept.items()).encode("latin-1") + b"\r\n")
        length = int(headers.get("Content-Length", "0") or 0)
        if length:
            up_writer.write(await reader.readexactly(length))
        await up_writer.drain()
        await _copy(up_reader, writer)
        up_writer.close()


async def _copy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while chunk := await reader.read(65536):
            writer.write(chunk)
            await writer.drain()
    except ConnectionError:
        pass


async def _pipe_both(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                     up_reader: asyncio.StreamReader, up_writer: asyncio.StreamWriter) -> None:
    up = asyncio.ensure_future(_copy(reader, up_writer))
    down = asyncio.ensure_future(_copy(up_reader, writer))
    await asyncio.wait([up, down], return_when=asyncio.FIRST_COMPLETED)
    up.cancel()
    down.cancel()
    up_writer.close()
