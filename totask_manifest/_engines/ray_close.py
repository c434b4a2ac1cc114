"""The end of a Ray run: every actor closes its annotator, and the driver hears how it went.

The local engine calls ``close()`` and waits for it, however long it takes: a ``close()`` that
raises (or a thread of the annotator's that raised after its last outcome) fails the job
(``contract.closing``). The driver cannot wait for ever on actors (one may be on a node that is
gone), so it used to wait 5 s and end them: a ``close()`` slower than that, which raised or
never finished (a model freed, files flushed), was not heard at all, and the job said COMPLETED.

Now the wait is ``close_seconds`` (``RayOptions``, default 60 s). With its ``close()`` each actor
is asked where it is (the ``where`` call, in its own concurrency group, which an actor busy
closing answers at once). One that has answered neither within ``WHERE_SECONDS`` has no
annotator left to close (its process died, its node is gone): a warning, as before, and the end
of the run does not wait longer for it. One that answered where it is but whose ``close()`` is
still running after ``close_seconds`` is the job's error (one line naming the actor and the
option to raise): what ``close()`` was to do may not be done. After a hard stop (a second
Ctrl-C) or a run that broke, the wait is 5 s at most, and what is not heard is a warning: the
job does not say COMPLETED anyway.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Sequence
from typing import Any

import ray

from .._errors import counted
from .ray_health import named

log = logging.getLogger("totask_manifest")

#: the longest wait for the actors' close() when the run broke or was stopped hard
BROKEN_RUN_CLOSE_SECONDS = 5.0
#: how long an actor has to answer where it is before it is taken for gone
WHERE_SECONDS = 5.0


def close_actors(actors: Sequence[Any], method: str, seconds: float, *, ended: bool,
                 hurry: bool = False) -> list[tuple[str, str]]:
    """Close every actor's annotator and end the actors. ``ended``: the run went to its end;
    ``hurry``: a hard stop, leave soon. Gives (one line, what to fix) for each actor whose
    ``close()`` failed (``AnnotatorActor.close``'s answer) and, after a full wait of ``seconds``,
    for those still there that did not answer; when the run broke, they are warnings instead."""
    patient = ended and not hurry
    wait = seconds if patient else min(seconds, BROKEN_RUN_CLOSE_SECONDS)
    began = time.monotonic()
    closing = [a.close.remote() for a in actors]
    # asked at once, so an actor that is gone (its node lost) costs WHERE_SECONDS, not ``seconds``
    there = [a.where.remote() for a in actors]
    _wait(closing, min(wait, WHERE_SECONDS))
    answered = _answered(there)
    unanswered = [i for i, ref in enumerate(closing) if not _wait([ref], 0)]
    late = [i for i in unanswered if i in answered]
    gone = [i for i in unanswered if i not in answered]
    if late:
        _wait([closing[i] for i in late], max(0.0, wait - (time.monotonic() - began)))
        late = [i for i in late if not _wait([closing[i]], 0)]
    failed: list[tuple[str, str]] = []
    for ref in closing:
        if _wait([ref], 0):
            with contextlib.suppress(ray.exceptions.RayError):
                failed.extend(e for e in [ray.get(ref)] if e)
    if late:
        who = "method plugin" if ":" in method else "method"
        line = (f"{who} {method!r}: close() did not return within {wait:g} s on "
                f"{', '.join(named(i, answered[i]) for i in late)}; what it was to do may not be done "
                "(--ray-close-seconds, Python close_seconds, waits longer)")
        if patient:
            failed.append((line, "close()"))
        else:
            log.warning("%s", line)
    if gone:
        log.warning("ray: %s answered neither close() nor where they are within %g s (their process or "
                    "node is gone): no annotator of theirs is left to close", counted(len(gone), "actor"),
                    min(wait, WHERE_SECONDS))
    for actor in actors:
        with contextlib.suppress(Exception):
            ray.kill(actor)
    if not ended:  # the run's own error stands, as on the local engine (``contract.closing``)
        for error, _fixed in failed:
            log.warning("%s as well, after the error below", error)
        return []
    return failed


def _wait(refs: list[Any], timeout: float) -> bool:
    """Whether every call of ``refs`` has answered, waiting up to ``timeout`` seconds."""
    if not refs:
        return True
    ready, _ = ray.wait(refs, num_returns=len(refs), timeout=timeout)
    return len(ready) == len(refs)


def _answered(refs: list[Any]) -> dict[int, dict[str, Any]]:
    """Actor index -> where it is (node, pid), for those whose ``where`` call has answered."""
    out = {}
    for i, ref in enumerate(refs):
        if _wait([ref], 0):
            with contextlib.suppress(ray.exceptions.RayError):
                out[i] = ray.get(ref)
    return out


__all__ = ["BROKEN_RUN_CLOSE_SECONDS", "close_actors"]
