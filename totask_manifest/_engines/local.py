"""The local engine: one process, the annotator's own concurrency (async fetches, a model on
one device), outcomes put back in input order before they are recorded."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterator

from .._annotators.base import (
    Item,
    ItemStream,
    Outcome,
    get_annotator_class,
    note_threads_left,
    thread_errors,
)
from .._errors import JobError
from .._jobs.run import JobRun
from .._jobs.scan_ranges import selected_lines
from .._manifest.line import Line
from .._signals import own_interrupts
from .base import Engine

#: finished lines waiting for an earlier, slower line before they can be recorded
MAX_BACKLOG = 4096


class LocalEngine(Engine):
    name = "local"

    def run(self, plan: JobRun) -> None:
        attr = plan.config.label_attribute
        in_flight: dict[int, tuple[Line, Item]] = {}
        order: deque[int] = deque()
        finished: dict[int, Outcome] = {}

        def feed() -> Iterator[Item]:
            for line, item in selected_lines(plan.config.job_url, plan.input_url, attr, after_index=plan.after_index):
                if plan.stop.is_set():
                    return
                in_flight[item.index] = (line, item)
                order.append(item.index)
                yield item

        def backlog_full() -> bool:
            return len(finished) >= MAX_BACKLOG

        before = set(threading.enumerate())  # what is running before the annotator exists
        try:
            # a KeyboardInterrupt the annotator's code raises itself (a plugin's) is its error, as any
            # other it raises: taken for Ctrl-C, the job stopped STOPPED and every resume met it again
            with own_interrupts(), thread_errors() as raise_thread_error, \
                    get_annotator_class(plan.config.method)(plan) as annotator:
                outcomes = annotator.annotate(ItemStream(feed(), backlog_full))
                try:
                    for pair in outcomes:
                        raise_thread_error()  # an outcome given after its thread broke is not recorded
                        item, outcome = _checked_pair(plan.config.method, pair, in_flight, finished)
                        finished[item.index] = outcome
                        while order and order[0] in finished:
                            index = order.popleft()
                            line, it = in_flight.pop(index)
                            plan.recorder.accept(line, it, finished.pop(index))
                        if plan.hard_stop.is_set():
                            break
                    else:
                        if order and not plan.stop.is_set():
                            _refuse_missing(plan.config.method, in_flight[order[0]][1], len(order))
                finally:
                    close = getattr(outcomes, "close", None)
                    if close is not None:
                        close()
        finally:
            note_threads_left(plan.config.method, before)


def _checked_pair(method: str, pair: object, in_flight: dict[int, tuple[Line, Item]],
                  finished: dict[int, Outcome]) -> tuple[Item, Outcome]:
    """``(item, outcome)`` as ``annotate`` must yield it, for an item it was given and has no
    outcome for yet. A bare outcome or a triple failed the job with the engine's own traceback
    (``cannot unpack``); a second outcome for one line was taken without a word."""
    if not (isinstance(pair, tuple) and len(pair) == 2 and isinstance(pair[0], Item)):
        what = (f"a {type(pair).__name__}" if not isinstance(pair, tuple) else f"a tuple of {len(pair)}"
                if len(pair) != 2 else f"a pair whose first value is a {type(pair[0]).__name__}, not an Item")
        raise JobError(f"method {method!r}: annotate yielded {what}; it yields (item, outcome) pairs, one for "
                       "each item it was given")
    item = pair[0]
    if item.index not in in_flight or item.index in finished:
        raise JobError(f"method {method!r}: annotate yielded a second outcome for {item.display} (or one for an "
                       "item it was not given); it yields one (item, outcome) pair for each item it was given")
    return pair


def _refuse_missing(method: str, item: Item, waiting: int) -> None:
    """``annotate`` ended without an outcome for some items: the job said "the engine finished with
    N selected line(s) neither labeled nor failed", naming neither the method nor the line."""
    raise JobError(f"method {method!r}: annotate ended without an outcome for {item.display} ({waiting} line(s) "
                   "from it on not recorded); it yields one (item, outcome) pair for each item it was given")
