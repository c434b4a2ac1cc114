"""The Ray engine's actor: one annotator, one continuous stream of items through it.

Each actor call brings one batch and returns that batch's outcomes, so the driver keeps its
simple contract (a batch in, its outcomes out, retried whole when lost). But the calls do not
each run ``annotate`` from start to end: the actor is threaded, each call only puts its items on
the actor's queue and waits for its own outcomes, and one thread runs the annotator's
``annotate`` over that queue without stopping between batches. A file annotator therefore keeps
its ``concurrency`` requests in flight across batch boundaries (with submit-and-wait rounds the
last requests of every batch ran alone, a tail that cost a latency-bound job 5-10 %), and a
model cuts its forward-pass batches across them.

When the queue runs dry the stream tells the annotator to pause (``ItemStream.wants_pause``) so
it finishes what is in flight instead of blocking for more input; an annotator that pulls anyway
gets the end of its input, and the next item starts a new ``annotate`` pass. So no outcome ever
waits for an item that has not arrived.
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import ray

from .._annotators.base import Annotator, Failed, Item, ItemStream, Labeled, Outcome, Routed, thread_errors
from .._annotators.contract import checked_pair, close_error, late_thread_error, no_outcome, second_outcome
from .._credentials import hide_env_credentials
from .._errors import JobError, RaisedInThread, TotaskError
from .._fetch import scrub
from .._jobs.plugin_errors import not_an_outcome, plugin_error_text, said

#: actor calls that may wait at once in one actor (batches in flight on it, plus ``close``); more
#: calls queue in Ray until one finishes
CALLS_PER_ACTOR = 16
_CLOSE = object()


class _Call:
    """One actor call: the items it brought, the outcomes found for them so far."""

    def __init__(self, items: list[Item]) -> None:
        self.items = items
        self.outcomes: dict[int, Outcome] = {}
        self.error: BaseException | None = None
        self.done = threading.Event()

    def deliver(self, index: int, outcome: Outcome) -> None:
        self.outcomes[index] = outcome
        if len(self.outcomes) == len(self.items):
            self.done.set()

    def fail(self, error: BaseException) -> None:
        self.error = error
        self.done.set()


class _Pass(Iterator[Item]):
    """The items of one ``annotate`` pass: the queue's, until it is found empty."""

    def __init__(self, first: Item, items: queue.SimpleQueue) -> None:
        self._first: Item | None = first
        self._items = items
        self.ended = False
        self.pulled: list[Item] = []
        #: item index -> outcomes still owed for it in this pass (an item brought by two calls: 2)
        self.owed: Counter[int] = Counter()

    def __next__(self) -> Item:
        if self._first is not None:
            item, self._first = self._first, None
        elif self.ended:
            raise StopIteration
        else:
            try:
                item = self._items.get_nowait()
            except queue.Empty:
                self.ended = True
                raise StopIteration from None
            if item is _CLOSE:  # put back for the stream loop, which ends on it
                self._items.put(item)
                self.ended = True
                raise StopIteration
        self.pulled.append(item)
        self.owed[item.index] += 1
        return item

    def answer(self, method: str, item: Item) -> None:
        """One outcome for ``item``: refused (as locally) when the pass did not give it, or has
        had its outcome already; a duplicate was dropped without a word."""
        if self.owed[item.index] <= 0:
            raise second_outcome(method, item)
        self.owed[item.index] -= 1

    def unanswered(self) -> list[Item]:
        owed = Counter(self.owed)
        left = []
        for item in self.pulled:
            if owed[item.index] > 0:
                owed[item.index] -= 1
                left.append(item)
        return left

    def dry(self) -> bool:
        return self._items.empty()


class AnnotatorStream:
    """Items from concurrent callers through one annotator, outcomes back to their callers."""

    def __init__(self, annotator: Annotator, method: str = "",
                 raise_thread_error: Callable[[], None] = lambda: None) -> None:
        self.annotator = annotator
        #: the job's ``--method``, which the contract's messages name
        self.method = method or f"{type(annotator).__module__}:{type(annotator).__qualname__}"
        #: raises what a thread of the annotator's raised (``thread_errors``), before an outcome is delivered
        self.raise_thread_error = raise_thread_error
        self._items: queue.SimpleQueue = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._waiting: dict[int, list[_Call]] = {}  # item index -> calls that brought it
        self._thread = threading.Thread(target=self._loop, name="totask-annotate", daemon=True)
        self._thread.start()

    def run(self, items: list[Item]) -> list[Outcome]:
        """The outcomes of ``items``, in their order, once every one is annotated."""
        if not items:
            return []
        call = _Call(items)
        with self._lock:
            for item in items:
                self._waiting.setdefault(item.index, []).append(call)
        for item in items:
            self._items.put(item)
        call.done.wait()
        if call.error is not None:
            raise call.error
        return [call.outcomes[item.index] for item in items]

    def close(self) -> None:
        self._items.put(_CLOSE)
        self._thread.join(timeout=30)

    def _deliver(self, item: Item, outcome: Outcome) -> None:
        if not isinstance(outcome, (Labeled, Failed, Routed)):
            raise not_an_outcome(self.method, item, outcome)
        with self._lock:
            calls = self._waiting.get(item.index)
            if not calls:
                return  # its call failed meanwhile, or a duplicate nobody waits for
            calls.pop(0).deliver(item.index, outcome)  # the call that brought it first
            if not calls:
                del self._waiting[item.index]

    def _fail_all(self, error: BaseException) -> None:
        """The annotator raised: every waiting call fails with it (the job fails, as locally)."""
        with self._lock:
            calls = {id(c): c for waiting in self._waiting.values() for c in waiting}
            self._waiting.clear()
        with contextlib.suppress(queue.Empty):
            while True:
                if self._items.get_nowait() is _CLOSE:
                    self._items.put(_CLOSE)
                    break
        for call in calls.values():
            call.fail(error)

    def _loop(self) -> None:
        while True:
            first = self._items.get()
            if first is _CLOSE:
                return
            items = _Pass(first, self._items)
            outcomes = self.annotator.annotate(ItemStream(items, items.dry))
            try:
                for pair in outcomes:
                    self.raise_thread_error()  # an outcome given after its thread broke is not delivered
                    item, outcome = checked_pair(self.method, pair)
                    items.answer(self.method, item)
                    self._deliver(item, outcome)
                missing = items.unanswered()
                if missing:
                    raise no_outcome(self.method, missing[0], len(missing))
            except BaseException as exc:  # handed to the callers, who raise it
                with contextlib.suppress(Exception):
                    getattr(outcomes, "close", lambda: None)()
                self._fail_all(self._named(exc))

    def _named(self, exc: BaseException) -> BaseException:
        """What the driver raises for ``exc``: a plugin's error as the one line the local engine
        gives (``method plugin ... raised ... (file line N, in f)``), made here since its traceback
        does not travel back to the driver; a thread's, which would lose its cause on the way, too."""
        if isinstance(exc, TotaskError) or not isinstance(exc, Exception):
            return exc
        text = plugin_error_text(self.method, exc)
        if text is None and isinstance(exc, RaisedInThread):
            text = said(exc)
        return exc if text is None else JobError(text)


