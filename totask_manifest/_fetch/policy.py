"""The fetch policy: which URLs may be read, how long, how big, how often (``FetchOptions``
are its flags and job.json keys)."""

from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

from .._errors import FetchError, UsageError
from .._options import Options, option
from .._retry import Transient
from .._storage import redact_url
from .._url_forms import local_file_url
from .urls import has_scheme

#: requests in flight. A latency-bound store caps a job at concurrency / latency (32 at 10 ms:
#: 3,200 lines/s, below what the client's CPU allows on 2 cores); 64 lifts that cap, and more
#: answers per pass of the loop cost less CPU each; 128 gained nothing once the CPU was the limit
#: (benchmarks/file_annotate_bench.py --concurrency 32,64,128; figures in docs/file-annotator.md)
DEFAULT_CONCURRENCY = 64
DEFAULT_TIMEOUT = 30.0
DEFAULT_RETRIES = 3
DEFAULT_MAX_BODY_BYTES = 20 * 1024 * 1024
USER_AGENT = "totask-manifest"  # the header value every request sends (the fetcher, the model endpoint, Synapse)

_LOCAL_PROTOCOLS = frozenset({"file", "local"})
_HTTP_PROTOCOLS = frozenset({"http", "https"})
#: the bracketed IPv6 literal of a URL's host (RFC 3986 section 3.2.2)
_IPV6_HOST = re.compile(r"(?<=://)(?:[^/?#@\[]*@)?\[[0-9A-Za-z:.%_-]*\]")





def _host_of(url: str) -> str:
    """``urlsplit(url).hostname`` lower-cased, checking the port (a malformed one raises
    ``ValueError`` here, not deep inside a client).

    Both depend only on the URL's scheme and authority, and a job's URLs share a few of those:
    the authority is cut out as ``urlsplit`` finds it (up to the first ``/``, ``?`` or ``#``) and
    parsed once per distinct value (``_authority_host``), where parsing the whole URL cost more
    than the rest of the policy's check. A URL with a tab or line break, which ``urlsplit``
    strips before splitting, or one that does not start with a letter or digit (it strips
    leading spaces and control characters too, and ``classify`` only passes URLs that start
    with a scheme), takes the full parse."""
    if "\t" in url or "\n" in url or "\r" in url or not url[:1].isalnum():
        return _authority_host.__wrapped__(url)
    start = url.find("://") + 3
    end = len(url)
    for mark in "/?#":
        at = url.find(mark, start, end)
        if at >= 0:
            end = at
    return _authority_host(url[:end])


@functools.lru_cache(maxsize=1024)
def _authority_host(url: str) -> str:
    parts = urlsplit(url)
    _ = parts.port
    return (parts.hostname or "").lower()


def _bare_host(host: Any) -> str:
    """An ``--allow-host`` value as ``urlsplit`` reports hosts: lower case, an IPv6 literal
    without its brackets (``[::1]`` and ``::1`` both match ``http://[::1]:8080/``)."""
    text = str(host).strip().lower()
    return text[1:-1] if text.startswith("[") and text.endswith("]") else text


def check_fetch_options(options: dict[str, Any]) -> None:
    """Refuse fetch options that cannot work, before a job exists (``UsageError``)."""
    root = options.get("allow_root")
    scheme = str(root).split("://", 1)[0].lower() if root and "://" in str(root) else None
    if scheme not in (None, "file"):  # a user who moved sample_data/ to a bucket writes the bucket here
        raise UsageError(f"--allow-root {redact_url(root)}: a local folder is expected (it bounds local paths "
                         f"and file:// URLs); {scheme}:// URLs need no root: drop --allow-root, or limit "
                         "the buckets or hosts read with --allow-host")
    local = local_file_url(str(root)) if root else root
    if root and not os.path.isdir(local):
        raise UsageError(f"--allow-root {root}: " + ("is a file, not a folder" if os.path.exists(local) else "no such folder"))
    for host in options.get("allow_hosts") or ():
        _check_allowed_host(str(host))
    FetchPolicy.from_options(options)


def _check_allowed_host(host: str) -> None:
    """Hosts are compared bare (``urlsplit().hostname``): a URL, a path or a port there never
    matched, and every line failed naming a host "not in --allow-host" that the user had given
    (``127.0.0.1:8765``: "host '127.0.0.1' is not in --allow-host")."""
    if not host.strip():  # dropped as blank, it left no host at all: the policy then allowed any host
        raise UsageError(f"--allow-host {host!r}: a host name is expected, not an empty value (taken as none, it "
                         "allowed every host, as no --allow-host does); give the host by name, or leave the flag out")
    if host.strip().endswith(".") and not host.strip().endswith(".."):  # urlsplit's hostname keeps no dot to match
        raise UsageError(f"--allow-host {host}: a host name is expected ({host.strip().rstrip('.')}), without the "
                         "trailing dot: hosts are compared as URLs name them")
    if "/" in host:
        raise UsageError(f"--allow-host {redact_url(host)}: a host name is expected ({_host_alone(host)}), not a URL "
                         "or a path: every path on an allowed host (or in an allowed bucket) may be read")
    if "@" in host:  # user information never matched either, and a password there is no text for an error
        raise UsageError(f"--allow-host ***@{_host_alone(host)}: a host name is expected ({_host_alone(host)}), "
                         "without a user or a password: credentials go in the environment, never in this flag")
    if _port_of(host.strip()) is not None:
        raise UsageError(f"--allow-host {host}: a host name is expected ({_host_alone(host)}), without a port: "
                         "every port of an allowed host may be read")


