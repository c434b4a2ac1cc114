"""``LoopThread``: an event loop in a thread, for synchronous callers."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import queue
import threading
from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import NoReturn, TypeVar

from .._signals import close_event_loop, new_event_loop
from .pool_threads import TrackedPool

T = TypeVar("T")
R = TypeVar("R")


class LoopThread:
    """An asyncio event loop in a daemon thread.

    Lets synchronous code (an annotator's ``annotate`` generator) keep many requests in flight
    on one loop and one connection pool, while it keeps reading input and writing output.
    """

    def __init__(self, name: str = "totask-fetch-loop") -> None:
        self.loop = new_event_loop()  # a Ctrl-C leaves no half-built loop
        #: ``asyncio.to_thread``'s pool (a converter plugin's hooks): its idle threads end by ``close``
        self._pool = TrackedPool(thread_name_prefix="totask-to-thread")
        self.loop.set_default_executor(self._pool)
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()
        self._ready.wait()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.call_soon(self._ready.set)
        self.loop.run_forever()

    def submit(self, coro: Awaitable[T]) -> concurrent.futures.Future[T]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)  # type: ignore[arg-type]

    def run(self, coro: Awaitable[T], timeout: float | None = None) -> T:
        """Run a coroutine on the loop and wait for its result here."""
        return self.submit(coro).result(timeout)

    def map_unordered(
        self, fn: Callable[[T], Awaitable[R]], items: Iterable[T], limit: int
    ) -> Iterator[tuple[T, R]]:
        """``(item, await fn(item))`` in completion order, with at most ``limit`` running.

        Items are pulled lazily, so the input is streamed; items are started in batches (one
        thread hop per batch, not per item). ``fn`` should not raise: an exception it raises is
        re-raised here. Closing the generator early cancels what is still running.
        """
        if limit < 1:
            raise ValueError("limit must be at least 1")
        done: queue.SimpleQueue[tuple[T, asyncio.Task[R]]] = queue.SimpleQueue()
        running: set[asyncio.Task[R]] = set()

        def start(batch: list[T]) -> None:
            for item in batch:
                try:
                    task = self.loop.create_task(fn(item))  # type: ignore[arg-type]
                except Exception as exc:  # raised (or no coroutine given) before any await:
                    # lost in this loop's callback, the caller waited for ever; carried to it instead
                    task = self.loop.create_task(_reraise(exc))
                running.add(task)
                task.add_done_callback(lambda t, item=item: (running.discard(t), done.put((item, t))))

        def cancel_all() -> None:
            for task in list(running):
                task.cancel()

        source = iter(items)
        # an ItemStream's back-pressure: finish what runs before taking more (see annotators.base)
        wants_pause: Callable[[], bool] = getattr(items, "wants_pause", None) or (lambda: False)
        exhausted = False
        in_flight = 0
        try:
            while True:
                batch: list[T] = []
                while not exhausted and in_flight + len(batch) < limit and not (in_flight and wants_pause()):
                    try:
                        batch.append(next(source))
                    except StopIteration:
                        exhausted = True
                if batch:
                    self.loop.call_soon_threadsafe(start, batch)
                    in_flight += len(batch)
                if in_flight == 0:
                    return
                item, task = done.get()
                in_flight -= 1
                yield item, _task_result(task)
                while in_flight:
                    try:
                        item, task = done.get_nowait()
                    except queue.Empty:
                        break
                    in_flight -= 1
                    yield item, _task_result(task)
        finally:
            if in_flight and not self.loop.is_closed():
                self.loop.call_soon_threadsafe(cancel_all)

    def close(self, timeout: float = 5.0) -> None:
        """Cancel what still runs on the loop and wait for it, then stop the loop and the thread."""
        if self.loop.is_closed():
            return
        if self._thread.is_alive():
            with contextlib.suppress(concurrent.futures.TimeoutError, RuntimeError):
                self.run(_cancel_pending(), timeout)
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout)
        if not self._thread.is_alive():
            close_event_loop(self.loop)
            self._pool.close()


def _task_result(task: asyncio.Task[R]) -> R:
    if task.cancelled():
        raise asyncio.CancelledError()
    exc = task.exception()
    if exc is not None:
        raise exc
    return task.result()


async def _cancel_pending() -> None:
    """Cancel the loop's other tasks and wait until each has ended. A task still pending when the
    loop closes is collected later with asyncio's ``Task was destroyed but it is pending!`` and its
    repr on stderr: the inference annotator's image fetches (``submit``) of a job that failed on a
    checkpoint it could not write printed 45 of them."""
    current = asyncio.current_task()
    pending = [task for task in asyncio.all_tasks() if task is not current]
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)


async def _reraise(exc: BaseException) -> NoReturn:
    """A task that fails with ``exc`` (``map_unordered``: what ``fn`` raised before any await)."""
    raise exc
