"""A URL's form, judged before any file system is made for it: a storage scheme missing its
``//`` (``s3:/bucket``), and a ``file://`` URL's host (``file://localhost/p`` is ``/p``, RFC 8089).
Kept apart from ``_storage`` (which re-exports both and calls them on every URL) as it needs no
file system: ``_fetch.urls`` (a manifest's folder) uses it too.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

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
    """``url`` as fsspec and the fetch policy must read it: a ``file://`` URL made the local path it
    names, percent-decoded (RFC 8089 paths are RFC 3986 ones: ``file:///my%20data/a.json``, as
    ``Path.as_uri()`` writes ``/my data/a.json``, is ``/my data/a.json``; it was read, and checked
    against ``--allow-root``, as a folder named ``my%20data``), and ``file://localhost/p`` is
    ``/p`` (``localhost`` is this machine: fsspec read it as the relative path ``localhost/p``, so
    outputs landed under the working folder and inputs were "no such file"). A ``file://`` URL
    naming another host is refused: no file system here reaches it (fsspec read ``file://h/p`` as
    ``./h/p`` too), as is one whose path decodes to a NUL byte (``%00``). Any other URL, and a
    plain path (``my%20data`` there is its name), as it is.
    The one place a file URL becomes a path: ``url_to_fs``, the fetch policy and a manifest's
    folder all call this, so reading, ``--allow-root`` and every command agree."""
    text = str(url)
    if text[:7].lower() != "file://":
        return url
    host, _slash, path = text[7:].partition("/")
    if host and host.lower() != "localhost":
        raise StorageError(f"{redact_url(text)} names the host {host!r}: a file:// URL names this machine's "
                           "files only (file:///path or file://localhost/path); give a local path")
    decoded = unquote("/" + path)
    if "\0" in decoded:  # open() and realpath() raise ValueError on it: a traceback, not a refusal
        raise StorageError(f"{redact_url(text)} holds %00, a NUL byte once decoded: no path holds one; "
                           "give the file's own path")
    return decoded
