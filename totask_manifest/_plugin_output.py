"""On the command line, what a plugin prints goes to stderr: stdout holds the command's own output.

A plugin's ``print()`` (in its module, ``check()``, ``__init__``, ``annotate_batch``, a
converter's hook, or a thread it started) went to stdout between the job's summary lines, so a
script reading that summary (or ``run``'s JSON) read the plugin's text too. The CLI installs
``stdout_routed`` for the whole command; the library marks where plugin code runs with
``plugin_code``. While such a block runs (in any thread), and afterwards from the threads started
in it, writes to ``sys.stdout`` go to ``sys.stderr``; and file descriptor 1 points at stderr's, so
a subprocess the plugin runs (``os.system("echo ...")``) or a native library's ``printf`` does
not reach stdout either. Nothing is lost: it is all on stderr, in the order it was written.

Without ``stdout_routed`` (the Python API), ``plugin_code`` changes nothing: a library does not
take its caller's stdout.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import weakref
from collections.abc import Iterator
from typing import Any

__all__ = ["plugin_code", "stdout_routed"]

_lock = threading.Lock()
_depth = 0
_before: set[threading.Thread] = set()
#: threads started while plugin code ran and alive when it ended: their writes go to stderr
_threads: weakref.WeakSet[threading.Thread] = weakref.WeakSet()
_router: _Router | None = None
#: (a copy of stdout's descriptor, its number) while it points at stderr's (None: not redirected)
_saved_fd: tuple[int, int] | None = None


class _Router:
    """``sys.stdout`` while the CLI runs: the command's own writes reach the real stream; a
    plugin's go to ``sys.stderr`` (the one in place at the write: a test's capture sees it)."""

    def __init__(self, real: Any) -> None:
        self.real = real

    def _target(self) -> Any:
        if _depth > 0 or threading.current_thread() in _threads:
            return sys.stderr
        return self.real

    def write(self, text: str) -> int:
        return self._target().write(text)

    def writelines(self, lines: Any) -> None:
        self._target().writelines(lines)

    def flush(self) -> None:
        self.real.flush()
        if self._target() is not self.real:
            sys.stderr.flush()

    @property
    def buffer(self) -> Any:
        """``sys.stdout.buffer.write(...)`` routed as ``write`` is."""
        target = self._target()
        return target.buffer if target is not self.real else self.real.buffer

    def __getattr__(self, name: str) -> Any:  # fileno, encoding, errors, reconfigure, isatty...
        return getattr(self.real, name)


@contextlib.contextmanager
def stdout_routed() -> Iterator[None]:
    """``sys.stdout`` as a ``_Router`` for the block (the CLI's command), put back after it."""
    global _router
    if _router is not None or isinstance(sys.stdout, _Router):
        yield
        return
    router = _Router(sys.stdout)
    sys.stdout = router  # type: ignore[assignment]
    _router = router
    try:
        yield
    finally:
        _router = None
        if sys.stdout is router:
            sys.stdout = router.real


@contextlib.contextmanager
def plugin_code() -> Iterator[None]:
    """Plugin code runs in this block (an import, a check, a job's engine): see the module."""
    global _depth, _before
    with _lock:
        _depth += 1
        if _depth == 1:
            _before = set(threading.enumerate())
            if _router is not None:
                _point_fd_at_stderr()
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                _threads.update(t for t in threading.enumerate() if t not in _before and t.is_alive())
                _before = set()
                _restore_fd()


def _point_fd_at_stderr() -> None:
    """fd 1 a copy of stderr's descriptor (a subprocess's or a native library's writes); the real
    one kept aside. Not where stdout or stderr has no descriptor (a test's capture)."""
    global _saved_fd
    assert _router is not None
    try:
        out, err = _router.real.fileno(), sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):
        return
    if out == err:
        return
    with contextlib.suppress(OSError, ValueError):
        _router.real.flush()
    try:
        saved = os.dup(out)
    except OSError:
        return
    try:
        os.dup2(err, out)
    except OSError:
        os.close(saved)
        return
    _saved_fd = (saved, out)


def _restore_fd() -> None:
    global _saved_fd
    if _saved_fd is None:
        return
    saved, _saved_fd = _saved_fd, None
    with contextlib.suppress(OSError, ValueError):
        sys.stderr.flush()
    try:
        os.dup2(saved[0], saved[1])
    except OSError:
        pass
    finally:
        os.close(saved[0])
