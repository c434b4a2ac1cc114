"""What a method plugin's own code raised, in the one line a job's error holds.

``execute`` (the local engine's errors), the Ray engine's actors (an error met in a worker
process, whose traceback does not travel back to the driver) and ``_api_checks`` (a plugin's
``check``) name a plugin's exception the same way: its type and message, with the environment's
credentials masked, and the last place in the plugin's own files it passed
(``/src/mypkg/shapes.py line 40, in annotate_batch``).
"""

from __future__ import annotations

import contextlib
import sys
import traceback
from collections.abc import Iterator
from pathlib import Path

from .._credentials import hide_env_credentials
from .._errors import JobError, RaisedInThread, TotaskError, UsageError
from .._outcomes import Item
from .._signals import OwnInterrupt

__all__ = ["not_an_outcome", "plugin_error_text", "plugin_frame", "plugin_raised_as_usage", "said"]


def plugin_frame(method: str, exc: BaseException) -> str | None:
    """``mod.py line 51, in annotate_batch``: the last place in the plugin ``method``'s own
    package (``package.module:Class``) that ``exc`` passed; None for a built-in method, or where
    the plugin's code is not on the way (the job's own code broke: its traceback is logged)."""
    if ":" not in method:
        return None
    top = sys.modules.get(method.partition(":")[0].split(".")[0])
    where = getattr(top, "__file__", None)
    if where is None:
        return None
    root = Path(where).parent if Path(where).name == "__init__.py" else Path(where)
    elsewhere = isinstance(exc, (OwnInterrupt, RaisedInThread)) and exc.__cause__ is not None
    raised = exc.__cause__ if elsewhere else exc
    frames = [f for f in traceback.extract_tb(raised.__traceback__) if Path(f.filename).is_relative_to(root)]
    if not frames:
        return None
    return f"{frames[-1].filename} line {frames[-1].lineno}, in {frames[-1].name}"


def said(exc: BaseException) -> str:
    """``RuntimeError: no model loaded`` (a thread's or an own interrupt's says its own), with the
    environment's credentials masked: a plugin's message may quote what it read from there."""
    text = str(exc) if isinstance(exc, (OwnInterrupt, RaisedInThread)) else f"{type(exc).__name__}: {exc}"
    return hide_env_credentials(text)


def plugin_error_text(method: str, exc: BaseException) -> str | None:
    """``method plugin 'pkg.mod:Class' raised KeyError: 'x' (/src/pkg/mod.py line 40, in
    annotate_batch)``; None where the plugin's own code is not on ``exc``'s way."""
    where = plugin_frame(method, exc)
    if where is None:
        return None
    return f"method plugin {method!r} raised {said(exc)} ({where})"


@contextlib.contextmanager
def plugin_raised_as_usage(method: str, what: str) -> Iterator[None]:
    """A plugin's code run on the user's options (its ``Options`` class being built, its ``check``)
    that breaks rather than raising ``UsageError``: one line naming the plugin, the exception and
    where (``method plugin 'm:C': its options raised RuntimeError: x (/src/m.py line 9, in
    __post_init__)``), exit 2 as the options are the user's input; a traceback is for its author.
    A built-in method's error goes on as it is (the project's own bug)."""
    try:
        yield
    except TotaskError:
        raise
    except Exception as exc:
        if ":" not in method:
            raise
        where = plugin_frame(method, exc)
        raise UsageError(f"method plugin {method!r}: {what} raised {said(exc)}"
                         + (f" ({where})" if where else "")) from None


def not_an_outcome(method: str, item: Item, outcome: object) -> JobError:
    """What an annotator's answer for ``item`` that is not an outcome fails the job with: the
    recorder's check (local) and the Ray actors' (where the recorder never sees it) say the same."""
    import reprlib

    return JobError(f"method {method!r} gave {type(outcome).__name__} {reprlib.repr(outcome)} as "
                    f"{item.display}'s outcome; an outcome is Labeled, Failed or Routed")
