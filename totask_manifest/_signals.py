"""SIGINT, SIGTERM and SIGHUP (``STOPS``) noted instead of raised: for a block that must not be
cut (``held``), and once a command's work is done (``done``).

``held``: a YOLO export's moves, a job folder's lease given back. A Ctrl-C raised there left a
mixed folder, or a lease file that still named this process (another host waited for its timeout).

``done``: a command whose work is done (a job's output manifest committed and job.json saved with
its final status; ``convert``'s output in place; ``apply``'s run over) still gives its lease back
and prints its summary. A ``KeyboardInterrupt`` raised there cut the summary short, or said only
"interrupted" of a COMPLETED job; raised after the command's own ``except``, or while the
interpreter exited, it killed the process by SIGINT without a word, or printed a traceback. The
CLI asks for such signals to be noted (``after_work``); the library marks the moment its work is
done; the CLI then prints the summary whole, says in one line that the signal came after the work
was done, and exits 128 + its number (README, *Command reference*). Only a command whose library
call is all its work asks (``run`` goes on to ``apply`` after its job: it does not); each command's
own end is marked by the CLI (``ended``). Used as a library, the package marks nothing: a caller's
Ctrl-C stays the caller's.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import asyncio

#: the signals that stop a command as Ctrl-C does: SIGINT, SIGTERM (``kill``, ``timeout``, systemd)
#: and, where the system has it, SIGHUP (the terminal closed: an ssh session dropped)
STOPS: tuple[signal.Signals, ...] = (signal.SIGINT, signal.SIGTERM,
                                     *((signal.SIGHUP,) if hasattr(signal, "SIGHUP") else ()))


@contextlib.contextmanager
def held() -> Iterator[None]:
    """The stop signals (``STOPS``) held back on the main thread: noted by handlers of their own, then
    raised again, to the handlers they had, when the block ends.

    Not a blocked signal mask: ``pthread_sigmask`` blocks the calling thread alone, and with any
    other thread alive (fsspec's I/O thread for a remote input, a write-behind sync) the kernel
    hands the process's signal to that one; CPython's C handler still raises ``KeyboardInterrupt``
    in the main thread mid-block, and SIGTERM's (SIGHUP's) default disposition ends the process at once.

    A second signal is not held: the handlers are put back and it is raised at once. The block
    may wait on a store that stalls (a lease given back over the network), and Ctrl-C is never
    powerless: pressed again, it ends the wait, as a job's second signal leaves at once."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []

    def note(signum: int, _frame: object) -> None:
        caught.append(signum)
        if len(caught) > 1:
            for held_signum, handler in previous.items():
                signal.signal(held_signum, handler)
            previous.clear()
            raised = list(dict.fromkeys(caught))
            caught.clear()
            for each in raised:  # the first too: the second may be one the caller ignores
                signal.raise_signal(each)

    previous: dict[int, Any] = {}
    try:
        for signum in STOPS:
            if signal.getsignal(signum) is not None:  # None: set outside Python, which could not be put back
                previous[signum] = signal.signal(signum, note)
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        for signum in dict.fromkeys(caught):
            signal.raise_signal(signum)


def new_event_loop() -> asyncio.AbstractEventLoop:
    """``asyncio.new_event_loop()`` with the stop signals held (``held``). A Ctrl-C raised inside the
    loop's constructor (its selector or self-pipe being made) left a half-built loop whose
    ``__del__`` printed ``Exception ignored in: <function BaseEventLoop.__del__>`` and a traceback
    after the command's one-line ``interrupted``; held, the signal is raised once the loop is
    whole, and the loop is closed before it propagates."""
    import asyncio  # on use: the CLI starts without it

    loop = None
    try:
        with held():
            loop = asyncio.new_event_loop()
    except BaseException:
        if loop is not None:
            loop.close()
        raise
    return loop


def close_event_loop(loop: asyncio.AbstractEventLoop) -> None:
    """``loop.close()`` with the stop signals held: a Ctrl-C raised inside it (its self-pipe closed,
    not yet marked closed) left a loop whose ``__del__`` closed it again and printed
    ``Exception ignored in: <function BaseEventLoop.__del__>`` (``'NoneType' object has no attribute
    'fileno'``). Closing is quick (the default executor is shut down without waiting)."""
    with held():
        loop.close()


@contextlib.contextmanager
def noting_stops() -> Iterator[list[int]]:
    """A ``KeyboardInterrupt`` the block's own code raises (a model's forward, a plugin's hook) told
    from a signal's: where a stop signal's handler on the main thread raises one (Python's for
    SIGINT; the CLI's ``Terminated`` for SIGTERM and SIGHUP before a job handles them), it is noted
    first, in the list yielded. Elsewhere (a job's handler, which never raises one; another
    thread) no signal raises one. So a ``KeyboardInterrupt`` with the list empty is the code's own."""
    noted: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield noted
        return
    previous: dict[int, Any] = {}

    def note(signum: int, frame: Any) -> None:
        try:
            previous[signum](signum, frame)
        except KeyboardInterrupt:
            noted.append(signum)
            raise

    for signum in STOPS:
        if callable(signal.getsignal(signum)):  # a Python handler (not SIG_DFL, SIG_IGN, or None: not Python's)
            previous[signum] = signal.signal(signum, note)
    try:
        yield noted
    finally:
        for signum, handler in previous.items():
            if signal.getsignal(signum) is note:
                signal.signal(signum, handler)


