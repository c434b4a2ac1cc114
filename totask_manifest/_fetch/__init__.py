"""Fetching the bytes behind a URL, under a policy: which URLs, how long, how big, how often.

Both annotators read files named by manifest lines (annotation files, images), so this is the one
place that decides what may be read and how hard to try:

* ``http(s)://`` goes straight to libcurl (``fetch.curl``, through pycurl, driven by the event
  loop) or, with ``TOTASK_HTTP_CLIENT=aiohttp``, to aiohttp (``fetch.http``): one connection
  pool per ``Fetcher``, no request or response objects of another library around each GET;
  both walk redirects and read statuses the same way (``fetch.hops``). ``Fetcher.post`` sends a
  model endpoint's requests the same way (``models.runners.HttpRunner``).
* ``s3://`` and every other fsspec protocol are read in a thread pool, because fsspec's file API
  is synchronous.
* local paths and ``file://`` only inside ``allow_root`` (symlinks and ``..`` resolved first),
  and never without one: a manifest must not be able to read ``~/.aws/credentials``.

Retries (5xx, 429, connection errors, timeouts) back off exponentially with jitter and honour
``Retry-After`` (``retry.Backoff``, the policy every HTTP client of the project uses). Bodies are counted while streaming, so a lying or missing ``Content-Length``
cannot get past ``max_body_bytes``. Failures raise ``FetchError`` whose message names what went
wrong and the URL without its query string or user info: presigned URLs carry their credentials
there, and reasons end up in manifests and logs.


The package, one module per part, each importing only those listed before it: ``urls`` (URLs in
manifests), ``policy`` (``FetchPolicy``, ``FetchOptions``), ``local`` (local files and other fsspec
stores), ``hops`` (what both HTTP clients share), ``http`` (the aiohttp client), ``curl`` (the libcurl
client; both take the proxy ``.._proxies.EnvProxies`` chooses per host), ``slots`` (request slots), ``fetcher`` (``Fetcher``), ``loop`` and ``inline`` (event
loops for synchronous callers), ``sync`` (``SyncFetcher``). Callers import from here.
"""

from __future__ import annotations

from .._storage import redact_url
from .fetcher import Fetcher, FetchStats
from .local import open_inside, read_local
from .loop import LoopThread, _task_result
from .policy import (
    DEFAULT_CONCURRENCY,
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_RETRIES,
    DEFAULT_TIMEOUT,
    USER_AGENT,
    FetchOptions,
    FetchPolicy,
    check_fetch_options,
)
from .sync import SyncFetcher
from .urls import (
    APPENDED_BASES,
    appended_bases,
    base_for_line,
    base_of,
    has_scheme,
    parse_retry_after,
    resolve_reference,
    scrub,
)

__all__ = [
    "APPENDED_BASES",
    "DEFAULT_CONCURRENCY",
    "DEFAULT_MAX_BODY_BYTES",
    "DEFAULT_RETRIES",
    "DEFAULT_TIMEOUT",
    "USER_AGENT",
    "FetchOptions",
    "FetchPolicy",
    "FetchStats",
    "Fetcher",
    "LoopThread",
    "SyncFetcher",
    "_task_result",
    "appended_bases",
    "base_for_line",
    "base_of",
    "check_fetch_options",
    "has_scheme",
    "open_inside",
    "parse_retry_after",
    "read_local",
    "redact_url",
    "resolve_reference",
    "scrub",
]
