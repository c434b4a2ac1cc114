"""The worker pool under ``ranges.map_ranges``: its workers quiet on Ctrl-C from their first
instruction, started without the caller's main script, ending when the command is killed, and a
pool ended at once when the command is interrupted or a worker dies (Python's pool could wait for ever on a worker killed while it
sent a result).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import multiprocessing.connection
import os
import signal
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any

#: seconds between looks for a dead worker while waiting for a range's result (``result_of``)
_WATCH_S = 0.25
#: seconds between a worker's looks for its command, gone (``end_with``)
_PARENT_S = 0.5


def quiet_worker() -> None:
    """Pool initializer: the worker ignores SIGINT; the command that started it acts on it. It
    starts with SIGINT blocked (``spawning``); this keeps it out whatever started it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def end_with(parent: int) -> None:
    """Pool initializer: end this worker once ``parent`` (the command that started it) is gone.
    An idle worker waits for its next range on a pipe whose write end it holds itself (Python's
    pool hands a worker both ends), so a command killed with ``kill -9`` (the OOM killer, a
    batch system's timeout) left its workers and multiprocessing's resource tracker running for
    ever, one worker a core at each kill. A daemon thread looks at the parent's pid twice a
    second; ``os._exit``, as the work is the parent's and it is gone."""
    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(_PARENT_S)
        os._exit(1)

    if os.getppid() != parent:  # gone before this worker started
        os._exit(1)
    threading.Thread(target=watch, name="totask-parent-watch", daemon=True).start()


@contextlib.contextmanager
def spawning() -> Iterator[None]:
    """Submit work (which starts the pool's workers) here: they start with SIGINT blocked, a mask
    a spawned interpreter inherits and keeps until ``quiet_worker`` ignores the signal.
    ``quiet_worker`` alone came into effect only after a worker had imported ``multiprocessing``:
    a Ctrl-C in that window printed a traceback (seen on a loaded machine).

    A Ctrl-C reaching the command inside the window is remembered and raised when it ends, as
    the handler in place then takes it (``KeyboardInterrupt``). It may land in another thread
    (one that does not block it, a user's or a library's): the window used to ignore SIGINT
    process-wide, which dropped it there, and the job ran on to COMPLETED, exit 0."""
    if not hasattr(signal, "pthread_sigmask") or threading.current_thread() is not threading.main_thread():
        yield  # signal dispositions are the main thread's to change; its own command handles Ctrl-C
        return
    previous = signal.getsignal(signal.SIGINT)
    if previous in (signal.SIG_IGN, None):  # ignored (inherited so, and kept), or not Python's to set
        with _sigint_blocked():
            yield
        return
    caught: list[int] = []
    signal.signal(signal.SIGINT, lambda signum, _frame: caught.append(signum))
    try:
        with _sigint_blocked():  # unblocked, a pending Ctrl-C runs the handler above (``pthread_sigmask``)
            yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if caught:
        signal.raise_signal(signal.SIGINT)  # to the handler in place, as if it came now


@contextlib.contextmanager
def _sigint_blocked() -> Iterator[None]:
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


def tracker_started() -> None:
    """Start ``multiprocessing``'s resource tracker (a spawned pool's locks and queues register with
    it; a forked pool's are unlinked at once and need none, so ``ranges`` starts it for spawn only)
    with SIGHUP blocked, a mask it keeps: a closed terminal sends SIGHUP to the whole process group,
    and the tracker, which ignores only SIGINT and SIGTERM, died of it; the command then started
    another, which printed a warning and a traceback on the command's stderr. Blocked here, a SIGHUP
    for the command waits the moment it takes, then reaches the command's own handler."""
    if not hasattr(signal, "SIGHUP") or not hasattr(signal, "pthread_sigmask") or \
            threading.current_thread() is not threading.main_thread():
        return
    from multiprocessing import resource_tracker

    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGHUP})
    try:
        resource_tracker.ensure_running()
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGHUP})


@contextlib.contextmanager
def main_script_kept_out() -> Iterator[None]:
    """Start workers here: a spawned one does not run the caller's main script again.
    ``multiprocessing`` has a spawned child run the parent's ``__main__`` (its file, or its module
    for ``python -m``) so that functions defined there can be unpickled; a script without the
    ``if __name__ == "__main__":`` guard ran whole again in every worker. A job always spawns
    (its lease's heartbeat is a thread), so a user's plain script calling ``annotate`` on a file
    over 32 MB started the job again in each worker ("job ... is in use" tracebacks) and redid
    whatever came before the call. The workers run only this package's functions, found by module
    name: nothing of the script is needed, so ``__main__`` is shown to them without file or spec."""
    main = sys.modules.get("__main__")
    if main is None:
        yield
        return
    saved = {k: main.__dict__[k] for k in ("__file__", "__spec__") if k in main.__dict__}
    main.__dict__.pop("__file__", None)
    main.__dict__["__spec__"] = None
    try:
        yield
    finally:
        main.__dict__.pop("__spec__", None)
        main.__dict__.update(saved)


def stop(pool: ProcessPoolExecutor, futures: Iterable[Future]) -> None:
    """End the pool's work now, after an exception in the command (a Ctrl-C above all): take the
    cancelled futures out of its pending work, then kill the workers, so queued ranges are not
    waited for and the pool is torn down cleanly."""
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
    # the pool's thread may be reading a result a worker was killed half way through sending: it
    # waits for the rest until every write end of the result pipe is closed, this process's own
    # copy too (the pool only reads that pipe here; its thread is woken through a pipe of its own)
    writer = getattr(getattr(pool, "_result_queue", None), "_writer", None)
    if writer is not None:
        with contextlib.suppress(Exception):
            writer.close()


def result_of(pool: ProcessPoolExecutor, future: Future, futures: Iterable[Future]) -> Any:
    """``future.result()``, or ``BrokenProcessPool`` once a worker died. Python's pool notices a
    dead worker, except one killed (the OOM killer, ``kill -9``) half way through sending a
    result: its thread then waits for the rest, and so did this one, for ever. A dead worker
    seen here ends the pool (``stop``), which wakes its thread; the pool is broken in any case."""
    processes = getattr(pool, "_processes", None) or {}
    sentinels = [p.sentinel for p in list(processes.values())]
    while not concurrent.futures.wait([future], timeout=_WATCH_S).done:
        if sentinels and multiprocessing.connection.wait(sentinels, timeout=0):
            stop(pool, futures)
            break
    return future.result()
