"""Proxies from the environment, chosen per request as the synapse-sdk's ``requests`` chooses them.

Which variables (``urllib.request.getproxies``, which ``requests`` reads): ``<scheme>_proxy`` in
either case, the lower-case one winning (``http_proxy``/``HTTP_PROXY`` for ``http://`` targets,
``https_proxy``/``HTTPS_PROXY`` for ``https://``, ``all_proxy``/``ALL_PROXY`` for both), an empty
lower-case one cancelling the upper-case one, and ``HTTP_PROXY`` ignored under CGI
(``REQUEST_METHOD`` set). A proxy URL without a scheme is ``http://``. ``no_proxy``/``NO_PROXY``
(``requests.utils.should_bypass_proxies``): comma-separated host names, matched whole or as a
domain suffix (``example.com`` and ``.example.com`` both match ``a.example.com``), with or without
a port; for an IPv4 host an address or a CIDR block (``10.0.0.0/8``); ``*`` alone bypasses all.

The environment is read once, when a session is made (``EnvProxies.read``): aiohttp's
``trust_env`` would look it up (and ``~/.netrc``, whose credentials we do not want) in a thread,
twice a request. The decision is cached per origin, so a request pays one dict look-up, and
nothing at all when no proxy is set. A proxy's user and password (``http://user:pass@proxy``)
are taken out of its URL (``Proxy.url`` never holds them) and sent as ``Proxy-Authorization``.
"""

from __future__ import annotations

import base64
import os
import socket
import struct
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any
from urllib.parse import quote, unquote, urlsplit
from urllib.request import proxy_bypass_environment

from ._errors import UsageError
from ._redaction import hide_secrets, redact_url

#: the origins whose decision is kept; past this many the cache starts again
_CACHE_SIZE = 1024
#: the proxies aiohttp and libcurl are given (requests needs an extra for SOCKS, which we do not take)
PROXY_SCHEMES = ("http", "https")


class Proxy:
    """One proxy from the environment: where it is, its credentials, which variable named it."""

    __slots__ = ("_aiohttp", "_secrets", "password", "url", "user", "variable")

    def __init__(self, url: str, user: str | None, password: str | None, variable: str,
                 written: str | None = None) -> None:
        self.url = url  #: without user info: what the HTTP library is given
        self.user = user
        self.password = password
        self.variable = variable
        #: the password as sent and as written in the variable (percent-quoted), and the Basic
        #: credential it is sent in (``user:password`` in base64), which a page may echo too
        self._secrets = [s for s in {password, written} if s]
        if password:
            self._secrets.append(self._basic())
        self._aiohttp: dict[str, Any] | None = None

    def _basic(self) -> str:
        """The ``Proxy-Authorization: Basic`` credential: ``user:password`` in base64."""
        return base64.b64encode(f"{self.user or ''}:{self.password or ''}".encode()).decode("ascii")

    @property
    def secrets(self) -> list[str]:
        """What a message must not show of the proxy's credentials (``hide``)."""
        return list(self._secrets)

    def __repr__(self) -> str:
        return f"Proxy({self.shown})"

    @property
    def shown(self) -> str:
        """What a message may say of it: its URL without user info or query, and its variable."""
        return f"{redact_url(self.url)} (from the environment variable {self.variable})"

    def url_with_credentials(self) -> str:
        """Its URL with its user and password (percent-quoted) back in, for a session that takes a
        proxy per session only (fsspec's http); never shown: ``shown`` is what messages say."""
        if self.user is None and self.password is None:
            return self.url
        scheme, rest = self.url.split("://", 1)
        user = quote(self.user or "", safe="")
        secret = "" if self.password is None else ":" + quote(self.password, safe="")
        return f"{scheme}://{user}{secret}@{rest}"

    def hide(self, text: str) -> str:
        """``text`` with the proxy's password (as given and unquoted) replaced by ``***``."""
        return hide_secrets(text, self._secrets) if self._secrets else text

    def aiohttp_options(self, url: str, headers: Mapping[str, str] | None) -> tuple[Mapping[str, str] | None,
                                                                                   dict[str, Any]]:
        """The headers and options (``proxy=``, ``proxy_headers=``) of an aiohttp request to
        ``url`` through this proxy. Its ``Proxy-Authorization`` goes on the CONNECT for an
        ``https://`` target (aiohttp sends ``proxy_headers`` there only), with the request itself
        for an ``http://`` one, which is sent to the proxy whole (as requests sends both)."""
        if self._aiohttp is None:
            options: dict[str, Any] = {"proxy": self.url}
            if self.user is not None or self.password is not None:
                options["proxy_headers"] = {"Proxy-Authorization": "Basic " + self._basic()}
            self._aiohttp = options
        options = self._aiohttp
        if "proxy_headers" in options and url[:5].lower() == "http:":
            headers = {**(headers or {}), **options["proxy_headers"]}
        return headers, options


