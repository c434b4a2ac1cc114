"""A URL's form, judged before any file system is made for it: a storage scheme missing its
``//`` (``s3:/bucket``), and a ``file://`` URL's host (``file://localhost/p`` is ``/p``, RFC 8089).
Kept apart from ``_storage`` (which re-exports both and calls them on every URL) as it needs no
file system: ``_fetch.urls`` (a manifest's folder) uses it too.
"""

from __future__ import annotations

import re

from ._errors import StorageError
from ._redaction import redact_url

#: ``s3:/bucket`` or ``s3:bucket``: a storage scheme without its ``//`` (``file:/x`` is a valid file
#: URL, ``simplecache::s3://`` a chained one, ``C:/x`` a drive letter)
_HALF_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]+):(?!//|:)")
#: schemes whose URL is whole without ``//``: ``file:/x``, and ``data:,...`` (RFC 2397), which
#: fsspec's ``split_protocol`` reads as such
_WHOLE_WITHOUT_SLASHES = frozenset({"file", "data"})


def refuse_half_scheme(url: str) -> None:
    """Refuse ``s3:/bucket`` and the like: fsspec (and ``os.path.abspath``) read it as a local
    path, so the data would go to a folder named ``s3:`` here, silently."""
    half = _HALF_SCHEME.match(str(url))
    if half is None:
        return
    import fsspec  # a URL of that shape only

    if (half.group(1).lower() not in _WHOLE_WITHOUT_SLASHES
            and half.group(1).lower() in fsspec.available_protocols()):
        scheme, shown = half.group(1), str(url).split("?", 1)[0]
        raise StorageError(f"{shown} is not a {scheme}:// URL (no '//' after '{scheme}:'); "
                           f"write {scheme}://... for that storage, or ./{shown} for a local path")


def local_file_url(url: str) -> str:
    """``url`` with a ``file://localhost/p`` made ``file:///p`` (RFC 8089: ``localhost`` is this
    machine): fsspec read it as the relative path ``localhost/p``, so outputs landed under the
    working folder (past the job-folder refusal) and inputs were "no such file". A ``file://`` URL
    naming another host is refused: no file system here reaches it (fsspec read ``file://h/p`` as
    ``./h/p`` too). Any other URL as it is. The one place a file URL's host is judged: every
    URL is turned into a file system and path by ``url_to_fs``, which calls this."""
    text = str(url)
    if text[:7].lower() != "file://":
        return url
    host, _slash, path = text[7:].partition("/")
    if not host:
        return url
    if host.lower() == "localhost":
        return "file:///" + path
    raise StorageError(f"{redact_url(text)} names the host {host!r}: a file:// URL names this machine's files "
                       "only (file:///path or file://localhost/path); give a local path")
