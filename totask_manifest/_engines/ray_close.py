"""The end of a Ray run: every actor closes its annotator, and the driver hears how it went.

The local engine calls ``close()`` and waits for it, however long it takes: a ``close()`` that
raises (or a thread of the annotator's that raised after its last outcome) fails the job
(``contract.closing``). The driver cannot wait for ever on actors (one may be on a node that is
gone), so it used to wait 5 s and end them: a ``close()`` slower than that, which raised or
never finished (a model freed, files flushed), was not heard at all, and the job said COMPLETED.

Now the wait is ``close_seconds`` (``RayOptions``, default 60 s). An actor whose ``close()`` has
not answered by then is asked where it is (the ``where`` call, its own concurrency group, which a
busy actor answers): one that answers is running its ``close()`` still, and that is the job's
error (one line, naming the actor and the option to raise), since what ``close()`` was to do may
not be done; one that does not answer either has no annotator left to close (its process died,
its node is gone) and is a warning, as it always was. After a hard stop (a second Ctrl-C) or a
run that broke, the wait is 5 s at most, and what is not heard is a warning: the job already
does not say COMPLETED.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from typing import Any

import ray

from .ray_health import named

log = logging.getLogger("totask_manifest")

#: the longest wait for the actors' close() when the run broke or was stopped hard
BROKEN_RUN_CLOSE_SECONDS = 5.0
#: how long an actor whose close() is late has to answer where it is
WHERE_SECONDS = 5.0


def close_actors(actors: Sequence[Any], method: str, seconds: float, *, ended: bool,
                 hurry: bool = False) -> list[tuple[str, str]]:
    """Close every actor's annotator and end the actors. ``ended``: the run went to its end;
    ``hurry``: a hard stop, leave soon. Gives (one line, what to fix) for each actor whose
    ``close()`` failed (``AnnotatorActor.close``'s answer) and, after a full wait of ``seconds``,
    for those still there that did not answer; when the run broke, they are warnings instead."""
    patient = ended and not hurry
    wait = seconds if patient else min(seconds, BROKEN_RUN_CLOSE_SECONDS)
    closing = [a.close.remote() for a in actors]
    ready, _ = ray.wait(closing, num_returns=len(closing), timeout=wait) if closing else ([], [])
    done = set(ready)
    failed: list[tuple[str, str]] = []
    for ref in ready:
        with contextlib.suppress(ray.exceptions.RayError):
            failed.extend(e for e in [ray.get(ref)] if e)
    late = [i for i, ref in enumerate(closing) if ref not in done]
    if late:
        slow = _still_there(actors, late)
        if slow:
            who = "method plugin" if ":" in method else "method"
            line = (f"{who} {method!r}: close() did not return within {wait:g} s on "
                    f"{', '.join(named(i, where) for i, where in slow)}; what it was to do may not be done "
                    "(--ray-close-seconds, Python close_seconds, waits longer)")
            if patient:
                failed.append((line, "close()"))
            else:
                log.warning("%s", line)
        if len(slow) < len(late):
            log.warning("ray: %d actor(s) answered neither close() nor where they are (their process or node is "
                        "gone): no annotator of theirs is left to close", len(late) - len(slow))
    for actor in actors:
        with contextlib.suppress(Exception):
            ray.kill(actor)
    if not ended:  # the run's own error stands, as on the local engine (``contract.closing``)
        for error, _fixed in failed:
            log.warning("%s as well, after the error below", error)
        return []
    return failed


def _still_there(actors: Sequence[Any], late: list[int]) -> list[tuple[int, dict[str, Any]]]:
    """The actors of ``late`` that answer where they are (node, pid): there, their close() running."""
    refs = {i: actors[i].where.remote() for i in late}
    ready, _ = ray.wait(list(refs.values()), num_returns=len(refs), timeout=WHERE_SECONDS)
    there = []
    for i, ref in refs.items():
        if ref in ready:
            with contextlib.suppress(ray.exceptions.RayError):
                there.append((i, ray.get(ref)))
    return there


__all__ = ["BROKEN_RUN_CLOSE_SECONDS", "close_actors"]
