"""A Ctrl-C while the command is still loading exits quietly with 130, not with a traceback.

Importing the package and its command modules takes a few hundred milliseconds, during which
Python's default SIGINT handler would raise ``KeyboardInterrupt`` inside some import and print a
traceback (exit -2). When the package is imported to run the command (``python -m
totask_manifest`` or the ``totask-manifest`` script), this module, imported first, installs a
handler that writes one line and exits 130; ``cli.main`` puts Python's own handler back once the
command line is parsed, where every command catches ``KeyboardInterrupt`` itself. Imported as a
library, the package leaves signal handling alone. What remains is the interpreter's own start
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
    """Nothing was written yet: say so in one line and leave as a shell reports Ctrl-C."""
    os.write(2, _LINE)
    os._exit(128 + signum)


def restore_default() -> None:
    """Python's own SIGINT handler again, if this module's is installed (``cli.main``)."""
    if _signal.getsignal(_signal.SIGINT) is interrupted_while_starting:
        _signal.signal(_signal.SIGINT, _signal.default_int_handler)


if _ARGS is not None and _signal.getsignal(_signal.SIGINT) is _signal.default_int_handler:
    _signal.signal(_signal.SIGINT, interrupted_while_starting)
