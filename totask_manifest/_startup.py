"""A Ctrl-C, SIGTERM or SIGHUP while the command is still loading exits quietly with 130, 143 or
129, not with a traceback, nor killed by the signal without a word.

Importing the package, its command module and what that command reads with (numpy, polars,
msgspec, jsonschema_rs: up to seconds on a loaded machine) runs before any ``try`` of the command
can catch anything: Python's default SIGINT handler raised ``KeyboardInterrupt`` inside some import
and printed a traceback (exit -2), and SIGTERM's and SIGHUP's default dispositions ended the
process by the signal itself (returncode -15, nothing said). When the package is imported to run
the command (``python -m totask_manifest`` or the ``totask-manifest`` script), this module,
imported first, installs for the three a handler that writes one line and exits 128 + the
signal's number: nothing was written yet. ``cli.main`` hands them over once the command line is
parsed (``_cli._terminate.stops_raised``: each command cleans up through ``KeyboardInterrupt``),
and puts back the ones the process started with when it returns (``restore_default``). A signal
ignored when the process starts (``nohup``, ``trap '' TERM``, ``cmd &``) stays ignored. Imported as
a library, the package leaves signal handling alone. What remains is the interpreter's own start
(before any line of this package runs), which no package can cover.
"""

from __future__ import annotations

import _signal  # the C module: ``signal`` would import enum and re, widening the window
import os
import sys


def _command_args() -> list[str] | None:
    """The arguments after ``python -m totask_manifest[.x]`` or the console script, while either
    imports the package; None when the package is imported otherwise (as a library)."""
    if sys.argv[:1] == ["-m"]:  # runpy sets argv[0] to the module's file only after the import
        orig = getattr(sys, "orig_argv", [])
        if "-m" in orig[:-1] and orig[orig.index("-m") + 1].split(".")[0] == "totask_manifest":
            return orig[orig.index("-m") + 2:]
        return None
    if os.path.basename(sys.argv[0] if sys.argv else "").startswith("totask-manifest"):
        return sys.argv[1:]
    return None


def interrupted_line(args: list[str] | None) -> str:
    """``totask-manifest annotate: interrupted``, naming the command where ``args`` hold one (the
    first that is no option: the CLI's own options take no value), as every other such line does."""
    command = next((a for a in args or () if not a.startswith("-")), "")
    named = command.isascii() and command.replace("-", "").isalpha() and command.islower()
    return f"totask-manifest {command}: interrupted" if named else "totask-manifest: interrupted"


_ARGS = _command_args()
_LINE = (interrupted_line(_ARGS) + "\n").encode()  # made now: the handler runs while anything is half imported


def interrupted_while_starting(signum: int, frame: object) -> None:
    """Nothing was written yet: say so in one line and leave as a shell reports the signal."""
    os.write(2, _LINE)
    os._exit(128 + signum)


#: the handlers this module replaced: SIGINT's (Python's own) and SIGTERM's and SIGHUP's (the default)
_REPLACED: dict[int, object] = {}


def restore_default() -> None:
    """The handlers the process started with, where this module's is still installed (``cli.main``
    returning: ``main`` called from Python in a process that goes on). Only the main thread may
    set a handler; this module's is installed there alone."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        return
    for signum, handler in _REPLACED.items():
        if _signal.getsignal(signum) is interrupted_while_starting:
            _signal.signal(signum, handler)


def _install() -> None:
    """This module's handler for each stop signal at its start-up disposition (not one ignored,
    nor one a caller set: theirs stays theirs). The numbers are ``_signal``'s: ``signal.STOPS``
    would import enum."""
    starting = {_signal.SIGINT: _signal.default_int_handler, _signal.SIGTERM: _signal.SIG_DFL}
    if hasattr(_signal, "SIGHUP"):
        starting[_signal.SIGHUP] = _signal.SIG_DFL
    for signum, at_start in starting.items():
        if _signal.getsignal(signum) is at_start:
            _REPLACED[signum] = _signal.signal(signum, interrupted_while_starting)


if _ARGS is not None:
    _install()
