"""Export's task listing: every task the filtered listing holds, each once, listed again while it shifts.

The listing is paged by number (``sdk/tasks/?page=N``, the SDK's way), so a task created, deleted
or leaving the filters while the pages are read shifts the later pages: some tasks are then
never listed (the pages moved forward under the reader) or listed twice (they moved back).
``Listing.ids`` notices it (a page's ``count`` differs from the first page's, or the first
listing lists a task twice) and lists again, yielding only the tasks no listing had yielded
before, until one whole listing keeps its count and finds no new task, or ``PASSES`` listings
were made. The ids come in the order first listed: the first listing's order, then the tasks
only a later listing found, in its order. A listing still changing after the last one leaves
``changed`` set, for the caller to warn that tasks may have been left out.

A listing that keeps its count but lists fewer distinct tasks than that count (all listings
together) came back short: a page held fewer tasks than it should, and the tasks it left out
would be lost in silence. It is listed again once; short again with nothing new found (or short
in the last listing), it stops with ``FatalSynapseError`` naming the project, the count and how
many tasks were listed. More tasks than the count is noticed only by a task listed twice.

The ids already yielded are held in an ``IntMap`` (24 to 48 bytes a task, not a Python set's
70 or so), for projects of millions of tasks.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from .._compact import IntMap
from .._errors import FatalSynapseError, counted
from .client import AsyncSynapseClient, SynapseHTTPError
from .filters import KNOWN_FILTERS, carries, shown_value, unmatched_filters

log = logging.getLogger(__name__)

#: listings at most, the first included
PASSES = 4

#: a listing's reason to list again when it kept its count but listed fewer tasks
_SHORT = "came back short"


def _add(ids: IntMap, tid: int) -> bool:
    """Add ``tid`` to ``ids``; False when it was there already."""
    held = len(ids)
    ids.setdefault(tid, 0)
    return len(ids) > held


class Listing:
    """The tasks of a filtered listing (``ids``) and what reading it found: ``returned``, the
    distinct tasks the backend listed; ``unmatched``, ``{filter: count}`` of those not matching a
    filter (the backend ignored it; not yielded); ``unchecked``, the filters the guide does not
    document whose field no listed task carried (nothing tells whether the backend applied them);
    ``listings`` made; ``changed``, the counts ``(at first, at the end)`` when the listing was
    still changing after the last one. ``again``: the advice of a stop on a short listing, the
    command the user ran (``export again``; the ToTask action is run again, it exports itself)."""

    def __init__(self, aio: AsyncSynapseClient, params: dict[str, Any], filters: dict[str, Any],
                 passes: int = PASSES, again: str = "export again") -> None:
        self.aio, self.params, self.filters, self.passes = aio, params, filters, max(1, passes)
        self.again = again
        self.returned = 0
        self.unmatched: dict[str, int] = {}
        self.unchecked = {key for key in filters if key != "limit" and key not in KNOWN_FILTERS}
        self.listings = 0
        self.changed: tuple[int, int] | None = None

    async def ids(self) -> AsyncIterator[int]:
        seen = IntMap()
        rejected = IntMap()  # tasks not matching a filter, counted once however often listed
        first_count: int | None = None
        was_short = False  # a listing came back short: listed again once, short again it stops
        for listing in range(1, self.passes + 1):
            self.listings = listing
            counts: list[int] = []
            added = rows = 0
            repeated = False
            async with contextlib.aclosing(self.aio.iter_tasks(self.params, counts)) as tasks:
                async for item in tasks:
                    rows += 1
                    tid = item.get("id")
                    if not isinstance(tid, int) or isinstance(tid, bool):
                        raise SynapseHTTPError("Synapse listed a task without an id (GET /sdk/tasks/)", status=200,
                                               method="GET", path="/sdk/tasks/")
                    if self.unchecked:
                        self.unchecked = {key for key in self.unchecked if not carries(item, key)}
                    missed = unmatched_filters(item, self.filters)
                    if missed:
                        if _add(rejected, tid) and tid not in seen:
                            self.returned += 1
                            for key in missed:
                                name = f"{key}={shown_value(self.filters[key])}"
                                self.unmatched[name] = self.unmatched.get(name, 0) + 1
                        continue
                    if not _add(seen, tid):
                        repeated = repeated or listing == 1  # later listings repeat the earlier ones' tasks
                        continue
                    if tid not in rejected:
                        self.returned += 1
                    added += 1
                    yield tid
            if first_count is None and counts:
                first_count = counts[0]
            what = self._why_again(listing, counts, added, repeated, was_short, rows)
            if what is None:
                self.changed = None
                return
            was_short = was_short or what.startswith(_SHORT)
            self.changed = (first_count if first_count is not None else 0, counts[-1] if counts else 0)
            if listing < self.passes:
                log.info("the task listing %s: listing again (%d of at most %d listings), to export the tasks "
                         "it missed", what, listing + 1, self.passes)

    def _why_again(self, listing: int, counts: list[int], added: int, repeated: bool, was_short: bool,
                   rows: int) -> str | None:
        """Why listing ``listing`` (its pages' ``counts``, ``added`` tasks new to it) is to be listed
        again, None when it is whole. One that kept its count but listed fewer distinct tasks than
        that count, all listings together, came back short: a page held fewer tasks than it should
        (it shifted under an edit), so it is listed again once; short again, nothing new found, it
        stops (``FatalSynapseError``) rather than leave the tasks it never listed out in silence.
        More tasks than the count is a shift too, noticed by the task listed twice.

        Short means fewer ``rows`` than the count, not fewer distinct tasks: a backend that lists a
        task twice on every listing (a join without ``distinct()``) counts it twice too; every task
        was listed then, and calling it short stopped every export of the project after 3 listings."""
        shifted = next((c for c in counts if c != counts[0]), None) if counts else None
        if shifted is not None:
            return f"changed while it was read (the backend counted {counts[0]} tasks, then {shifted})"
        if listing > 1 and added > 0:
            return f"had changed (listing {listing} found {counted(added, 'task')} the earlier listings had not)"
        if repeated:
            return "changed while it was read (it listed a task twice)"
        if not counts or self.returned >= counts[0]:
            return None
        if rows >= counts[0]:
            log.warning("the task listing of project %s lists %s again in each listing, and counts them (the backend "
                        "counted %d tasks, %d are distinct): every task was listed, each exported once",
                        self.params.get("project"), counted(rows - self.returned, "task"), counts[0], self.returned)
            return None
        numbers = (f"the backend counted {counts[0]} tasks, {self.returned} "
                   f"{'was' if self.returned == 1 else 'were'} listed")
        if was_short or listing == self.passes:
            raise FatalSynapseError(
                f"the task listing of project {self.params.get('project')} came back short after "
                f"{counted(listing, 'listing')} ({numbers}): tasks would have been left out, so nothing "
                f"was exported; {self.again} to pick them up")
        return f"{_SHORT} ({numbers})"
