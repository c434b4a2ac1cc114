"""Thread pools whose idle threads have ended when their owner's ``close`` returns.

``ThreadPoolExecutor.shutdown(wait=False)`` (and ``loop.close()``, which shuts the loop's default
executor down so) returns before the pool's idle threads have ended. A job then looks for the
threads its annotator left running (``note_threads_left``) and found some of them still ending on
most runs of a loaded machine: it logged the built-in ``file`` method (its file pool, and the
``asyncio.to_thread`` pool a converter plugin's hooks run in) as one that leaves threads behind,
and left the command through ``os._exit``. ``join_idle`` waits for the idle ones (they end at
once), never for one running a call: a second Ctrl-C leaves at once, even with a read hung on a
store or a plugin's hook that never returns.
"""

from __future__ import annotations

import concurrent.futures
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any

#: how long ``join_idle`` waits, at most, for a pool's idle threads to end (they end as soon as
#: they see the shutdown; the bound only matters on a machine too loaded to run them)
IDLE_THREAD_EXIT_WAIT = 5.0


#: every thread of every ``PoolThreads`` (the package's own pools): ``note_threads_left`` does not
#: blame an annotator for one still running a read when its owner closed (``is_own_pool_thread``)
_OWN_THREADS: weakref.WeakSet[threading.Thread] = weakref.WeakSet()


def is_own_pool_thread(thread: threading.Thread) -> bool:
    """Whether ``thread`` is one of the package's own pools' (``TrackedPool``), not a plugin's."""
    return thread in _OWN_THREADS


class PoolThreads:
    """A pool's threads, and which of them are running a call."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._busy: set[threading.Thread] = set()

    def started(self) -> None:
        """The pool's initializer: runs first in each of its threads."""
        with self._lock:
            self._threads.append(threading.current_thread())
        _OWN_THREADS.add(threading.current_thread())

    def run(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``fn(*args, **kwargs)`` in a pool thread, marked as running a call while it does."""
        me = threading.current_thread()
        with self._lock:
            self._busy.add(me)
        try:
            return fn(*args, **kwargs)
        finally:
            with self._lock:
                self._busy.discard(me)

    def join_idle(self) -> None:
        """Wait (``IDLE_THREAD_EXIT_WAIT`` at most) for the threads not running a call to end;
        called once the pool is shut down."""
        with self._lock:
            idle = [t for t in self._threads if t not in self._busy]
            self._threads = []
        deadline = time.monotonic() + IDLE_THREAD_EXIT_WAIT
        for thread in idle:
            thread.join(max(0.0, deadline - time.monotonic()))


class TrackedPool(concurrent.futures.ThreadPoolExecutor):
    """A ``ThreadPoolExecutor`` that knows which of its threads run a call (``PoolThreads``): an
    event loop's default executor (``loop.set_default_executor``), where ``asyncio.to_thread`` runs."""

    def __init__(self, max_workers: int | None = None, thread_name_prefix: str = "") -> None:
        self.threads = PoolThreads()
        super().__init__(max_workers=max_workers, thread_name_prefix=thread_name_prefix,
                         initializer=self.threads.started)

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> concurrent.futures.Future:
        return super().submit(self.threads.run, fn, *args, **kwargs)

    def close(self) -> None:
        """Shut down without waiting for a running call, then wait for the idle threads to end."""
        self.shutdown(wait=False, cancel_futures=True)
        self.threads.join_idle()
