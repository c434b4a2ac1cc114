"""What the tests of the "backend down" rule (``Breaker``) expect a run stopped by its rule B to say."""

from __future__ import annotations

import re


def write_outage_stop(pid: int) -> re.Pattern[str]:
    """The stop of writes failing while reads are answered (``Breaker``'s B): ``FRESH_OUTAGE`` writes or
    more in a row failed, none answered since each was sent; the count is its group 1. It says what it
    knows and no more: no "backend is unavailable", the check (the project's GET) having been answered."""
    return re.compile(rf"(\d+) writes in a row failed \(last: Synapse answered 5\d\d .*\), none answered since "
                      rf"each was sent, though Synapse answered reads \(GET /projects/{pid}/\): it may be refusing "
                      rf"writes$")


def kept(summary: str, made: int) -> bool:
    """Whether an apply summary says its ``made`` writes are kept (B's stop: nothing rolled back)."""
    return f"; the {made} write{'' if made == 1 else 's'} made {'is' if made == 1 else 'are'} kept: " in summary
