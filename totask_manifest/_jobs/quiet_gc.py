"""Fewer garbage collections while a job runs.

A file job allocates a few hundred container objects per line (the parsed document, the label,
the request's objects) and frees nearly all of them at once; with Python's default threshold
(700) that is a young-generation collection every few lines, and every tenth of those grows
into one that walks everything alive, the interpreter's own startup heap included. Measured on
the file job benchmark, collection took about 70 us of CPU a line out of 500-800.

While the job runs, the objects alive at its start are moved out of the collector's sight
(``gc.freeze``: they are not freed while frozen, and a job's start holds no garbage worth
collecting) and the young generation's threshold is raised. Cycles are still collected, less
often; the previous settings come back when the job ends. Nested or concurrent jobs in one
process share one such period.
"""

from __future__ import annotations

import contextlib
import gc
import threading
from collections.abc import Iterator

#: the young generation's threshold while a job runs (Python's default is 700)
THRESHOLD = 20_000

_lock = threading.Lock()
_depth = 0
_saved: tuple[tuple[int, int, int], bool] | None = None


@contextlib.contextmanager
def fewer_collections(threshold: int = THRESHOLD) -> Iterator[None]:
    """Run the body with the startup heap frozen and a higher young-generation threshold."""
    global _depth, _saved
    with _lock:
        if _depth == 0:
            old = gc.get_threshold()
            froze = gc.get_freeze_count() == 0  # objects frozen by someone else stay theirs to thaw
            if froze:
                gc.freeze()
            if old[0]:  # a threshold of 0 (collection off) stays off
                gc.set_threshold(max(threshold, old[0]), old[1], old[2])
            _saved = (old, froze)
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _saved is not None:
                old, froze = _saved
                _saved = None
                gc.set_threshold(*old)
                if froze:
                    gc.unfreeze()
