"""An ``http(s)://`` manifest read in byte ranges, each answer checked against what was asked.

Every command reads a manifest in ranges (fsspec's HTTP file fetches a block at a time; the
workers of ``validate``, ``stats`` and a job's input scan each read their own ranges, and a job
then seeks to its selected lines). fsspec takes any ``206`` as the bytes it asked for, and a
server that ignores ``Range`` (``python -m http.server`` does) ended every command past the first
block in a ``ValueError`` traceback. A ``206`` whose bytes start elsewhere, or come short, made
lines counted twice or cut in two, silently (a caching proxy that mixes ranges, a server that
answers ranges of another version of the file). So each answer must be:

- a ``206`` whose ``Content-Range`` starts where the request did, ends where it should (the
  request's end or the file's), and whose body holds exactly those bytes; or a ``200`` holding
  the whole file when the whole file was asked for;
- of the same file: its size (``Content-Range``'s total) and ``ETag`` (``Last-Modified`` when
  there is none) those of the first answer, so a file replaced while it is read is refused
  rather than read half old, half new. A ``416`` (a range past the end) for bytes the file held
  when it was opened is that refusal too: the file was cut short while it was read.

Anything else is a ``StorageError`` naming the URL without its secrets (exit 2). A server that
says no size at all (no ``Content-Length``: a chunked answer, a compressed one) cannot be read
in ranges, nor one that says ``Accept-Ranges: none``: each is refused when the file is opened,
in the same way. An empty file (which fsspec opens as a stream too) is read as empty.
"""

from __future__ import annotations

import functools
import io
import re
from typing import Any, NoReturn

from ._errors import StorageError, file_changed
from ._redaction import redact_url

_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")
_DOWNLOAD = "download it first (curl -o) and give the local file"


def checked(f: Any, url: str) -> Any:
    """``f``, a file fsspec's HTTP file system opened, with its range reads checked; refused
    when it has no size (a streaming answer cannot be read in ranges)."""
    if getattr(f, "size", None) is None:  # fsspec's streaming file: why, asked again (this path only)
        try:
            info = f.fs.info(f.url)
        finally:
            f.close()
        if info.get("size") == 0:  # fsspec streams an empty file too: read as a local one, 0 lines
            return io.BytesIO(b"")
        if info.get("size") is not None and info.get("partial") is False:
            raise StorageError(f"cannot read {redact_url(url)}: the server says it does not serve byte ranges "
                               f"(Accept-Ranges: none): {_DOWNLOAD}")
        raise StorageError(f"cannot read {redact_url(url)}: the server does not say its size (no Content-Length; "
                           f"chunked or compressed answers), so it cannot be read in byte ranges: {_DOWNLOAD}")
    cache = getattr(f, "cache", None)
    if cache is not None and getattr(cache, "fetcher", None) is not None:
        from fsspec.asyn import sync

        seen: dict[str, str] = {}
        cache.fetcher = functools.partial(sync, f.loop, _fetch_range, f, url, seen)
    return f


async def _fetch_range(f: Any, url: str, seen: dict[str, str], start: int, end: int) -> bytes:
    """Bytes ``[start, end)`` of the file, as fsspec's ``HTTPFile.async_fetch_range`` asks them,
    checked (see the module's docstring)."""
    size = f.size
    end = min(end, size)
    if start >= end:
        return b""
    kwargs = f.kwargs.copy()
    # ranges of the file as stored: a compressed answer (aiohttp accepts gzip unless told) is no
    # range of it, and its Content-Length is not the file's size (fsspec asks its HEAD so too)
    headers = {k: v for k, v in kwargs.pop("headers", {}).items() if k.lower() not in ("range", "accept-encoding")}
    headers.update({"Range": f"bytes={start}-{end - 1}", "Accept-Encoding": "identity"})
    r = await f.session.get(f.fs.encode_url(f.url), headers=headers, **kwargs)
    async with r:
        asked = f"bytes {start}-{end - 1}"
        if r.status == 416:  # bytes inside the size the file had when opened: it is shorter now
            _shorter(r.headers, url, size, asked)
        r.raise_for_status()
        if r.status == 206:
            _same_file(r.headers, seen, url, size)
            got = _CONTENT_RANGE.fullmatch(r.headers.get("Content-Range", "").strip())
            if got is None or (int(got[1]), int(got[2])) != (start, end - 1):
                said = r.headers.get("Content-Range", "no Content-Range")
                raise StorageError(f"cannot read {redact_url(url)}: asked for {asked}, the server answered "
                                   f"{said[:80]}; lines would be read twice or cut: {_DOWNLOAD}")
            out = await r.read()
        elif r.status == 200 and start == 0 and end == size:
            _same_file(r.headers, seen, url, size)
            out = await r.read()
        else:
            raise StorageError(f"cannot read {redact_url(url)}: the server does not serve byte ranges (asked for "
                               f"{asked}, it answered HTTP {r.status} with the whole file): {_DOWNLOAD}")
    if len(out) != end - start:
        raise StorageError(f"cannot read {redact_url(url)}: asked for {asked} ({end - start} bytes), the server "
                           f"sent {len(out)}; lines would be read twice or cut: {_DOWNLOAD}")
    return out


def _same_file(headers: Any, seen: dict[str, str], url: str, size: int) -> None:
    """Refuse an answer from another version of the file than the first answer's: another size,
    or another ``ETag`` (``Last-Modified``) where both answers carry one."""
    got = _CONTENT_RANGE.fullmatch(headers.get("Content-Range", "").strip())
    total = got[3] if got is not None else headers.get("Content-Length")
    marks = {"size": str(total) if total not in (None, "*") else str(size),
             "version": headers.get("ETag") or headers.get("Last-Modified") or ""}
    if marks["size"] != str(size):
        changed = f"its size is now {marks['size']} bytes, it was {size}"
    elif marks["version"] and seen.get("version") and marks["version"] != seen["version"]:
        changed = f"its ETag/Last-Modified is now {marks['version'][:80]}, it was {seen['version'][:80]}"
    else:  # an answer without either (some caches drop them) is compared by its size alone
        if marks["version"]:
            seen.setdefault("version", marks["version"])
        return
    _changed(url, changed)


def _shorter(headers: Any, url: str, size: int, asked: str) -> NoReturn:
    """A ``416`` for a range the file held when it was opened: it was cut or replaced by a
    shorter one since (a generic "HTTP 416" said nothing of why). Its ``Content-Range: bytes
    */N`` (RFC 9110) gives the size now, when the server sends it."""
    got = re.fullmatch(r"bytes \*/(\d+)", headers.get("Content-Range", "").strip())
    if got is not None and int(got[1]) != size:
        _changed(url, f"its size is now {got[1]} bytes, it was {size}")
    _changed(url, f"the server says {asked} is past its end now, it was {size} bytes")


def _changed(url: str, changed: str) -> NoReturn:
    """The one refusal of a file whose answers show another version of it than the first."""
    raise file_changed(url, changed)