@dataclass(frozen=True)
class NotBuilt:
    """What an actor whose annotator could not be built answers to every batch: why (one line).
    An answer, not an exception: a batch the driver moves elsewhere leaves its call unread, and
    Ray prints an unread error with its traceback."""

    why: str


def build_error_text(exc: BaseException) -> str:
    """One line: a usage or job error's own message (it names the option: ``--model ...: the
    factory failed: ...``), another error's type and message; URLs' queries and user info removed,
    and the environment's credentials (a plugin's constructor may quote what it read)."""
    text = str(exc) if isinstance(exc, TotaskError) else f"{type(exc).__name__}: {exc}"
    return scrub(hide_env_credentials(text), 400)


class AnnotatorActor:
    """One annotator per actor, built once (a model loads once per actor, on its GPU); each call
    annotates one batch through the actor's ``AnnotatorStream``.

    ``where`` runs in its own concurrency group, so the driver can ask a busy actor whether it is
    alive without waiting for its batches.
    """

    def __init__(self, build: Callable[[], Annotator], method: str = "") -> None:
        # An annotator that cannot be built here (the model out of this GPU's memory, a package
        # missing from this node) is kept as the reason, not raised: a failed creation task is
        # printed by Ray as pages of tracebacks, the worker aborts, and the driver saw only
        # "lost with their worker" while it retried the dead actor. Each call answers the reason
        # (``NotBuilt``), and the driver moves the batch to an actor that was built.
        self.stream: AnnotatorStream | None = None
        self.not_built: str | None = None
        self.method = method
        # what a thread the annotator starts (in its constructor too) raises is kept for the
        # stream to raise, as the local engine does; Python's hook printed it to the worker's log
        # and the job said COMPLETED
        self._threads = contextlib.ExitStack()
        self._thread_errors = self._threads.enter_context(thread_errors())
        try:
            self.stream = AnnotatorStream(build(), method, self._thread_errors)
        except Exception as exc:
            self.not_built = build_error_text(exc)

    def annotate(self, items: list[Item]) -> list[Outcome] | NotBuilt:
        if self.stream is None:
            return NotBuilt(self.not_built or "the annotator could not be built")
        return self.stream.run(items)

    @ray.method(concurrency_group="probe")
    def where(self) -> dict[str, Any]:
        """Node, process and the resources Ray gave this actor."""
        ctx = ray.get_runtime_context()
        return {"node": ctx.get_node_id(), "ip": ray.util.get_node_ip_address(), "pid": os.getpid(),
                "resources": ctx.get_assigned_resources()}

    def close(self) -> tuple[str, str] | None:
        """Close the annotator: None, or (one line, what to fix) for what its ``close()`` raised
        (``close_error``) or, after that, a thread of its (``late_thread_error``), which the
        driver reports as the local engine does (the first was dropped without a word, the second
        went to this worker's log only)."""
        try:
            if self.stream is None:
                return None
            with contextlib.suppress(Exception):
                self.stream.close()
            try:
                self.stream.annotator.close()
            except Exception as exc:
                return close_error(self.stream.method, exc), "close()"
            late = self._thread_errors.late()
            return None if late is None else (late_thread_error(self.stream.method, late), "that thread")
        finally:
            self._threads.close()


def remote_actor_class() -> Any:
    """``AnnotatorActor`` as a Ray actor class: threaded (calls wait for their batches side by
    side), with a ``probe`` group of its own."""
    return ray.remote(max_concurrency=CALLS_PER_ACTOR, concurrency_groups={"probe": 1})(AnnotatorActor)


__all__ = ["CALLS_PER_ACTOR", "AnnotatorActor", "AnnotatorStream", "NotBuilt", "build_error_text",
           "remote_actor_class"]
