"""The annotator contract (docs/plugins.md) as both engines check it: the local engine in its
own process, the Ray engine inside each actor. One function per rule, so a plugin that breaks a
rule is named in the same line whichever engine runs it.

* ``checked_pair``, ``second_outcome``, ``no_outcome``: ``annotate`` yields one
  ``(item, outcome)`` pair for each item it was given. A bare outcome failed the job with the
  engine's own traceback (``cannot unpack``); a second outcome for one line was taken without a
  word (on Ray, dropped); an item left without one was "N selected line(s) neither labeled nor
  failed", naming neither the method nor the line.
* ``closing``: the annotator's ``close()``, run once it is done. One that raised replaced the
  error the run met (Python's ``with``), and one that raised after every line was labeled failed
  the job with no word of what was kept (on Ray, it was not heard at all).
* ``late_thread_error``: what a thread of the annotator's raised after its last outcome (as
  ``close()`` ran) is the same kind of failure: the run's work is recorded, what the thread was
  to do may not be done. It was a warning line and COMPLETED (on Ray, in the worker's log only).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from typing import Any

from .._errors import JobError, RaisedInThread, counted
from .._jobs.plugin_errors import plugin_error_text, plugin_frame, said
from .._outcomes import Item, Outcome

__all__ = ["CloseFailed", "checked_pair", "close_error", "close_failed", "closing", "late_thread_error", "no_outcome",
           "second_outcome"]

log = logging.getLogger("totask_manifest")


def checked_pair(method: str, pair: object) -> tuple[Item, Outcome]:
    """``pair`` as ``annotate`` must yield it: a tuple of an ``Item`` and its outcome (whose type
    the recorder checks, naming the line)."""
    if not (isinstance(pair, tuple) and len(pair) == 2 and isinstance(pair[0], Item)):
        what = (f"a {type(pair).__name__}" if not isinstance(pair, tuple) else f"a tuple of {len(pair)}"
                if len(pair) != 2 else f"a pair whose first value is a {type(pair[0]).__name__}, not an Item")
        raise JobError(f"method {method!r}: annotate yielded {what}; it yields (item, outcome) pairs, one for "
                       "each item it was given")
    return pair  # type: ignore[return-value]


def second_outcome(method: str, item: Item) -> JobError:
    """What an outcome for an item ``annotate`` was not given, or has answered already, fails with."""
    return JobError(f"method {method!r}: annotate yielded a second outcome for {item.display} (or one for an "
                    "item it was not given); it yields one (item, outcome) pair for each item it was given")


def no_outcome(method: str, item: Item, waiting: int) -> JobError:
    """``annotate`` ended with ``item`` (and ``waiting`` lines in all, from it on) unanswered."""
    return JobError(f"method {method!r}: annotate ended without an outcome for {item.display} ({counted(waiting, 'line')} "
                    "from it on not recorded); it yields one (item, outcome) pair for each item it was given")


class CloseFailed(JobError):
    """The annotator's ``close()`` raised once its run was over: every outcome it gave is recorded
    (the job's checkpoint and output manifest hold them), but what ``close()`` was to do (release a
    model, flush what it writes) may not be done, so the job does not say COMPLETED. ``resume``
    finishes it without labeling a line again: with nothing left it does not build the annotator."""


def close_error(method: str, exc: BaseException) -> str:
    """One line: the method, what ``close()`` raised and where in the plugin's files."""
    where = plugin_frame(method, exc)
    who = f"method plugin {method!r}" if ":" in method else f"method {method!r}"
    return f"{who}: close() raised {said(exc)}" + (f" ({where})" if where else "")


def late_thread_error(method: str, error: RaisedInThread) -> str:
    """One line: the method, what its thread raised and where in the plugin's files (the local
    engine's line for a thread's error met mid-run)."""
    return plugin_error_text(method, error) or f"method {method!r} raised {said(error)}"


@contextlib.contextmanager
def closing(annotator: Any, method: str, late: Callable[[], RaisedInThread | None] = lambda: None) -> Iterator[Any]:
    """``annotator`` for the block, closed after it. When the block raised, a ``close()`` that
    raises too is a warning line and the block's error stands; otherwise it is ``CloseFailed``,
    and so is what a thread of the annotator's raised after the last outcome (``late``, asked
    once ``close()`` has run: a thread it joins there counts)."""
    try:
        yield annotator
    except BaseException:
        try:
            annotator.close()
        except Exception as exc:
            log.warning("%s as well, after the error below", close_error(method, exc))  # as ray.py's
        raise
    try:
        annotator.close()
    except Exception as exc:
        raise close_failed(close_error(method, exc)) from None
    error = late()
    if error is not None:
        raise close_failed(late_thread_error(method, error), fixed="that thread") from None


def close_failed(error: str, fixed: str = "close()") -> CloseFailed:
    """The job's error for ``close_error``'s line (or ``late_thread_error``'s): what is kept, and what to do."""
    return CloseFailed(f"{error} after its last outcome: the lines it labeled are recorded and in the output "
                       f"manifest; run resume once {fixed} is fixed (no line is labeled again)")
