"""One HTTP exchange under the fetch policy, straight on aiohttp (the policy's part: ``hops``).

The file method's time is the HTTP client's: on a latency-bound store every line is one GET,
so every layer around a request is paid per line. Requests used to go through httpx's
``Request``/``Response`` objects over the ``httpx-aiohttp`` transport; the same aiohttp session
used directly does the same on the wire (``tests/test_fetch_wire.py`` pins it: headers,
requoting, redirects, reasons) at a fraction of the CPU (``benchmarks/file_annotate_bench.py``).

What stays the policy's, hop by hop (``hops.HopClient``, shared with the libcurl client
``curl.CurlClient``): redirects are followed there, never by aiohttp, and each hop's URL is
checked by ``FetchPolicy.classify``; bodies are counted here while read, so a lying or
missing ``Content-Length`` or a compression bomb cannot pass ``max_body_bytes``. Retries are not made here: an attempt that may
succeed later raises ``retry.Transient`` and ``fetch.Fetcher`` decides (one backoff policy).
The whole attempt's time limit is ``Fetcher``'s ``asyncio.timeout``, so no aiohttp timer is armed.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping

import aiohttp

from .._errors import FetchError
from .._proxies import EnvProxies, Proxy, refused_reason
from .._retry import Transient
from .hops import (
    ERROR_TEXT_BYTES,
    HEADERS,
    REDIRECTS,
    HopClient,
    error_text,
    status_failure,
    too_large_declared,
    too_large_read,
    wants_text,
)
from .policy import FetchPolicy
from .urls import scrub

_IDENTITY = frozenset({"", "identity"})
#: no aiohttp timer: the caller bounds each attempt (``Fetcher``'s ``asyncio.timeout``)
NO_TIMEOUT = aiohttp.ClientTimeout(total=None, sock_connect=None, sock_read=None)
#: a request's options without a proxy (``Proxy.aiohttp_options`` with one)
DIRECT: dict = {}


def new_session(limit: int, *, limit_per_host: int = 0, headers: Mapping[str, str] | None = None,
                timeout: aiohttp.ClientTimeout = NO_TIMEOUT, keepalive_timeout: float | None = None,
                tls: ssl.SSLContext | bool = True) -> aiohttp.ClientSession:
    """The one place an aiohttp session and its connection pool are made (the fetcher's, the
    Synapse client's): ``limit`` connections, no ``trust_env`` (it costs two thread hops per
    request: proxy and netrc lookups, and netrc adds credentials). The proxy environment is read
    by its caller once, with it (``proxies.EnvProxies.read``), and each request given its proxy
    (``proxy_options``). Call it inside the event loop that will use it."""
    extra = {} if keepalive_timeout is None else {"keepalive_timeout": keepalive_timeout}
    connector = aiohttp.TCPConnector(limit=limit, limit_per_host=limit_per_host, ssl=tls, **extra)
    return aiohttp.ClientSession(connector=connector, headers=headers, timeout=timeout)


def proxy_options(proxies: EnvProxies, url: str, headers: Mapping[str, str] | None
                  ) -> tuple[Proxy | None, Mapping[str, str] | None, dict]:
    """The proxy a request to ``url`` goes through (None: direct), and the request's headers and
    aiohttp options with it (``Proxy.aiohttp_options``): an ``http://`` target is sent to the
    proxy as an absolute URI, an ``https://`` one through a CONNECT tunnel the proxy cannot read."""
    proxy = proxies.for_url(url) if proxies else None
    if proxy is None:
        return None, headers, DIRECT
    headers, options = proxy.aiohttp_options(url, headers)
    return proxy, headers, options


def proxy_failure(proxy: Proxy, exc: aiohttp.ClientError) -> Exception | None:
    """What a failure of ``proxy`` itself raises (None when ``exc`` is not the proxy's): it cannot
    be reached (``Transient``), or it refused the tunnel (``FetchError``: 407 wants other
    credentials, and another attempt will not have them; a 5xx is retried). The proxy is named, never its password."""
    if isinstance(exc, aiohttp.ClientProxyConnectionError):
        return Transient(proxy.hide(describe_error(exc).replace("connection error: ",
                                                                f"connection error: the proxy {proxy.shown}: ", 1)))
    if isinstance(exc, aiohttp.ClientHttpProxyError):  # 5xx: it could not reach the host, for now
        return (Transient if exc.status >= 500 else FetchError)(refused_reason(proxy, exc.status))
    return None