def _port_of(host: str) -> str | None:
    """The ``:PORT`` part of an ``--allow-host`` value (``host:80``, ``[::1]:8080``, ``host:``),
    else None. A value with two colons or more and no brackets is an IPv6 literal (``::1``,
    ``fe80::1``), which ``urlsplit`` reports bare, as ``_bare_host`` compares it."""
    if host.startswith("["):
        end = host.find("]")
        return host[end + 1:] if end >= 0 and host[end + 1:end + 2] == ":" else None
    return host[host.index(":"):] if host.count(":") == 1 else None


def _host_alone(host: str) -> str:
    """The host an ``--allow-host`` value written as a URL, a path or with a port names, to give
    instead (``https://user@files.example.com:8443/x`` names ``files.example.com``)."""
    bare = host.strip().split("://", 1)[-1].split("/", 1)[0].rsplit("@", 1)[-1]
    port = _port_of(bare)
    return bare[:-len(port)] if port else bare


@dataclass(frozen=True)
class FetchOptions(Options):
    """How an annotator that fetches may fetch (composed into its options with ``nested``), and
    the folders relative references resolve against. Stored flat in job.json under the keys
    ``FetchPolicy.from_options`` reads."""

    concurrency: int = option(DEFAULT_CONCURRENCY, metavar="N",
                              help=f"requests in flight (default {DEFAULT_CONCURRENCY})")
    timeout: float = option(DEFAULT_TIMEOUT, metavar="SECONDS",
                            help=f"limit for one attempt at one file (default {DEFAULT_TIMEOUT:g})")
    retries: int = option(DEFAULT_RETRIES, metavar="N",
                          help="further attempts on 5xx, 429, dropped connections and timeouts "
                          f"(default {DEFAULT_RETRIES})")
    max_body_bytes: int = option(DEFAULT_MAX_BODY_BYTES, metavar="BYTES",
                                 help=f"largest file accepted (default {DEFAULT_MAX_BODY_BYTES:,})")
    allow_hosts: tuple[str, ...] = option((), flag="--allow-host", action="append", metavar="HOST",
                                          help="fetch only from these hosts ('*.example.com' for subdomains; an "
                                          "s3:// URL's host is its bucket); repeatable; default: any host")
    allow_root: str | None = option(None, metavar="DIR", path=True,
                                    help="the folder local paths and file:// URLs may read from (refused without it)")
    #: the input manifest's folder (set by the job): relative references resolve against it
    relative_to: str | None = option(None, cli=False, omit_default=True, path=True)
    #: ``[first line index, folder]`` per ``--append`` manifest (``APPENDED_BASES``, set by the job)
    relative_to_appended: list | None = option(None, cli=False, omit_default=True)

    def policy(self) -> FetchPolicy:
        """The policy these options give (``UsageError`` for values that cannot work)."""
        return FetchPolicy.from_options(self.to_dict())

    def check(self) -> None:
        """Refuse fetch options that cannot work, before a job exists (``UsageError``)."""
        check_fetch_options(self.to_dict())


