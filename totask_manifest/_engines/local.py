"""The local engine: one process, the annotator's own concurrency (async fetches, a model on
one device), outcomes put back in input order before they are recorded."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterator

from .._annotators.base import (
    Annotator,
    Item,
    ItemStream,
    Outcome,
    get_annotator_class,
    note_threads_left,
    thread_errors,
)
from .._annotators.contract import checked_pair, closing, no_outcome, second_outcome
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
        attr, method = plan.config.label_attribute, plan.config.method
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
                    closing(_built(plan), method, raise_thread_error.late) as annotator:
                outcomes = annotator.annotate(ItemStream(feed(), backlog_full))
                try:
                    for pair in outcomes:
                        raise_thread_error()  # an outcome given after its thread broke is not recorded
                        item, outcome = checked_pair(method, pair)
                        if item.index not in in_flight or item.index in finished:
                            raise second_outcome(method, item)
                        finished[item.index] = outcome
                        while order and order[0] in finished:
                            index = order.popleft()
                            line, it = in_flight.pop(index)
                            plan.recorder.accept(line, it, finished.pop(index))
                        if plan.hard_stop.is_set():
                            break
                    else:
                        if order and not plan.stop.is_set():
                            raise no_outcome(method, in_flight[order[0]][1], len(order))
                finally:
                    close = getattr(outcomes, "close", None)
                    if close is not None:
                        close()
        finally:
            note_threads_left(method, before)


def _built(plan: JobRun) -> Annotator:
    """The job's annotator, built with ``plan.building`` set: its model may take minutes to load,
    and a Ctrl-C meanwhile, with no line in flight, waited for the whole load to say "stopping"."""
    plan.building.set()
    try:
        return get_annotator_class(plan.config.method)(plan)
    finally:
        plan.building.clear()
