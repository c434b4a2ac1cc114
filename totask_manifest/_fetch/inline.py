"""An event loop that the caller's own thread runs, only while it waits for results.

``fetch.LoopThread`` runs the fetcher's loop in a second thread: the caller hands work over and
takes results back through thread-safe queues, a wake-up per batch both ways. On a 2-core
machine the two threads only take turns (the GIL), so those hops are pure cost: every line of a
file job paid for them. ``InlineLoop`` offers the same ``run`` / ``map_unordered`` / ``close``
but runs the loop inline: ``map_unordered`` starts work up to its limit, runs the loop until at
least one piece is done, yields what is done, and starts more. Requests stay in flight while the
caller records outcomes (the sockets keep receiving; the loop picks the answers up when it runs
next), so the pipeline stays full without a second thread.

A signal handler that raises (the job's second Ctrl-C raises ``_jobs.execute.HardStop``, a
``BaseException``) may now fire inside a loop callback, where asyncio would log the exception and
carry on; the loop's exception handler instead stops the loop and the exception is raised to the
caller, as it was when the caller's thread only waited on a queue.

It needs a thread with no running event loop (``for_this_thread`` falls back to a
``LoopThread`` where one runs, e.g. a job started from async code). Callers that need results
while they do other work (the inference annotator's ``submit``) keep the ``LoopThread``.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import Any, TypeVar

from .loop import LoopThread, _task_result

T = TypeVar("T")
R = TypeVar("R")


class InlineLoop:
    """A private event loop run in the calling thread (see the module docstring)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.loop.set_exception_handler(self._on_error)
        self._escaped: BaseException | None = None

    def _on_error(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        """An exception that is not an ``Exception`` (a signal handler's) leaves the loop."""
        exc = context.get("exception")
        if exc is not None and not isinstance(exc, Exception):
            self._escaped = exc
            loop.stop()
            return
        loop.default_exception_handler(context)

    def _raise_escaped(self) -> None:
        exc, self._escaped = self._escaped, None
        if exc is not None:
            raise exc

    @staticmethod
    def for_this_thread() -> Any:
        """An ``InlineLoop``, or a ``fetch.LoopThread`` where this thread already runs a loop
        (an inline loop cannot run inside another)."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return InlineLoop()
        return LoopThread()

    def run(self, coro: Awaitable[T], timeout: float | None = None) -> T:
        """Run a coroutine to its end on this loop; ``TimeoutError`` after ``timeout`` seconds."""
        if timeout is not None:
            coro = asyncio.wait_for(coro, timeout)
        try:
            return self.loop.run_until_complete(coro)  # type: ignore[arg-type]
        finally:
            self._raise_escaped()

    def map_unordered(
        self, fn: Callable[[T], Awaitable[R]], items: Iterable[T], limit: int
    ) -> Iterator[tuple[T, R]]:
        """``(item, await fn(item))`` in completion order, with at most ``limit`` started and not
        yet yielded. As ``LoopThread.map_unordered``: items are pulled lazily, an ``ItemStream``'s
        ``wants_pause`` is honoured, an exception ``fn`` raises is re-raised here, and closing
        the generator early cancels what is still running."""
        if limit < 1:
            raise ValueError("limit must be at least 1")
        loop = self.loop
        done: deque[tuple[T, asyncio.Task[R]]] = deque()
        running: set[asyncio.Task[R]] = set()
        waiting = [False]  # True only inside this generator's run_forever: a stop elsewhere would cut a run short

        def finished(task: asyncio.Task[R], item: T) -> None:
            running.discard(task)
            done.append((item, task))
            if waiting[0]:
                waiting[0] = False
                loop.stop()  # run_forever returns after this pass: every answer already read is handled

        source = iter(items)
        wants_pause: Callable[[], bool] = getattr(items, "wants_pause", None) or (lambda: False)
        exhausted = False
        try:
            while True:
                while not exhausted and len(running) + len(done) < limit and not (running and wants_pause()):
                    try:
                        item = next(source)
                    except StopIteration:
                        exhausted = True
                        break
                    task = loop.create_task(fn(item))  # type: ignore[arg-type]
                    running.add(task)
                    task.add_done_callback(lambda t, item=item: finished(t, item))
                if not done:
                    if not running:
                        return
                    waiting[0] = True
                    try:
                        loop.run_forever()
                    finally:
                        waiting[0] = False
                    self._raise_escaped()
                while done:
                    item, task = done.popleft()
                    yield item, _task_result(task)
        finally:
            if running and not loop.is_closed():
                for task in list(running):
                    task.cancel()
                loop.run_until_complete(asyncio.gather(*running, return_exceptions=True))

    def close(self, timeout: float = 5.0) -> None:
        """Cancel what still runs, finish async generators, close the loop."""
        loop = self.loop
        if loop.is_closed():
            return
        pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
        for task in pending:
            task.cancel()
        try:
            if pending:
                loop.run_until_complete(asyncio.wait(pending, timeout=timeout))
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            loop.close()

