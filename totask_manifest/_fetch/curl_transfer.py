"""One exchange of the libcurl client (``curl.CurlClient``): what libcurl's callbacks gather
(``Transfer``: the status, headers and body, the body limit) and how its error codes are named
in the aiohttp client's words (``curl_failure``). Apart from the client, which drives libcurl
from the asyncio loop: this is the per-response half, read on every answer."""

from __future__ import annotations

import asyncio
import os
import re

import pycurl
from yarl import URL

from .._errors import FetchError
from .._proxies import Proxy, refused_reason
from .._retry import Transient
from .hops import ERROR_TEXT_BYTES, too_large_declared, too_large_read
from .urls import scrub

_CERTIFICATE_ERRORS = frozenset({58, 60, 77, 83, 90})  # peer verification, CA file, issuer, pinned key
_DISCONNECTED = 52  # CURLE_GOT_NOTHING: closed before any answer
_PARTIAL = 18  # CURLE_PARTIAL_FILE: fewer bytes than announced
_UNDECODABLE = 61  # CURLE_BAD_CONTENT_ENCODING
TIMED_OUT = 28
SERVER_DISCONNECTED = "connection error: ServerDisconnectedError: Server disconnected"  # aiohttp's words

#: libcurl's message when a proxy answered its CONNECT with another status than 2xx
_CONNECT_FAILED = re.compile(r"CONNECT tunnel failed, response (\d{3})")
#: the empty line that ends a response's headers (libcurl hands it to the header callback)
_END_OF_HEADERS = re.compile(rb"\n\r?\n")


class UnknownEncoding(Exception):
    """libcurl refused an answer for a Content-Encoding it does not know (an object stored with
    ``Content-Encoding: utf-8``); aiohttp hands such a body over as sent."""


class Transfer:
    """One exchange's state, filled by libcurl's callbacks on the loop's thread."""

    __slots__ = ("_head", "chunks", "deadline", "failure", "future", "headers", "limit", "proxy", "size",
                 "status", "stopped", "url")

    def __init__(self, url: str, future: asyncio.Future[None], limit: int, deadline: float) -> None:
        self.url = url
        #: when the attempt must be over (the loop's clock), libcurl's ``TIMEOUT_MS``
        self.deadline = deadline
        self.future = future
        self.limit = limit
        self.headers: list[bytes] = []
        self.chunks: list[bytes] = []
        self.size = 0
        self.status = 0  # 0 until the first body bytes (or the end) show the status
        self.failure: FetchError | None = None
        #: the body callback stopped the transfer on purpose (libcurl then reports a write error)
        self.stopped = False
        self._head: tuple[bytes, bytes] | None = None
        #: the proxy the request goes through (``proxies.Proxy``), None when direct
        self.proxy: Proxy | None = None

    def begin(self) -> bool:
        """Read the status once the headers are in; False refuses the body (declared too large)."""
        self.status = self.response_code()
        if 200 <= self.status < 300:
            declared = self.header(b"content-length")
            if declared and declared.isdigit() and int(declared) > self.limit:
                self.failure = too_large_declared(int(declared), self.limit)
                return False
        else:  # an error's or a redirect's body: only its start is ever quoted
            self.limit = ERROR_TEXT_BYTES
        return True

    def write(self, data: bytes) -> int | None:
        """libcurl's body callback (decoded bytes); 0 stops the transfer. The first call reads
        the status and headers (``begin``)."""
        if not self.status and not self.begin():
            self.stopped = True
            return 0
        self.chunks.append(data)
        self.size += len(data)
        if self.size > self.limit:
            if 200 <= self.status < 300:
                self.failure = too_large_read(self.limit)
            self.stopped = True  # an error's text has what it needs: the rest is not read
            return 0
        return None

    def response_code(self) -> int:
        """The last status line's code (pycurl refuses ``getinfo`` inside a callback); 0 if
        none came."""
        head = self.head()[0]
        # split at any white space: a line with no reason phrase ends right after the code
        parts = head.split(None, 2) if head[:5] == b"HTTP/" else ()
        return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0

    def header(self, name: bytes) -> str | None:
        """The first value of header ``name`` (lower case), as aiohttp's ``headers.get``: read as
        UTF-8, bytes that are not kept as surrogates (a raw UTF-8 Location is followed to the
        same URL as aiohttp follows it)."""
        head, lower = self.head()
        at = lower.find(b"\n" + name + b":")
        if at < 0:
            return None
        at += len(name) + 2
        end = head.find(b"\n", at)
        return head[at:end if end >= 0 else len(head)].strip().decode("utf-8", "surrogateescape")

    def head(self) -> tuple[bytes, bytes]:
        """The last response's status line and headers, and the same lower-cased (an interim 1xx
        response's headers are not the answer's); joined once, searched, not split. It ends at
        the headers' empty line: libcurl hands a chunked body's trailers to the header callback
        too, and they are not headers (a Location, a Content-Length sent after the body)."""
        if self._head is None:
            blob = b"".join(self.headers)
            blob = blob[blob.rfind(b"\nHTTP/") + 1:]
            end = _END_OF_HEADERS.search(blob)
            if end is not None:
                blob = blob[:end.end()]
            self._head = (blob, blob.lower())
        return self._head

    def headers_ended(self) -> bool:
        """Whether the headers' empty line came (libcurl takes an answer cut before it as whole):
        ``head`` ends with it if it came, and cannot otherwise."""
        return self.head()[0].endswith((b"\n\n", b"\n\r\n"))

    def settled(self) -> bool:
        """Whether the status alone answers: all the headers came and the status is not a 2xx.
        Such a body (a redirect's, an error's) is at most quoted, so a connection cut in it
        changes nothing, as aiohttp, which does not read it, sees it."""
        return self.status >= 300 and self.headers_ended()

    def body(self) -> bytes:
        """The body read, handed over once (an idle handle's callback still holds this object)."""
        chunks, self.chunks = self.chunks, []
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def curl_failure(curl: pycurl.Curl, code: int, message: str, transfer: Transfer) -> Exception:
    """libcurl's error ``code`` as the aiohttp client said it: ``FetchError`` for an untrusted
    certificate or an undecodable body (another attempt will not change them), else
    ``Transient`` (``describe_curl_error``)."""
    if transfer.proxy is not None and (failure := _proxy_failure(transfer.proxy, curl, code, message)):
        return failure
    if code in _CERTIFICATE_ERRORS:
        return FetchError(f"TLS certificate not trusted: {scrub(message, 120)}")
    if code == _UNDECODABLE:
        if message.startswith("Unrecognized content encoding"):
            return UnknownEncoding(message)
        return FetchError(f"undecodable body: {scrub(message, 120)}")
    return Transient(describe_curl_error(curl, code, message, transfer))


