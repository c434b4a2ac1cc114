"""SIGTERM and SIGHUP handled as Ctrl-C is, for commands that are no job (``convert``, ``labeled``,
``export``, ``run``, ``apply``, ``rollback``), and for the job commands until their job handles
signals itself.

``timeout``, ``docker stop``, systemd and batch schedulers stop a process with SIGTERM; a terminal
that closes (an ssh session dropped) sends SIGHUP. Python's default is to die of either at once,
so a ``convert`` stopped that way skipped the clean-up a Ctrl-C runs: a YOLO export left its whole
hidden ``.tmp-yolo-*`` stage in the user's folder. Jobs install their own handlers
(``_jobs/execute.py``); this is the same promise for the commands that only clean up through
``KeyboardInterrupt``.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from typing import TextIO

from .. import _signals


class Terminated(KeyboardInterrupt):
    """SIGTERM (or SIGHUP: ``signum``), raised where Ctrl-C's ``KeyboardInterrupt`` would be: the
    same clean-up runs, and the command exits 128 + the signal's number (143, 129) as a shell
    reports a process the signal ended."""

    def __init__(self, signum: int = signal.SIGTERM) -> None:
        super().__init__()
        self.signum = signum


#: SIGTERM and, where the system has it, SIGHUP: the stop signals Python does not raise on its own
_TERMINATING = tuple(s for s in _signals.STOPS if s != signal.SIGINT)


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM and SIGHUP raise ``Terminated`` on the main thread of this process.

    A worker forked inside the block inherits the handler; there it restores the default and
    dies of the signal, as before (``ProcessPoolExecutor`` stops its workers with SIGTERM). A
    signal the caller ignores stays ignored (``nohup``: SIGHUP)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    owner = os.getpid()

    def handler(signum: int, frame: object) -> None:
        if os.getpid() != owner:
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        raise Terminated(signum)

    previous = {s: signal.signal(s, handler) for s in _TERMINATING if signal.getsignal(s) is not signal.SIG_IGN}
    try:
        yield
    finally:
        for signum, was in previous.items():
            if signal.getsignal(signum) is handler:  # not one set since: the CLI's, noting once the work is done
                signal.signal(signum, was)


def stopped_as_by_ctrl_c(run: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """A job command's ``run`` (annotate, chain, clone, resume) with SIGTERM and SIGHUP taken as
    Ctrl-C until its job installs its own handlers: either while it scans its input (before the job
    exists) killed it at once, leaving the job folder, its lease and the scan's spawned workers behind."""

    @functools.wraps(run)
    def wrapped(args: argparse.Namespace) -> int:
        with sigterm_as_interrupt():
            return run(args)

    return wrapped


def say_interrupted(command: str, so_far: str, then: str, exc: KeyboardInterrupt, *, counts_to: TextIO) -> int:
    """What ``apply`` and ``rollback`` say when a Ctrl-C or SIGTERM stops them: the counts of the
    tasks finished before it (``so_far``, on ``counts_to``), then one line on stderr with what to
    run (``then``); the exit code a shell gives a process the signal ended. "interrupted" alone hid
    that tasks had been written to Synapse, and how many were left."""
    with contextlib.suppress(BrokenPipeError, OSError):  # a reader of stdout gone: the line below still says it
        print(so_far, file=counts_to, flush=True)
    print(f"totask-manifest {command}: interrupted: {then}", file=sys.stderr)
    return 128 + int(getattr(exc, "signum", signal.SIGINT))