class OwnInterrupt(Exception):
    """A ``KeyboardInterrupt`` that code raised itself, no signal's (``own_interrupts``): an error
    of that code's, raised from it. Taken for Ctrl-C, it stopped a job STOPPED, and resume met it again."""

    def __str__(self) -> str:
        cause = self.__cause__
        return f"KeyboardInterrupt: {cause}" if cause is not None and str(cause) else "KeyboardInterrupt"


@contextlib.contextmanager
def own_interrupts(as_error: type[OwnInterrupt] = OwnInterrupt) -> Iterator[None]:
    """The block's own ``KeyboardInterrupt`` raised as ``as_error``; a signal's raised as it is."""
    with noting_stops() as noted:
        try:
            yield
        except KeyboardInterrupt as exc:
            if noted:
                raise
            raise as_error() from exc


class _AfterWork:
    """The CLI's request (``wanted``; ``marks``: the library's ``done`` counts), the moment the
    work was done (``what``), the signals noted since (``noted``), and the handlers the command
    started with (put back by ``after_work``)."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.wanted = False
        self.marks = False
        self.what: str | None = None
        self.noted: list[int] = []
        self.exiting = False
        self.started_with: dict[int, Any] = {}


_STATE = _AfterWork()


def _note(signum: int, _frame: object) -> None:
    """A signal once the work is done: noted. One more while the interpreter exits (a thread or
    an exit hook stuck) ends the process at once, so Ctrl-C is not powerless while the hooks run
    (during the module teardown after them the stop signals are ignored: ``_ignored_past_exit_hooks``)."""
    _STATE.noted.append(signum)
    if _STATE.exiting and _STATE.noted.count(signum) > 1:
        os._exit(128 + signum)


def _ignored_past_exit_hooks() -> None:
    """The last ``atexit`` callback (registered as this module is imported, before any the command's
    libraries register): where the CLI notes the stop signals while the interpreter exits, they
    are ignored from here. Past the ``atexit`` callbacks, Python puts every signal whose handler is
    a Python function (``_note``) back to its default disposition, then tears its modules down
    (tens of milliseconds with numpy and polars loaded): a Ctrl-C there killed the process by
    SIGINT (returncode -2, SIGTERM -15, SIGHUP -1) without a word, after the command had said
    everything and returned its code (seen as a flaky ``stats`` that exited -2). An ignored signal
    Python leaves ignored. The command's threads are joined and its exit hooks have run by then;
    a teardown that hangs anyway (a C extension's destructor) ends only with SIGKILL, as the
    README says."""
    if not _STATE.exiting or threading.current_thread() is not threading.main_thread():
        return
    for signum in STOPS:
        if signal.getsignal(signum) is _note:
            signal.signal(signum, signal.SIG_IGN)


atexit.register(_ignored_past_exit_hooks)


def done(what: str) -> None:
    """The library's work is done (``what``: "the job COMPLETED", said in the CLI's line): from
    here, where the CLI asked (``after_work(marks=True)``), SIGINT, SIGTERM and SIGHUP are noted
    on the main thread, not raised. A signal ignored stays ignored. The first call's ``what`` is kept."""
    if _STATE.marks:
        ended(what)


def ended(what: str) -> None:
    """The command's handler returned (``_cli.main``): ``done`` for every command the CLI runs."""
    if not _STATE.wanted or threading.current_thread() is not threading.main_thread():
        return
    if _STATE.what is None:
        _STATE.what = what
    for signum in STOPS:
        if signal.getsignal(signum) not in (signal.SIG_IGN, _note, None):  # None: outside Python's, left alone
            signal.signal(signum, _note)


def noted() -> tuple[int | None, str | None]:
    """(the first signal noted once the work was done, or None; what was done)."""
    return (_STATE.noted[0] if _STATE.noted else None), _STATE.what


@contextlib.contextmanager
def after_work(*, marks: bool, exiting: bool) -> Iterator[None]:
    """The CLI's command runs in the block: signals that come once its work is ``done`` (where
    ``marks``: the library's marks count) or its handler returned (``ended``) are noted. ``exiting`` (the process ends after the block: the console script, ``python -m``):
    the noting goes on while the interpreter exits, so a Ctrl-C then kills nothing mid-exit and
    prints no traceback; the exit code is the command's (past the exit hooks they are ignored:
    ``_ignored_past_exit_hooks``). Otherwise (``main`` called in a
    process that goes on) the handlers the command started with are put back."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _STATE.reset()
    _STATE.wanted, _STATE.marks = True, marks
    _STATE.started_with = {signum: signal.getsignal(signum) for signum in STOPS}
    try:
        yield
    finally:
        if exiting:
            ended("its work was done")  # its exit, from here: every signal noted
            _STATE.exiting = True
        else:
            _STATE.wanted = False
            for signum, handler in _STATE.started_with.items():
                if signal.getsignal(signum) is _note:
                    signal.signal(signum, handler)  # never None: ``ended`` leaves such a handler alone
