"""An event loop that the caller's own thread runs, only while it waits for results.

``fetch.LoopThread`` runs the fetcher's loop in a second thread: the caller hands work over and
takes results back through thread-safe queues, a wake-up per batch both ways. On a 2-core
machine the two threads only take turns (the GIL), so those hops are pure cost: every line of a
file job paid for them. ``InlineLoop`` offers the same ``run`` / ``map_unordered`` / ``close``
but runs the loop inline: ``map_unordered`` pulls work up to its limit for its worker
coroutines, runs the loop until at least one piece is done, yields what is done, and pulls more
(a worker takes the next pulled piece the moment it finishes one, with no task made per piece).
Requests stay in flight while the
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

from .._signals import close_event_loop, new_event_loop
from .loop import LoopThread
from .pool_threads import TrackedPool

T = TypeVar("T")
R = TypeVar("R")

#: how long ``run`` waits for its task to end once cancelled (an exception left the loop)
CANCEL_WAIT = 5.0


class InlineLoop:
    """A private event loop run in the calling thread (see the module docstring)."""

    def __init__(self) -> None:
        self.loop = new_event_loop()  # a Ctrl-C leaves no half-built loop
        self.loop.set_exception_handler(self._on_error)
        #: ``asyncio.to_thread``'s pool (a converter plugin's hooks): its idle threads end by ``close``
        self._pool = TrackedPool(thread_name_prefix="totask-to-thread")
        self.loop.set_default_executor(self._pool)
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
        """Run a coroutine to its end on this loop; ``TimeoutError`` after ``timeout`` seconds.

        An exception that leaves the loop first (a signal handler's) leaves the task unfinished:
        it is cancelled and run to its end here (at most ``CANCEL_WAIT`` seconds), so no task is
        left pending (Python prints "Task was destroyed but it is pending!" for one at exit), and
        an exception the task ended with is retrieved (never "Task exception was never
        retrieved")."""
        if timeout is not None:
            coro = asyncio.wait_for(coro, timeout)
        task = self.loop.create_task(coro)  # type: ignore[arg-type]
        try:
            return self.loop.run_until_complete(task)
        finally:
            try:
                if not task.done():
                    task.cancel()
                    self.loop.run_until_complete(asyncio.wait([task], timeout=CANCEL_WAIT))
            finally:
                if task.done() and not task.cancelled():
                    task.exception()  # marks it retrieved; run_until_complete raised it already
                self._raise_escaped()

    def map_unordered(
        self, fn: Callable[[T], Awaitable[R]], items: Iterable[T], limit: int
    ) -> Iterator[tuple[T, R]]:
        """``(item, await fn(item))`` in completion order, with at most ``limit`` pulled and not
        yet yielded. As ``LoopThread.map_unordered``: items are pulled lazily, an ``ItemStream``'s
        ``wants_pause`` is honoured, an exception ``fn`` raises is re-raised here, and closing
        the generator early cancels what is still running.

        Up to ``limit`` worker coroutines (one per item pulled) run the items, each taking the
        next pulled item as soon as it finishes one: no task or done-callback per item. Pulled
        items a worker has not taken yet wait in a queue. A file job pulls a quarter more items
        than requests may be in flight, so a line waiting out a retry's backoff holds a worker,
        not one of the fetcher's request slots.
        """
        if limit < 1:
            raise ValueError("limit must be at least 1")
        loop = self.loop
        pending: deque[T] = deque()  # pulled, not yet taken by a worker
        done: deque[tuple[T, Any, BaseException | None]] = deque()
        crew: list[asyncio.Task[None]] = []
        idle: deque[asyncio.Future[None]] = deque()  # one per worker waiting for an item
        state = {"busy": 0, "waiting": False, "closing": False}  # waiting: inside this generator's run_forever

        async def worker() -> None:
            me = asyncio.current_task()
            assert me is not None
            try:
                while True:
                    while pending:
                        item = pending.popleft()
                        state["busy"] += 1
                        try:
                            done.append((item, await fn(item), None))  # type: ignore[arg-type]
                        except asyncio.CancelledError as exc:
                            if state["closing"] or me.cancelling():  # the worker itself is cancelled
                                raise
                            done.append((item, None, exc))  # fn cancelled itself: raised to the caller, as a task's would be
                        except (KeyboardInterrupt, SystemExit):
                            raise  # out of the loop at once, as asyncio raises them out of a task
                        except BaseException as exc:  # re-raised to the caller when its item's turn comes
                            done.append((item, None, exc))
                        state["busy"] -= 1
                        if state["waiting"]:
                            state["waiting"] = False
                            loop.stop()  # run_forever returns after this pass: every answer already read is handled
                    wake = loop.create_future()
                    idle.append(wake)
                    await wake
            except asyncio.CancelledError:
                if not state["closing"]:
                    raise
            except BaseException as exc:  # a signal handler's exception outside fn: it leaves the loop
                self._escaped = exc
                loop.stop()

        def hand_out() -> None:
            """Wake an idle worker per pulled item, and start workers up to ``limit``."""
            waiting = len(pending)
            while waiting and idle:
                wake = idle.popleft()
                if not wake.done():
                    wake.set_result(None)
                    waiting -= 1
            while waiting and len(crew) < limit:
                crew.append(loop.create_task(worker()))
                waiting -= 1

        source = iter(items)
        wants_pause: Callable[[], bool] = getattr(items, "wants_pause", None) or (lambda: False)
        exhausted = False
        try:
            while True:
                pulled = False
                while not exhausted and len(pending) + state["busy"] + len(done) < limit and not (
                        (pending or state["busy"]) and wants_pause()):
                    try:
                        pending.append(next(source))
                    except StopIteration:
                        exhausted = True
                        break
                    pulled = True
                if pulled:
                    hand_out()
                if not done:
                    if not pending and not state["busy"]:
                        return
                    state["waiting"] = True
                    try:
                        loop.run_forever()
                    finally:
                        state["waiting"] = False
                    self._raise_escaped()
                while done:
                    item, result, exc = done.popleft()
                    if exc is not None:
                        raise exc
                    yield item, result
        finally:
            state["closing"] = True
            pending.clear()
            live = [task for task in crew if not task.done()]
            if live and not loop.is_closed():
                for task in live:
                    task.cancel()
                loop.run_until_complete(asyncio.gather(*live, return_exceptions=True))

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
            close_event_loop(loop)
            self._pool.close()