class EnvProxies:
    """The proxy settings of the environment at one moment, and the choice for each origin."""

    def __init__(self, proxies: Mapping[str, Proxy], no_proxy: str | None = None,
                 urllib_no_proxy: str | None = None) -> None:
        self.proxies = dict(proxies)  #: by target scheme (``http``, ``https``, ``all``)
        #: ``no_proxy`` as requests reads it (``no_proxy``, else ``NO_PROXY``)
        self.no_proxy = no_proxy or ""
        #: as urllib reads it (``getproxies_environment``'s ``no``), which requests asks last
        self._urllib_no = urllib_no_proxy
        self._cache: dict[str, Proxy | None] = {}

    def __bool__(self) -> bool:
        return bool(self.proxies)

    @classmethod
    def read(cls, environ: Mapping[str, str] | None = None) -> EnvProxies:
        """The proxies ``environ`` (default ``os.environ``) names, as ``getproxies_environment``
        reads them, each with the variable it came from."""
        env = os.environ if environ is None else environ
        found: dict[str, tuple[str, str]] = {}
        for name, value in env.items():  # first any case, then lower case only: it wins
            if value and name[-6:].lower() == "_proxy":
                found[name[:-6].lower()] = (name, value)
        if "REQUEST_METHOD" in env:  # CGI: HTTP_PROXY may come from a client's "Proxy:" header
            found.pop("http", None)
        for name, value in env.items():
            if name[-6:] == "_proxy":
                if value:
                    found[name[:-6].lower()] = (name, value)
                else:
                    found.pop(name[:-6].lower(), None)
        no = found.pop("no", None)
        proxies = {scheme: _proxy(value, name) for scheme, (name, value) in found.items()
                   if scheme in ("http", "https", "all")}
        return cls(proxies, env.get("no_proxy") or env.get("NO_PROXY"), no[1] if no else None)

    def for_url(self, url: str) -> Proxy | None:
        """The proxy a request to ``url`` goes through, or None for a direct connection."""
        if not self.proxies:
            return None
        start = url.find("//") + 2
        end = url.find("/", start)
        key = url if end < 0 else url[:end]
        try:
            return self._cache[key]
        except KeyError:
            pass
        if len(self._cache) >= _CACHE_SIZE:
            self._cache.clear()
        chosen = self._cache[key] = self._choose(url)
        return chosen

    def _choose(self, url: str) -> Proxy | None:
        try:
            parts = urlsplit(url)
            hostname, port = parts.hostname, parts.port
        except ValueError:
            return None
        if hostname is None or self._bypassed(hostname, port):
            return None
        return self.proxies.get(parts.scheme.lower()) or self.proxies.get("all")

    def _bypassed(self, hostname: str, port: int | None) -> bool:
        """``requests.utils.should_bypass_proxies`` on the ``no_proxy`` read once."""
        entries = [e for e in self.no_proxy.replace(" ", "").split(",") if e]
        if _is_ipv4(hostname):
            for entry in entries:
                if _is_cidr(entry):
                    if _in_network(hostname, entry):
                        return True
                elif hostname == entry:
                    return True
        else:
            with_port = f"{hostname}:{port}" if port else hostname
            for entry in entries:
                entry = entry.lstrip(".")
                if hostname == entry or with_port == entry:
                    return True
                if hostname.endswith("." + entry) or with_port.endswith("." + entry):
                    return True
        # then urllib's proxy_bypass (only the environment's on Linux; case-insensitive, "*")
        return self._urllib_no is not None and proxy_bypass_environment(hostname, {"no": self._urllib_no})


def refused_reason(proxy: Proxy, status: int) -> str:
    """A fetch's reason when ``proxy`` refused to pass a request on (407: other credentials wanted)."""
    try:
        phrase = f" ({HTTPStatus(status).phrase})"
    except ValueError:
        phrase = ""
    return f"HTTP {status}: the proxy {proxy.shown} refused the request{phrase}"


def _proxy(value: str, variable: str) -> Proxy:
    """A proxy URL as requests takes it: ``http://`` when it names no scheme; its user info apart."""
    if "://" not in value:
        value = "http://" + value
    try:
        parts = urlsplit(value)
    except ValueError as exc:  # "Invalid IPv6 URL": the value is not echoed, it may hold a password
        raise UsageError(f"the proxy in the environment variable {variable} is not a URL ({exc}); "
                         "write it as http://host:port") from None
    if parts.scheme.lower() not in PROXY_SCHEMES:  # socks5://: spoken to as HTTP, it answers nothing sensible
        raise UsageError(f"the proxy {redact_url(value)} (from the environment variable {variable}) is a "
                         f"{parts.scheme}:// proxy; only http:// and https:// proxies are supported")
    netloc = parts.netloc.rpartition("@")[2]
    user = unquote(parts.username) if parts.username is not None else None
    password = unquote(parts.password) if parts.password is not None else None
    url = f"{parts.scheme.lower()}://{netloc}{parts.path}"
    return Proxy(url, user, password, variable, parts.password)


def proxy_secrets(env: Mapping[str, str]) -> list[str]:
    """What no message may show of every ``*_proxy`` variable in ``env`` (``Proxy.secrets``: its
    password as written and unquoted, its Basic credential), whichever scheme it is for and whether
    or not a run takes it: one refused (``socks5://``) or ignored (``HTTP_PROXY`` under CGI) holds
    its password all the same. Read without parsing the URL whole, which a malformed one fails."""
    found: list[str] = []
    for name, value in env.items():
        if name[-6:].lower() != "_proxy":
            continue
        netloc = value.split("://", 1)[-1].split("/", 1)[0]
        user, colon, password = netloc.rpartition("@")[0].partition(":")
        if colon and password:
            found.extend(Proxy("", unquote(user), unquote(password), name, password).secrets)
    return found


def _is_ipv4(text: str) -> bool:
    try:
        socket.inet_aton(text)
    except OSError:
        return False
    return True


def _is_cidr(text: str) -> bool:
    if text.count("/") != 1:
        return False
    address, _, bits = text.partition("/")
    try:
        mask = int(bits)
    except ValueError:
        return False
    return 1 <= mask <= 32 and _is_ipv4(address)


def _in_network(ip: str, net: str) -> bool:
    address, _, bits = net.partition("/")
    mask = (0xFFFFFFFF << (32 - int(bits))) & 0xFFFFFFFF
    host = struct.unpack("!L", socket.inet_aton(ip))[0]
    network = struct.unpack("!L", socket.inet_aton(address))[0]
    return host & mask == network & mask
