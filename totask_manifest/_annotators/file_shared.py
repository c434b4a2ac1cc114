"""Label files many lines share: read once a job, not once a line (the ``file`` method).

A dataset-wide COCO file (``instances.json``, ``formats.coco_by_name``) is named by every line
of a job, and can be hundreds of MB: fetched and parsed per line, a 100,000-line job read it
100,000 times, and the lines in flight together (``--concurrency`` and a quarter more) each held
their own parsed copy at once. So the first line to name a URL reads it while the others that
name it wait; a document ``share`` turns into a shared form (``CocoImages``) is kept for the
lines after them, a document that does not is each line's own (they read it themselves: a
document a line converts is never handed to two). Only the last ``KEEP`` shared documents are
kept, so a job's memory holds at most that many (a document's parsed images and annotations,
several times its size in bytes).

A failure to read or index a URL is handed to the lines waiting for that read, and remembered for
the lines after them by its rule (``failure_rules.retried``): one that comes back the same on any
try (a 404, ``too-large``, ``not-json``, ``format-invalid``: a document of no known format or not
COCO) fails each later line at once with the same reason, where each line fetched and parsed it
again (100,000 lines naming a missing ``instances.json`` made 100,000 GETs). One the fetcher
already tried again (a 5xx, a timeout, a connection error) may pass for a later line, so a later
line reads it again, until ``TRANSIENT_READS`` reads of it in a row failed so: then it is
remembered too (a dead server cost a job that many reads, each with its retries, not one a line).
A file read whole but holding no document (an empty one, ``empty-annotation-file``) is such a
failure too: each line naming it fetched it again. The last ``FAILURES_KEPT`` failed URLs are
remembered (a reason each, no document).
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from .._failure_rules import retried
from .._outcomes import Failed

#: shared documents kept at once (a job's lines name one, or a few in turn: train and val)
KEEP = 2
#: reads of one URL in a row that failed with a retried rule before its failure is remembered
TRANSIENT_READS = 3
#: failed URLs remembered at once (lines that each name their own missing file add one each)
FAILURES_KEPT = 1024

Read = tuple[Any, str]


@dataclass
class _Failure:
    """A URL's last failure to read (the line's outcome, a reason and a rule: no frames that would
    hold a fetch's or a document's objects), and how many reads of it in a row failed so, retried."""

    failed: Failed
    transient_reads: int
    lasting: bool


class SharedDocuments:
    """``read(url, reader)``: what ``reader`` gives, or the shared form of that URL's document."""

    def __init__(self, share: Callable[[Any, str], Any], failed: Callable[[Exception], Failed],
                 keep: int = KEEP) -> None:
        """``share(doc, fmt)``: the shared form of a document, or None (each line's own); it may
        raise, and that failure is then remembered for the URL. ``failed(exc)``: the outcome of a
        line whose read raised ``exc`` (the one it reports, so the rule judged is the one recorded)."""
        self._share = share
        self._failed_by = failed
        self._keep = keep
        self._kept: OrderedDict[str, Read] = OrderedDict()  # url -> (shared form, fmt)
        self._failed: OrderedDict[str, _Failure] = OrderedDict()  # url -> its last failure to read
        self._reading: dict[str, list[asyncio.Future[None]]] = {}  # url -> the lines waiting for its read

    async def read(self, url: str, reader: Callable[[], Awaitable[Any]]) -> Any:
        """The line's read of ``url``: ``reader()``'s answer, the kept shared form, or the failure
        remembered for it (a ``Failed``, each line its own)."""
        if self._kept and url in self._kept:
            return self._kept_read(url)
        if self._failed and (known := self._failed.get(url)) is not None and known.lasting:
            return Failed(known.failed.reason, known.failed.rule)
        waiters = self._reading.get(url)
        if waiters is not None:
            waited = asyncio.get_running_loop().create_future()
            waiters.append(waited)
            await waited  # raises the read's own failure
            if url in self._kept:
                return self._kept_read(url)
            if (known := self._failed.get(url)) is not None and known.lasting:  # read, and found empty
                return Failed(known.failed.reason, known.failed.rule)
            return await reader()  # a document of its own: never one object for two lines
        return await self._first_read(url, reader)

    async def _first_read(self, url: str, reader: Callable[[], Awaitable[Any]]) -> Any:
        """The read the others naming ``url`` wait for; they get its failure, or the kept form."""
        waiters: list[asyncio.Future[None]] = []
        self._reading[url] = waiters
        failure: BaseException | None = None
        try:
            got = await reader()
            if isinstance(got, Failed):  # read, and no document (an empty file): the same for every line
                self._remember_outcome(url, got)
                return got
            if isinstance(got, tuple) and self._shared(url, *got):
                return self._kept_read(url)
            self._failed.pop(url, None)  # it was read: a retried failure before counts no more
            return got
        except Exception as exc:
            failure = exc
            self._remember(url, exc)
            raise
        finally:
            del self._reading[url]
            for waited in waiters:
                if not waited.done():
                    waited.set_result(None) if failure is None else waited.set_exception(failure)

    def _shared(self, url: str, doc: Any, fmt: str) -> bool:
        """Whether the document read is kept for the lines after this one (and kept if so). A
        failure to index it is the document's own fault, each line's the same: it is remembered."""
        shared = self._share(doc, fmt)
        if shared is None:
            return False
        self._failed.pop(url, None)
        self._kept[url] = (shared, fmt)
        while len(self._kept) > self._keep:
            self._kept.popitem(last=False)
        return True

    def _remember(self, url: str, exc: Exception) -> None:
        """Remember ``url``'s failure to read (the exception its read raised)."""
        self._remember_outcome(url, self._failed_by(exc))

    def _remember_outcome(self, url: str, failed: Failed) -> None:
        """Remember ``url``'s failure: for good when its rule is not retried, else once
        ``TRANSIENT_READS`` reads of it in a row failed with a retried one."""
        before = self._failed.pop(url, None)
        transient_reads = (before.transient_reads if before else 0) + 1 if retried(failed.rule) else 0
        self._failed[url] = _Failure(failed, transient_reads, lasting=not transient_reads
                                     or transient_reads >= TRANSIENT_READS)
        while len(self._failed) > FAILURES_KEPT:
            self._failed.popitem(last=False)

    def _kept_read(self, url: str) -> Read:
        """The kept shared form of ``url``'s document."""
        self._kept.move_to_end(url)
        return self._kept[url]
