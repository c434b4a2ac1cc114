"""Which actors work: one that fails every line it gets the same way, while the others label
those lines, is taken out of the pool.

A model that fails at run time on one worker only (that node's GPU broken, a package or a file
the model reads missing there) fails every line of every batch it gets with one configuration
rule (``model-error``, ``storage-package-missing``, ``connection-error``...). With another actor
labeling its batches, the job's fail-fast rule (``failure_rules.SystematicFailure``: the first
lines all failed the same way) never sees such lines in a row, and half a job of millions of
lines would be failed line by line. So the driver does not record such a batch from one actor
while another can take it: it runs it there (``Batch.doubted``). When the other labels it, the
failure was the first actor's own (a strike); after ``STRIKES`` batches in a row the actor is
taken out and its batches go to the others. When the other fails the batch the same way, the
data (or the job's configuration) is at fault: that answer is recorded, as on one worker. The
job fails when the last actor left fails a batch the way those taken out did, unless the run
keeps going (``--keep-going``: its failures are final, as on the local engine).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from .._failure_rules import CONFIGURATION_RULES
from .._fetch import scrub
from .._outcomes import Failed, Outcome

#: batches in a row an actor failed alone (another actor labeled them) before it is taken out
STRIKES = 3
#: configuration rules that the line and the job's options decide alone, the same on every
#: worker: a batch that failed with one is recorded as it is, not run again elsewhere (a block of
#: lines of another kind, without the URL key, is data, and ran twice). A rule that something on
#: the worker can cause (its credentials, packages, network, files, model) is still doubted.
LINE_RULES = frozenset({
    "url-key-missing", "image-key-missing", "target-specification-missing", "synapse-files-missing",
    "allow-root-missing", "host-not-allowed",
})


def systematic_rule(outcomes: Sequence[Outcome]) -> str | None:
    """The configuration rule every line of a batch failed with, when they all failed with the
    same one that a worker can cause (``CONFIGURATION_RULES`` but not ``LINE_RULES``); None
    otherwise: a data rule (``http-404``, ``image-unreadable``...) is the data's on any worker."""
    rules = {o.rule if isinstance(o, Failed) else None for o in outcomes}
    rule = rules.pop() if len(rules) == 1 else None
    return rule if rule in CONFIGURATION_RULES and rule not in LINE_RULES else None


def reason_of(outcomes: Sequence[Outcome]) -> str:
    """The first line's failure reason, short."""
    first = outcomes[0]
    return scrub(first.reason, 200) if isinstance(first, Failed) else ""


def named(actor: int, where: dict[str, Any] | None) -> str:
    """``actor 1 (node 10.0.0.5, pid 4242)``: what a user needs to find the worker."""
    if not where:
        return f"actor {actor}"
    return f"actor {actor} (node {where.get('ip') or where.get('node')}, pid {where.get('pid')})"


class Health:
    """Per actor: batches in a row it failed alone; the actors taken out, and why."""

    def __init__(self, actors: int) -> None:
        self.strikes = [0] * actors
        self.out: dict[int, str] = {}

    def works(self, actor: int) -> None:
        self.strikes[actor] = 0

    def strike(self, actor: int, why: str) -> bool:
        """``actor`` failed a batch that another labeled; True when that takes it out."""
        self.strikes[actor] += 1
        if self.strikes[actor] < STRIKES or actor in self.out:
            return False
        self.out[actor] = why
        return True

    def none_works(self, last: str, span: str, why: str, where: Callable[[int], dict[str, Any] | None]) -> str:
        """The job's error when ``last``, the last actor left, failed every line of ``span`` too."""
        gone = "; ".join(f"{named(i, where(i))}: {reason}" for i, reason in sorted(self.out.items()))
        return (f"ray: no actor labels any line: {last} failed every line of {span} with {why}, and the actors "
                f"taken out before failed every batch of theirs ({gone}); the job stopped after its last "
                "checkpoint part: fix the workers, then run `totask-manifest resume`")


__all__ = ["LINE_RULES", "STRIKES", "Health", "named", "reason_of", "systematic_rule"]