class HttpClient(HopClient):
    """One connection pool (``policy.concurrency`` connections), one aiohttp request per exchange.

    Create it inside the event loop that will use it; ``aclose`` releases the pool.
    """

    def __init__(self, policy: FetchPolicy) -> None:
        self.policy = policy
        n = policy.concurrency
        self.session = new_session(n, limit_per_host=n, headers=HEADERS)
        self.proxies = EnvProxies.read()

    async def aclose(self) -> None:
        await self.session.close()

    async def _exchange(self, method: str, url: str, data: bytes | None,
                        headers: Mapping[str, str] | None, follow: bool,
                        deadline: float | None) -> tuple[bytes, str | None]:
        proxy, headers, options = proxy_options(self.proxies, url, headers)
        try:
            async with self.session.request(method, url, data=data, headers=headers,
                                            allow_redirects=False, **options) as resp:
                status = resp.status
                if status == 407 and proxy is not None:  # an http:// target's: the proxy answered
                    raise FetchError(refused_reason(proxy, status))
                if follow and status in REDIRECTS:
                    return b"", self.next_hop(resp.url, status, resp.headers.get("Location"))
                if 200 <= status < 300:
                    return await _read_body(resp, self.policy.max_body_bytes), None
                text = await _error_text(resp, headers, proxy) if wants_text(status, follow) else None
                raise status_failure(status, resp.headers.get("Retry-After"), text)
        except aiohttp.ClientPayloadError as exc:
            if _root(exc).__class__.__name__ == "ContentEncodingError":
                raise FetchError(f"undecodable body: {scrub(str(_root(exc)), 120)}") from None
            raise Transient(describe_error(exc)) from None
        except (aiohttp.ClientError, OSError) as exc:
            if proxy is not None and isinstance(exc, aiohttp.ClientError) and (failure := proxy_failure(proxy, exc)):
                raise failure from None
            if is_certificate_error(exc):  # retrying will not make the certificate valid
                raise FetchError(f"TLS certificate not trusted: {scrub(str(exc), 120)}") from None
            raise Transient(describe_error(exc)) from None


async def _error_text(resp: aiohttp.ClientResponse, sent: Mapping[str, str] | None, proxy: Proxy | None) -> str:
    """The first bytes of an error answer, scrubbed (the credentials ``sent`` and the ``proxy``'s
    hidden), for a reason."""
    head = b""
    try:
        while len(head) < ERROR_TEXT_BYTES and (chunk := await resp.content.read(ERROR_TEXT_BYTES - len(head))):
            head += chunk
    except (aiohttp.ClientError, OSError):
        pass
    return error_text(head, sent, proxy)


async def _read_body(resp: aiohttp.ClientResponse, limit: int) -> bytes:
    """The decoded body, refused once it passes ``limit`` bytes."""
    declared = resp.headers.get("Content-Length")
    if declared and declared.isdigit():
        if int(declared) > limit:
            raise too_large_declared(int(declared), limit)
        if resp.headers.get("Content-Encoding", "").strip().lower() in _IDENTITY:
            return await resp.read()  # aiohttp reads no more than the declared length
    body = bytearray()
    async for chunk in resp.content.iter_any():
        body += chunk
        if len(body) > limit:
            raise too_large_read(limit)
    return bytes(body)


def _root(exc: BaseException) -> BaseException:
    root = exc
    while root.__cause__ is not None and root.__cause__ is not root:
        root = root.__cause__
    return root


def is_certificate_error(exc: BaseException) -> bool:
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ssl.SSLCertVerificationError) or type(cause).__name__.endswith("CertificateError"):
            return True
        cause = cause.__cause__ if cause.__cause__ is not cause else None
    return False


def describe_error(exc: BaseException) -> str:
    """Name the error at the bottom of the chain (``ConnectionRefusedError``, not aiohttp's
    wrapper), as a timeout, a body cut short or a connection error."""
    root = _root(exc)
    name = type(root).__name__
    message = scrub(str(root), 120)
    if isinstance(root, TimeoutError):
        return f"timed out ({name})"
    if isinstance(exc, aiohttp.ClientPayloadError) or "Payload" in name:
        return f"body cut short: {name}: {message}" if message else f"body cut short: {name}"
    return f"connection error: {name}: {message}" if message else f"connection error: {name}"