def _proxy_failure(proxy: Proxy, curl: pycurl.Curl, code: int, message: str) -> Exception | None:
    """A failure of the proxy itself, named as ``http.proxy_failure`` names aiohttp's: it refused
    the tunnel (a 407 is final: another attempt has the same credentials), or it cannot be
    reached (libcurl connects to nothing else when it has a proxy). None when it is not the proxy's."""
    refused = _CONNECT_FAILED.search(message)
    if refused:
        status = int(refused.group(1))
        return (Transient if status >= 500 else FetchError)(refused_reason(proxy, status))
    if code == pycurl.E_COULDNT_RESOLVE_PROXY:
        return Transient(f"connection error: the proxy {proxy.shown}: gaierror: {scrub(message, 120)}")
    errno = curl.getinfo(pycurl.OS_ERRNO)
    if code == pycurl.E_COULDNT_CONNECT and errno:
        where = URL(proxy.url)
        host = where.raw_host or ""
        address = (host, where.port, 0, 0) if ":" in host else (host, where.port)  # as asyncio names it
        name = type(OSError(errno, os.strerror(errno))).__name__
        return Transient(f"connection error: the proxy {proxy.shown}: {name}: [Errno {errno}] "
                         f"Connect call failed {address}")
    return None


def describe_curl_error(curl: pycurl.Curl, code: int, message: str, transfer: Transfer) -> str:
    """A connection error, a timeout or a body cut short, named as ``http.describe_error`` names
    aiohttp's (the exception at the bottom: ``ConnectionRefusedError``, not libcurl's code)."""
    if code == _DISCONNECTED:
        return SERVER_DISCONNECTED
    if code == TIMED_OUT:
        return "timed out (TimeoutError)"
    if code == _PARTIAL:
        declared = transfer.header(b"content-length")
        if declared is not None:
            received = curl.getinfo(pycurl.SIZE_DOWNLOAD_T)
            return ("body cut short: ContentLengthError: 400, message: Not enough data to satisfy "
                    f"content length header (received {received} of {declared} bytes).")
        return ("body cut short: TransferEncodingError: 400, message: "
                "Not enough data to satisfy transfer length header.")
    errno = curl.getinfo(pycurl.OS_ERRNO)
    if errno:
        error = OSError(errno, os.strerror(errno))
        name = type(error).__name__
        if code == pycurl.E_COULDNT_CONNECT:
            target = URL(transfer.url, encoded=True)
            host, port = target.raw_host or "", target.port
            address = (host, port, 0, 0) if ":" in host else (host, port)  # as asyncio names it
            text = f"[Errno {errno}] Connect call failed {address}"
        else:
            text = str(error)
        kind = "body cut short" if transfer.status else "connection error"
        return f"{kind}: {name}: {scrub(text, 120)}"
    if code == pycurl.E_COULDNT_RESOLVE_HOST:
        return f"connection error: gaierror: {scrub(message, 120)}"
    if code == pycurl.E_SSL_CONNECT_ERROR:
        return f"connection error: SSLError: {scrub(message, 120)}"
    return f"connection error: CurlError {code}: {scrub(message, 120)}"