@dataclass(frozen=True)
class FetchPolicy:
    """What may be fetched and how: built once per job from the method's options."""

    concurrency: int = DEFAULT_CONCURRENCY
    #: seconds for one whole attempt (connect, headers and body)
    timeout: float = DEFAULT_TIMEOUT
    #: further attempts after the first, for transient failures only
    retries: int = DEFAULT_RETRIES
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    #: remote hosts allowed (empty: any). ``*.example.com`` matches subdomains; for ``s3://`` the host is the bucket
    allow_hosts: tuple[str, ...] = ()
    #: the only folder local paths and ``file://`` URLs may point into; None refuses them all
    allow_root: str | None = None
    #: folders of files this tool wrote (the masks of a job and of the jobs it was chained or cloned
    #: from: their ``annotations/``), readable besides ``allow_root`` by the commands that read a
    #: job's own output (``report``, ``evaluate``); never a job's
    own_roots: tuple[str, ...] = ()
    #: first backoff ceiling in seconds; doubles per attempt up to ``max_backoff``
    backoff: float = 0.25
    max_backoff: float = 20.0
    #: longest ``Retry-After`` honoured; longer waits are cut to this
    max_retry_after: float = 120.0
    max_redirects: int = 5

    def __post_init__(self) -> None:
        if int(self.concurrency) < 1:
            raise UsageError(f"--concurrency must be at least 1 (got {self.concurrency})")
        if not float(self.timeout) > 0:
            raise UsageError(f"--timeout must be more than 0 seconds (got {self.timeout})")
        if int(self.retries) < 0:
            raise UsageError(f"--retries must be 0 or more (got {self.retries})")
        if int(self.max_body_bytes) < 1:
            raise UsageError(f"--max-body-bytes must be at least 1 (got {self.max_body_bytes})")
        hosts = tuple(_bare_host(h) for h in (self.allow_hosts or ()) if str(h).strip())
        object.__setattr__(self, "allow_hosts", hosts)
        if self.allow_root:
            object.__setattr__(self, "allow_root", _real_root(self.allow_root))
        object.__setattr__(self, "own_roots", tuple(_real_root(root) for root in self.own_roots or () if root))

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> FetchPolicy:
        """Build from a method's options dict (the keys ``fetch_options`` writes)."""
        def pick(key: str, default: Any) -> Any:
            value = options.get(key)
            return default if value is None else value

        return cls(
            concurrency=int(pick("concurrency", DEFAULT_CONCURRENCY)),
            timeout=float(pick("timeout", DEFAULT_TIMEOUT)),
            retries=int(pick("retries", DEFAULT_RETRIES)),
            max_body_bytes=int(pick("max_body_bytes", DEFAULT_MAX_BODY_BYTES)),
            allow_hosts=tuple(options.get("allow_hosts") or ()),
            allow_root=options.get("allow_root") or None,
            own_roots=tuple(options.get("own_roots") or ()),
        )

    def classify(self, url: str) -> tuple[str, str]:
        """``("http" | "local" | "fsspec", target)`` for a URL this policy allows; else ``FetchError``.

        ``target`` is the URL to request, or the real path for local files.
        """
        url = str(url).strip()
        if not url:
            raise FetchError("refused by policy: empty URL")
        if "::" in url and "::" in _IPV6_HOST.sub("", url, count=1):  # an IPv6 literal ([::1]) is not a chain
            raise FetchError(f"refused by policy: chained fsspec URLs are not fetched ({redact_url(url)})")
        if not has_scheme(url):
            return "local", self._local_path(url, url)
        protocol = url.split("://", 1)[0].lower()
        if protocol in _LOCAL_PROTOCOLS:
            parts = urlsplit(url)
            if parts.netloc not in ("", "localhost"):
                raise FetchError(f"refused by policy: file URL names a host ({redact_url(url)})")
            return "local", self._local_path(unquote(parts.path), url)  # as local_file_url reads it
        try:
            host = _host_of(url)
        except ValueError:
            raise FetchError(f"refused by policy: malformed URL {redact_url(url)}") from None
        if self.allow_hosts and not self._host_allowed(host):
            raise FetchError(f"refused by policy: host {host or '(none)'!r} is not in --allow-host ({redact_url(url)})")
        if protocol in _HTTP_PROTOCOLS:
            if not host:
                raise FetchError(f"refused by policy: no host in {redact_url(url)}")
            return "http", url
        return "fsspec", url

    def _host_allowed(self, host: str) -> bool:
        for allowed in self.allow_hosts:
            if allowed.startswith("*.") and host.endswith(allowed[1:]):
                return True
            if host == allowed:
                return True
        return False

    def root_of(self, real: str) -> str | None:
        """The allowed folder (``allow_root``, else one of ``own_roots``) the real path ``real`` lies in; None: none."""
        for root in (self.allow_root, *self.own_roots):
            if root and (real == root or real.startswith(root.rstrip(os.sep) + os.sep)):
                return root
        return None

    def _local_path(self, path: str, shown: str) -> str:
        if not self.allow_root and not self.own_roots:
            raise FetchError(f"refused by policy: local file {redact_url(shown)} needs --allow-root")
        try:
            real = os.path.realpath(os.path.abspath(path))
        except OSError:  # a link on the way swapped while it was resolved (readlink: EINVAL)
            raise FetchError(f"refused by policy: the path {redact_url(shown)} changed while it was checked; "
                             "nothing read") from None
        except ValueError:  # a NUL byte (a path's \u0000, a file URL's %00): no file is named so
            raise FetchError(f"refused by policy: the path {redact_url(shown)} holds a NUL byte, which no "
                             "file's path holds; nothing read") from None
        if self.root_of(real) is not None:
            return real
        if not self.allow_root:
            raise FetchError(f"refused by policy: local file {redact_url(shown)} needs --allow-root")
        raise FetchError(f"refused by policy: {redact_url(shown)} is outside the allowed root {self.allow_root}")


def _real_root(root: Any) -> str:
    """A root folder as a real path (a ``file://`` URL's path, percent-decoded)."""
    return os.path.realpath(local_file_url(str(root)))


def timed_out(timeout: float) -> Transient:
    """An attempt that ran past ``FetchPolicy.timeout``, in the same words whoever bounded it
    (``Fetcher``'s asyncio timer, libcurl's own in ``curl.CurlClient``)."""
    return Transient(f"timed out after {timeout:g} s")
