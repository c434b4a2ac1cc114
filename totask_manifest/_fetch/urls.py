"""URLs in manifests: scrubbing credentials out of messages, bases, relative references,
``Retry-After``."""

from __future__ import annotations

import email.utils
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from .._redaction import scrub_log_text
from .._url_forms import local_file_url


def scrub(text: str, limit: int = 240) -> str:
    """Remove query strings and user info from URLs inside a library's (or a model's) error message,
    and credential headers' values it quotes (``'Authorization': '...'``), as the log filter does:
    a failure reason lands in failures.jsonl and the output manifest; then shorten it."""
    text = " ".join(scrub_log_text(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def has_scheme(ref: str) -> bool:
    """True for ``scheme://...`` (two or more letters, so ``C:/x`` stays a path)."""
    head, sep, _ = ref.partition("://")
    return bool(sep) and len(head) > 1 and head.replace("+", "").replace("-", "").replace(".", "").isalnum()


def base_of(manifest_url: str) -> str:
    """The folder a manifest lives in, against which its relative references resolve.

    Local folders come back absolute, so a job resumed from another working directory still
    finds the same files.
    """
    url = local_file_url(str(manifest_url))
    if has_scheme(url) and not url.startswith("file://"):
        # not in the query (``?versionId=``, a signature), nor a trailing ``/``, which s3fs reads
        # as the object itself: ``s3://b/run/m.jsonl/`` is in ``s3://b/run``, not ``s3://b/run/m.jsonl``
        url = url.split("#", 1)[0].split("?", 1)[0].rstrip("/")
        return url.rsplit("/", 1)[0] if "/" in url.split("://", 1)[1] else url
    return os.path.dirname(os.path.abspath(url))


#: the option naming where appended manifests' lines start and the folder each resolves against
APPENDED_BASES = "relative_to_appended"


def appended_bases(options: dict[str, Any]) -> Iterator[tuple[int, str]]:
    """The well-formed ``[first line index, folder]`` pairs of ``options[APPENDED_BASES]``, for the
    readers that take a ``job.json`` as it is (``report``'s page, another version's file): a value
    of another shape is no folder to read against, not a ``TypeError``. A job's own options were
    checked when it was opened (``_jobs.state.shape_problem``)."""
    pairs = options.get(APPENDED_BASES)
    for pair in pairs if isinstance(pairs, list | tuple) else ():
        if isinstance(pair, list | tuple) and len(pair) == 2 and type(pair[0]) is int and isinstance(pair[1], str):
            yield pair[0], pair[1]


def base_for_line(options: dict[str, Any], index: int, default: str | None) -> str | None:
    """The folder a line's relative references resolve against: its own manifest's.

    A job's input is the main manifest followed by the lines of each ``--append`` manifest;
    ``options[APPENDED_BASES]`` holds ``[first line index, folder]`` per appended manifest (in
    order), so a line at ``index`` from an appended manifest resolves against that manifest's
    folder, and every other line against ``default`` (the main manifest's).
    """
    base = default
    for first, folder in options.get(APPENDED_BASES) or ():
        if index < first:
            break
        base = folder
    return base


def resolve_reference(ref: str, base: str | None) -> str:
    """Turn a reference from a manifest line into a URL or path.

    URLs and absolute paths stand as they are; a relative path is taken relative to ``base``
    (the manifest's folder, see ``base_of``) or, without one, to the working directory.
    """
    ref = str(ref).strip()
    if has_scheme(ref) or os.path.isabs(ref):
        return ref
    if not base:
        return os.path.abspath(ref)
    base_path = local_file_url(base)  # a file:// folder (``relative_to``) as the path it names
    if has_scheme(base_path):
        return base_path.rstrip("/") + "/" + ref
    return os.path.normpath(os.path.join(base_path, ref))


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delay-seconds or an HTTP date (RFC 9110).

    None when it asks for no wait: no header, an unreadable one, ``0`` or a date gone by. urllib3
    (the Synapse SDK's) treats those as no header and backs off; taken literally, a server that
    answers ``Retry-After: 0`` got every retry at once, back to back. The one parser of the
    project: the fetcher and the Synapse client both read the header here."""
    if not value:
        return None
    value = value.strip()
    try:
        return _positive(float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    current = datetime.now(UTC).timestamp() if now is None else now
    return _positive(when.timestamp() - current)


def _positive(seconds: float) -> float | None:
    """A wait worth honouring: more than none (NaN and a past date are none)."""
    return seconds if seconds > 0 else None
