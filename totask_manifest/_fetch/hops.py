"""What the two HTTP clients share: the request headers, the redirect walk, what a status means.

A fetch must not behave differently with the library that moves the bytes (aiohttp in
``http.HttpClient``, libcurl in ``curl.CurlClient``), so everything a policy decides lives here
once: redirects are followed by ``HopClient.send`` hop by hop, never by the library, and each
hop's URL is checked by ``FetchPolicy.classify`` (allow-host) and refused if it leaves http(s);
a status becomes the same ``Transient`` (5xx, 429, with ``Retry-After``) or ``FetchError``
with the same words. A client supplies one exchange (``_exchange``): send, read the status and,
for a 2xx, the body under ``max_body_bytes``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from yarl import URL

from .._errors import FetchError
from .._redaction import hide_secrets, sent_secrets
from .._retry import Transient, retryable_status
from .policy import USER_AGENT, FetchPolicy
from .urls import parse_retry_after, scrub

if TYPE_CHECKING:
    from .._proxies import Proxy

HEADERS = {"User-Agent": USER_AGENT, "Accept": "*/*", "Accept-Encoding": "gzip, deflate"}
REDIRECTS = frozenset({301, 302, 303, 307, 308})
HTTP_SCHEMES = frozenset({"http", "https"})
#: how much of an error answer a non-GET's reason may quote
ERROR_TEXT_BYTES = 1024


class HopClient:
    """One attempt at a request, redirects included; subclasses send one exchange each.

    Create it inside the event loop that will use it; ``aclose`` releases its connections.
    """

    policy: FetchPolicy
    #: whether the client bounds a whole attempt by ``policy.timeout`` itself (``deadline``),
    #: so ``Fetcher`` arms no asyncio timer around it (libcurl's own timer costs no Python)
    bounds_attempts: bool = False

    async def aclose(self) -> None:
        raise NotImplementedError

    def deadline(self) -> float | None:
        """When an attempt started now must be over (``bounds_attempts``); None: not bounded here."""
        return None

    async def _exchange(self, method: str, url: str, data: bytes | None,
                        headers: Mapping[str, str] | None, follow: bool,
                        deadline: float | None) -> tuple[bytes, str | None]:
        """``(body, None)`` for a 2xx, ``(b"", next URL)`` for a redirect to follow (``next_hop``);
        raises what ``status_failure`` makes of any other status, ``Transient`` for a broken
        connection or body, ``FetchError`` for a body over the limit or undecodable, and
        ``timed_out`` once ``deadline`` (the attempt's, every hop's) has passed."""
        raise NotImplementedError

    async def get(self, url: str) -> bytes:
        """The body behind ``url``, following redirects the policy allows.

        Raises ``FetchError`` for what another attempt would not change and ``Transient`` for
        what it may (5xx, 429, a dropped or cut connection).
        """
        return await self.send("GET", url)

    async def send(self, method: str, url: str, *, data: bytes | None = None,
                   headers: Mapping[str, str] | None = None) -> bytes:
        """One attempt at ``method url``: the 2xx body, under the policy's body limit.

        Only a GET follows redirects: a 3xx to anything else is its answer (a POST is never sent
        to a second place). A non-GET's error names the start of what the server said (a model
        endpoint's "model not loaded"), a GET's only the status (a file's error page is noise).
        """
        follow = method == "GET"
        deadline = self.deadline()
        for _hop in range(self.policy.max_redirects + 1):
            body, target = await self._exchange(method, url, data, headers, follow, deadline)
            if target is None:
                return body
            url = target
        raise FetchError(f"too many redirects (more than {self.policy.max_redirects})")

    def next_hop(self, current: URL, status: int, location: str | None) -> str:
        """The URL a redirect points to, if the policy allows it (relative ones join ``current``)."""
        if not location:
            raise FetchError(f"HTTP {status} without a Location header")
        try:
            target = current.join(URL(location))
        except ValueError:
            raise FetchError(f"HTTP {status} with a malformed Location header") from None
        if target.scheme not in HTTP_SCHEMES:
            raise FetchError(f"refused by policy: redirect to a {target.scheme}: URL")
        url = str(target)
        self.policy.classify(url)  # the allow-list holds for every hop
        return url


def wants_text(status: int, follow: bool) -> bool:
    """Whether a status's reason quotes the answer: a non-GET's final error (``error_text``)."""
    return not follow and not 200 <= status < 300 and not retryable_status(status)


def status_failure(status: int, retry_after: str | None, text: str | None) -> Exception:
    """What a status that is neither a 2xx nor a followed redirect raises: ``Transient`` for a
    5xx or 429 (with its ``Retry-After``), else ``FetchError`` (with ``text`` if quoted)."""
    if retryable_status(status):
        return Transient(f"HTTP {status}", parse_retry_after(retry_after))
    return FetchError(f"HTTP {status}" if text is None else f"HTTP {status}: {text}")


def error_text(head: bytes, sent: Mapping[str, str] | None = None, proxy: Proxy | None = None) -> str:
    """The first bytes of an error answer, scrubbed, for a reason. The credentials ``sent`` with the
    request (its headers) are hidden first, then the text is cut: an endpoint's 401 or 400 page
    may echo the Authorization header, and a token that a cut split kept its first characters.
    The ``proxy``'s credentials too: an ``http://`` target's error page may be the proxy's own, and
    echo its password or ``Proxy-Authorization`` (libcurl sends that header itself, so ``sent``
    lacks it)."""
    text = head[:ERROR_TEXT_BYTES].decode("utf-8", "replace")
    secrets = [*sent_secrets(sent), *(proxy.secrets if proxy is not None else ())]
    text = hide_secrets(text, secrets, cut=len(head) >= ERROR_TEXT_BYTES)
    return scrub(text, 160)


def too_large_declared(declared: int, limit: int) -> FetchError:
    return FetchError(f"too large: Content-Length {declared:,} bytes > limit {limit:,}")


def too_large_read(limit: int) -> FetchError:
    return FetchError(f"too large: body passed the limit of {limit:,} bytes")


def merged_headers(headers: Mapping[str, str] | None) -> dict[str, str]:
    """``HEADERS`` with a request's own headers over them (names compared without case)."""
    if not headers:
        return HEADERS
    lower = {k.lower() for k in headers}
    out = {k: v for k, v in HEADERS.items() if k.lower() not in lower}
    out.update(headers)
    return out
