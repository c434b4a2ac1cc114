"""Label files many lines share: read once a job, not once a line (the ``file`` method).

A dataset-wide COCO file (``instances.json``, ``formats.coco_by_name``) is named by every line
of a job, and can be hundreds of MB: fetched and parsed per line, a 100,000-line job read it
100,000 times, and the lines in flight together (``--concurrency`` and a quarter more) each held
their own parsed copy at once. So the first line to name a URL reads it while the others that
name it wait; a document ``share`` turns into a shared form (``CocoImages``) is kept for the
lines after them, a document that does not is each line's own (they read it themselves: a
document a line converts is never handed to two). Only the last ``KEEP`` shared documents are
kept, so a job's memory holds at most that many (a document's parsed images and annotations,
several times its size in bytes); a failure to index one is kept as it is (every line would
fail the same way). A failure to read is handed to the lines waiting for that read, not kept.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

#: shared documents kept at once (a job's lines name one, or a few in turn: train and val)
KEEP = 2

Read = tuple[Any, str]


class SharedDocuments:
    """``read(url, reader)``: what ``reader`` gives, or the shared form of that URL's document."""

    def __init__(self, share: Callable[[Any, str], Any], keep: int = KEEP) -> None:
        """``share(doc, fmt)``: the shared form of a document, or None (each line's own);
        it may raise, and that failure is then kept for the URL."""
        self._share = share
        self._keep = keep
        self._kept: OrderedDict[str, Any] = OrderedDict()  # url -> (shared form, fmt) or the exception
        self._reading: dict[str, list[asyncio.Future[None]]] = {}  # url -> the lines waiting for its read

    async def read(self, url: str, reader: Callable[[], Awaitable[Any]]) -> Any:
        """The line's read of ``url``: ``reader()``'s answer, or the kept shared form."""
        if self._kept and url in self._kept:
            return self._kept_read(url)
        waiters = self._reading.get(url)
        if waiters is not None:
            waited = asyncio.get_running_loop().create_future()
            waiters.append(waited)
            await waited  # raises the read's own failure
            if url in self._kept:
                return self._kept_read(url)
            return await reader()  # a document of its own: never one object for two lines
        return await self._first_read(url, reader)

    async def _first_read(self, url: str, reader: Callable[[], Awaitable[Any]]) -> Any:
        """The read the others naming ``url`` wait for; they get its failure, or the kept form."""
        waiters: list[asyncio.Future[None]] = []
        self._reading[url] = waiters
        failure: BaseException | None = None
        try:
            got = await reader()
            if isinstance(got, tuple) and self._shared(url, *got):
                return self._kept_read(url)
            return got
        except Exception as exc:
            failure = exc
            raise
        finally:
            del self._reading[url]
            for waited in waiters:
                if not waited.done():
                    waited.set_result(None) if failure is None else waited.set_exception(failure)

    def _shared(self, url: str, doc: Any, fmt: str) -> bool:
        """Whether the document read is kept for the lines after this one (and kept if so)."""
        kept: Any
        try:
            shared = self._share(doc, fmt)
        except Exception as exc:  # the document's own fault: each line would fail the same way
            kept = exc.with_traceback(None)  # its frames would hold the whole document
        else:
            if shared is None:
                return False
            kept = (shared, fmt)
        self._kept[url] = kept
        while len(self._kept) > self._keep:
            self._kept.popitem(last=False)
        return True

    def _kept_read(self, url: str) -> Read:
        """The kept shared form of ``url``'s document, or its kept failure raised again."""
        self._kept.move_to_end(url)
        kept = self._kept[url]
        if isinstance(kept, Exception):  # raised afresh: each raise would lengthen its traceback
            raise kept.with_traceback(None)
        return kept

