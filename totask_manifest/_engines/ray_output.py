"""What Ray prints on the driver's terminal: the job's own lines, not the workers' dumps.

A worker that crashes (a segfault in a native decoder or a model) prints its native stack and a
Python dump, and Ray forwards every worker's output to the driver's terminal; its raylet then
publishes ``A worker died or was killed ...`` (a paragraph of possible causes) and the driver
prints it on stdout, between the job's own lines. What matters already reaches the job through
the driver: the batch lost with its worker (a warning), a line that keeps killing it (that
line's failure, rule ``worker-crashed``), a worker taken out (by name). So the workers' output
stays in Ray's log files on each node (``log_to_driver``), and the raylet's errors become one
line of the job's log each (``raylet_errors_logged``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
from collections.abc import Iterator
from typing import Any

from .._fetch import scrub

log = logging.getLogger("totask_manifest")

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
#: the fields of a raylet's worker-death message a user needs to find the worker
_FIELDS = re.compile(r"Worker (IP address|PID|exit type): (\S+)")


def log_to_driver() -> bool:
    """Whether the workers' own output reaches the terminal: not unless Ray's own
    ``RAY_LOG_TO_DRIVER`` says so (``1``/``true``); it is in Ray's log files on each node
    (``/tmp/ray/session_latest/logs/worker-*``, ``ray logs``)."""
    return os.environ.get("RAY_LOG_TO_DRIVER", "").lower() in ("1", "true")


def raylet_line(text: str) -> str:
    """A raylet's error as one line: its first sentence, and the worker's node, pid and exit type."""
    text = _ANSI.sub("", text).strip()
    first = re.split(r"(?<=[.!?])\s", text, maxsplit=1)[0]
    fields = dict((k, v.rstrip(".")) for k, v in _FIELDS.findall(text))
    where = ", ".join(f"{k} {fields[k]}" for k in ("IP address", "PID", "exit type") if k in fields)
    return scrub(f"{first.rstrip('.')} (worker {where})" if where else first, 300)


def error_line(exc: BaseException) -> str:
    """An error of Ray's as one plain line: its type, the first line of its text, no colours."""
    text = _ANSI.sub("", str(exc)).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}"


def refused_restarting(exc: BaseException) -> bool:
    """Whether Ray refused an actor call because the actor was restarting (its process died, the
    new one not up yet: ``ActorUnavailableError: ... The actor is restarting.``): the call never
    ran there. Ray has no type of its own for it; another text reads as a lost call, as before."""
    return type(exc).__name__ == "ActorUnavailableError" and "actor is restarting" in str(exc)


@contextlib.contextmanager
def raylet_errors_logged() -> Iterator[None]:
    """While the job runs, the errors Ray's raylets publish to the driver go to the job's log, one
    line each, instead of Ray's paragraphs on stdout. Ray has no setting for it: its printer
    (``ray._private.worker.print_to_stdstream``, private) is replaced for the run. A Ray version
    without that function runs the job all the same, Ray printing its paragraphs, and the job's
    log says so once, so that a user who sees them knows why. With ``RAY_LOG_TO_DRIVER=1`` Ray
    prints them itself."""
    if log_to_driver():
        yield
        return
    module = sys.modules.get("ray._private.worker")
    original = getattr(module, "print_to_stdstream", None)
    if not callable(original):
        log.warning("ray: this Ray version has no ray._private.worker.print_to_stdstream; Ray's own messages "
                    "(a dead worker's paragraph) print on the terminal as Ray writes them, not as one line each")
        yield
        return

    def printer(data: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(data, dict) and data.get("pid") == "raylet":
            for text in data.get("lines") or []:
                log.warning("ray: %s", raylet_line(str(text)))
            return None
        return original(data, *args, **kwargs)

    module.print_to_stdstream = printer  # type: ignore[union-attr]
    try:
        yield
    finally:
        if getattr(module, "print_to_stdstream", None) is printer:
            module.print_to_stdstream = original  # type: ignore[union-attr]


__all__ = ["error_line", "log_to_driver", "raylet_errors_logged", "raylet_line", "refused_restarting"]
