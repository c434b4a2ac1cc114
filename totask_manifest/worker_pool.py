"""Process pools that read one big file in byte ranges (``validate``, ``stats``, ``evaluate``), made
so that a Ctrl-C ends the command with its one line and exit 130, and no process prints a traceback.

A terminal sends Ctrl-C to every process of its foreground group: the command and its pool
workers alike. Python's own handler raised ``KeyboardInterrupt`` in each worker wherever it was,
often inside an import (a spawned worker imports polars or numpy when its first range arrives),
where nothing catches it: every worker printed a traceback. And when workers die, the pool's
thread sets an exception on every pending future; for a future already cancelled (``stats``
cancels the ranges it reads itself) Python 3.11 raises ``InvalidStateError`` there, one more
traceback, and leaves the pool half torn down (3.12 ignores it).

So workers ignore SIGINT from their first instruction: the command starts them (``submit`` spawns
them) inside ``spawning()``, with SIGINT blocked and ignored, a disposition a spawned interpreter
inherits and keeps (Python installs its ``KeyboardInterrupt`` handler only over the default one).
``quiet_worker``, the pools' initializer, only came into effect after the worker had imported
``multiprocessing``: a Ctrl-C in that window printed a traceback (seen on a loaded machine). A
Ctrl-C that reaches the command inside the window stays pending (blocked, not ignored) and
arrives when it ends. The command, interrupted itself, ends the workers (``stop``): it first takes the cancelled futures out of the pool's pending work,
then kills the workers, so queued ranges are not waited for and the pool is torn down cleanly.
A worker whose command is gone leaves by itself (its queue closes).
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor


def quiet_worker() -> None:
    """Pool initializer: the worker ignores SIGINT; the command that started it acts on it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@contextlib.contextmanager
def spawning() -> Iterator[None]:
    """Submit work (which starts the pool's workers) here: the workers start ignoring SIGINT."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal dispositions are the main thread's to change; its own command handles Ctrl-C
        return
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})  # a pending Ctrl-C arrives now


def stop(pool: ProcessPoolExecutor, futures: Iterable[Future]) -> None:
    """End the pool's work now, after an exception in the command (a Ctrl-C above all)."""
    processes = getattr(pool, "_processes", None)
    if not processes:  # no worker started (or another implementation): cancel what has not started
        for future in futures:
            future.cancel()
        return
    pending = getattr(pool, "_pending_work_items", None)
    if isinstance(pending, dict):
        for work_id, item in list(pending.items()):
            if item.future.cancelled():
                pending.pop(work_id, None)
    for process in list(processes.values()):
        with contextlib.suppress(Exception):
            process.kill()
