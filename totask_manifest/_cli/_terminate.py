"""SIGTERM handled as Ctrl-C is, for the commands that write (``convert``, ``labeled``, ``export``, ``run``,
``apply``, ``rollback``, ``report``, and the job commands: ``annotate``, ``chain``, ``clone``, ``resume``).

``timeout``, ``docker stop``, systemd and batch schedulers stop a process with SIGTERM. Python's
default is to die of it at once, so a ``convert`` stopped that way skipped the clean-up a Ctrl-C
runs: a YOLO export left its whole hidden ``.tmp-yolo-*`` stage (a file per image) in the user's
folder. A job installs its own SIGINT/SIGTERM handlers once it runs (``_jobs/execute.py``); before
that, while it takes its lease and scans its input, a SIGTERM killed it at once: no line, and the
lease file left behind (another host waited out its timeout). The job commands take SIGTERM as
Ctrl-C from their start, so the same clean-up runs.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterator
from typing import TextIO


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where Ctrl-C's ``KeyboardInterrupt`` would be: the same clean-up runs, and
    the command exits 128 + 15 as a shell reports a process SIGTERM ended."""

    signum = signal.SIGTERM


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM raises ``Terminated`` on the main thread of this process.

    A worker forked inside the block inherits the handler; there it restores the default and
    dies of the signal, as before (``ProcessPoolExecutor`` stops its workers with SIGTERM). A
    SIGTERM the caller ignores stays ignored. A handler set inside the block and still in place
    when it ends is kept: the CLI's, which notes a signal once the work is done (``_signals.done``);
    putting the default back over it let a SIGTERM kill ``convert`` without a word as it printed
    its summary."""
    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGTERM) is signal.SIG_IGN:
        yield
        return
    owner = os.getpid()

    def handler(signum: int, frame: object) -> None:
        if os.getpid() != owner:
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        raise Terminated

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        if signal.getsignal(signal.SIGTERM) is handler:  # not one set since: the CLI's, noting once the work is done
            signal.signal(signal.SIGTERM, previous)


def say_interrupted(command: str, so_far: str, then: str, exc: KeyboardInterrupt, *, counts_to: TextIO) -> int:
    """What ``apply`` and ``rollback`` say when a Ctrl-C or SIGTERM stops them: the counts of the
    tasks finished before it (``so_far``, on ``counts_to``), then one line on stderr with what to
    run (``then``); the exit code a shell gives a process the signal ended. "interrupted" alone hid
    that tasks had been written to Synapse, and how many were left."""
    with contextlib.suppress(BrokenPipeError, OSError):  # a reader of stdout gone: the line below still says it
        print(so_far, file=counts_to, flush=True)
    print(f"totask-manifest {command}: interrupted: {then}", file=sys.stderr)
    return 128 + int(getattr(exc, "signum", signal.SIGINT))
