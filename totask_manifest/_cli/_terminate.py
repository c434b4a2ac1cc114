"""SIGTERM and SIGHUP handled as Ctrl-C is, for every command's run (``stops_raised``, from
``_cli._run``: before it, ``_startup`` ends the process at once), and for the job commands until
their job handles signals itself. A signal that comes while the main thread imports is raised as
that import returns, never inside it (``_deferred``).

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
from types import FrameType
from typing import TextIO

from .. import _signals
from .._errors import also_said


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
    with _raised(_TERMINATING):
        yield


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
    print(f"totask-manifest {command}: interrupted: {then}{also_said(exc)}", file=sys.stderr)
    return 128 + int(getattr(exc, "signum", signal.SIGINT))


@contextlib.contextmanager
def stops_raised() -> Iterator[None]:
    """The command's run (``_cli._run``): SIGINT raises ``KeyboardInterrupt`` and SIGTERM and SIGHUP
    ``Terminated``, each command's clean-up then says it in one line with 128 + the number. Until
    here ``_startup``'s handler ended the process at once, nothing being written yet; without
    this, SIGTERM's default killed a ``validate`` or a ``convert`` still loading its libraries (or
    a ``report``) by the signal itself. One that comes during an import is raised when that
    import returns (``_deferred``)."""
    with _raised(_signals.STOPS):
        yield


@contextlib.contextmanager
def _raised(signals: tuple[int, ...]) -> Iterator[None]:
    """``signals`` raised as ``KeyboardInterrupt`` (``Terminated`` for SIGTERM and SIGHUP) on the
    main thread of this process; their handlers put back when the block ends, where none was set since."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    owner = os.getpid()

    def handler(signum: int, frame: FrameType | None) -> None:
        if os.getpid() != owner:
            if signum == signal.SIGINT:  # a forked worker: Python's own, as before (its pool quiets it)
                raise KeyboardInterrupt
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        if _deferred(signum, frame):
            return
        raise KeyboardInterrupt if signum == signal.SIGINT else Terminated(signum)

    previous = {s: signal.signal(s, handler) for s in signals if signal.getsignal(s) not in (signal.SIG_IGN, None)}
    try:
        yield
    finally:
        for signum, was in previous.items():
            if signal.getsignal(signum) is handler:  # not one set since: the CLI's, noting once the work is done
                signal.signal(signum, was)


def _importing(frame: FrameType | None) -> FrameType | None:
    """The main thread's outermost import frame under ``frame`` (None: no import is under way). A
    ``KeyboardInterrupt`` raised inside an import may reach a compiled module's initialisation,
    which can turn it into its own error: jsonschema_rs's import of ``decimal``, cut so, became a
    ``PanicException`` (a ``BaseException``) whose text is the import's traceback, printed whole
    by ``validate``; numpy cut half way cannot be imported again in the process."""
    outermost = None
    while frame is not None:
        if frame.f_code.co_filename.startswith("<frozen importlib._bootstrap"):
            outermost = frame
        frame = frame.f_back
    return outermost


#: the stop signals waiting for the main thread's import to end (``_deferred``)
_WAITING: set[int] = set()


def _deferred(signum: int, frame: FrameType | None) -> bool:
    """``signum`` handed to the handler then in place once the main thread's outermost import
    (under ``frame``) returns, from that frame, so the import statement raises it: True. False
    (raise it now) for a second one while the first waits, so an import that hangs never makes
    the signal powerless, and where no import is under way or a profiler runs (``sys.setprofile``
    is how the import's end is seen: one profiler per thread)."""
    importing = _importing(frame)
    if importing is None or signum in _WAITING or sys.getprofile() is not None:
        return False
    _WAITING.add(signum)

    def at_its_end(returning: FrameType, event: str, _arg: object) -> None:
        if event == "return" and returning is importing:
            sys.setprofile(None)
            waiting = sorted(_WAITING)
            _WAITING.clear()
            for signum in waiting:
                handler = signal.getsignal(signum)
                if callable(handler):  # what raises here is raised by the import statement
                    handler(signum, None)

    sys.setprofile(at_its_end)
    return True
