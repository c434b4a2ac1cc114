"""Where a line's label file is, and its bytes: the first step of the ``file`` method.

A line names its file under ``--url-key K`` (a key, or a dotted path into nested objects) or
``--target-specification-name S`` (the Synapse files map an exported line carries under
``synapse.files``). A relative reference resolves against the folder of the job's manifest
(``base``). An exported line (one with an integer ``task_id``, named by specification) whose
URL is missing, expired, or refused with 400/401/403 gets a fresh one from Synapse
(``synapse.fresh_urls``), once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from .._errors import FetchError, TotaskError, json_kind
from .._fetch import Fetcher, base_for_line, resolve_reference, scrub
from .._outcomes import Item

log = logging.getLogger("totask_manifest")


class LineFailure(Exception):
    """A reason to fail one line (no URL, unreadable document, no image size)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def lookup(record: dict, key: str) -> Any:
    """``record[key]``, or, when no such key exists, the dotted path ``a.b.c`` into nested objects."""
    if key in record:
        return record[key]
    node: Any = record
    for part in key.split("."):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            raise KeyError(key)
    return node


class LabelFiles:
    """Finds and fetches each line's label file (see the module docstring).

    ``fetcher`` returns the job's ``Fetcher`` (made on first use by the annotator);
    ``job_options`` is job.json's options object (it may map lines to other base folders).
    """

    def __init__(self, *, spec: str | None, url_key: str | None, base: str | None,
                 job_options: dict[str, Any], fetcher: Callable[[], Fetcher]) -> None:
        self.spec = spec
        self.url_key = url_key
        self.base = base
        self.job_options = job_options
        self._fetcher = fetcher
        self._urls: Any = None

    def reference(self, record: dict) -> str:
        """The file reference the line holds, as written; ``LineFailure`` when it has none."""
        if self.spec is not None:
            syn = record.get("synapse")
            files = syn.get("files") if isinstance(syn, dict) else None
            if not isinstance(files, dict):
                raise LineFailure("no URL: the line has no synapse.files map (export it with 'totask-manifest export')")
            entry = files.get(self.spec)
            if not isinstance(entry, dict):
                have = ", ".join(sorted(map(str, files))) or "none"
                raise LineFailure(f"no URL: synapse.files has no specification {self.spec!r} (it has: {have})")
            url = entry.get("url")
            where = f"synapse.files.{self.spec}.url"
        else:
            assert self.url_key is not None
            try:
                url = lookup(record, self.url_key)
            except KeyError:
                raise LineFailure(f"no URL: the line has no key {self.url_key!r}") from None
            where = self.url_key
        if not isinstance(url, str) or not url.strip():
            raise LineFailure(f"no URL: {where} is {'empty' if isinstance(url, str) else json_kind(url)}")
        return url

    def resolve(self, item: Item, ref: str) -> str:
        """``ref`` made absolute against the line's base folder."""
        return resolve_reference(ref, base_for_line(self.job_options, item.index, self.base))

    def refreshable(self, item: Item) -> bool:
        """An exported line whose file is named by specification: the backend can issue its URL again."""
        tid = item.task_id
        return self.spec is not None and isinstance(tid, int) and not isinstance(tid, bool)

    def synapse(self) -> Any:
        """The Synapse client that issues fresh URLs and reads tasks (made on first use)."""
        if self._urls is None:
            from .._synapse.fresh_urls import FileUrls

            self._urls = FileUrls()
        return self._urls

    @property
    def has_synapse(self) -> bool:
        """Whether a Synapse client was made (and must be closed on the event loop)."""
        return self._urls is not None

    async def aclose(self) -> None:
        if self._urls is not None:
            urls, self._urls = self._urls, None
            await urls.aclose()

    async def fresh_url(self, item: Item, why: str) -> str:
        log.debug("[task %s] %s: asking Synapse for a fresh file URL", item.display, why)
        try:
            return await self.synapse().url(item.task_id, self.spec)
        except TotaskError as exc:
            raise LineFailure(f"no URL: {why}, and a fresh one could not be had: {scrub(str(exc), 200)}") from None

    async def url(self, item: Item) -> str:
        """The line's file URL; a fresh one when it is missing or has expired (exported lines)."""
        try:
            ref = self.reference(item.record)
        except LineFailure as exc:
            if not self.refreshable(item):
                raise
            return await self.fresh_url(item, exc.reason.removeprefix("no URL: "))
        if self.refreshable(item):
            from .._synapse.fresh_urls import is_expired  # only exported lines need the Synapse side

            if is_expired(ref):
                return await self.fresh_url(item, "the URL has expired")
        return self.resolve(item, ref)

    async def fetch(self, item: Item, url: str | None = None) -> tuple[str, bytes]:
        """(URL, body) of the line's file (at ``url`` where the caller has it from ``url()``); a
        refused URL of an exported line is asked for again once."""
        url = await self.url(item) if url is None else url
        fetcher = self._fetcher()
        try:
            return url, await fetcher.fetch(url)
        except FetchError as exc:
            from .._synapse.fresh_urls import needs_refresh

            if not (self.refreshable(item) and needs_refresh(exc)):
                raise LineFailure(f"fetch: {exc}") from None
            first = exc
        url = await self.fresh_url(item, f"the URL was refused ({str(first).split(' (', 1)[0]})")
        try:
            return url, await fetcher.fetch(url)
        except FetchError as exc:
            raise LineFailure(f"fetch: {exc} (with a fresh URL from Synapse)") from None

    async def image(self, item: Item) -> bytes:
        """The bytes of the image the line's ``source-ref`` names (for its size)."""
        source = item.record.get("source-ref")
        if not isinstance(source, str) or not source.strip():
            raise LineFailure(
                "image size: this format carries none, and the line has neither 'image_size' nor 'source-ref'"
            )
        try:
            return await self._fetcher().fetch(self.resolve(item, source))
        except FetchError as exc:
            raise LineFailure(f"image size: {exc}") from None
