"""Where a job's input stands before its scan: the store's fingerprint of its version, and
(over ``http(s)://``) whether its server serves the byte ranges a job reads its lines by.

Out of ``scan_ranges`` (at its size limit); it imports both from here."""

from __future__ import annotations

import os
from typing import Any

from .._storage import open_read, url_to_fs


def fingerprint(url: str) -> dict[str, Any] | None:
    """What the store says identifies this version of the file (size and modification time,
    or an ETag), or None when it says nothing that would change with the content."""
    fs, path = url_to_fs(url)
    try:
        info = fs.info(path)
    except (OSError, ValueError):
        return None
    marks = {k: str(info[k]) for k in ("mtime", "LastModified", "ETag", "etag", "ino", "generation") if info.get(k)}
    if not marks:
        return None
    return {"size": int(info.get("size") or 0), **marks}


def require_ranges(url: str) -> None:
    """A job reads its input again at its selected lines' offsets: over ``http(s)://`` the server
    must serve byte ranges, asked once (its last byte) before the job exists. A small file the
    scan reads in one request said nothing about it, and the job failed once it existed."""
    if not url[:8].lower().startswith(("http://", "https://")):
        return
    with open_read(url) as f:
        size = f.seek(0, os.SEEK_END)
        if size > 1:
            f.seek(size - 1)
            f.read(1)  # a range that does not start at 0: checked by ``_http_ranges``
