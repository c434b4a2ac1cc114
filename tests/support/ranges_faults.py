"""A ``map_ranges`` function for the Ctrl-C test (``tests/test_ranges_interrupted.py``): in a
worker it leaves half a result in the pool's result pipe (as a worker killed while sending a large
result does), then interrupts the parent; in the parent it waits to be interrupted."""

from __future__ import annotations

import gc
import os
import signal
import struct
import time
from multiprocessing.queues import SimpleQueue


def half_a_result_then_interrupt(url: str, start: int, end: int | None, parent: int) -> None:
    if os.getpid() == parent:
        time.sleep(60)  # the parent's own range: Ctrl-C lands here
        return
    results = next(o for o in gc.get_objects() if isinstance(o, SimpleQueue))  # the pool's result queue
    os.write(results._writer.fileno(), struct.pack("!i", 10_000_000) + b"x" * 100)  # a frame cut short
    os.kill(parent, signal.SIGINT)
    time.sleep(60)  # killed by the parent's clean-up


def lines_replacing_at_the_end(url: str, start: int, end: int | None, size: int, new_body: bytes) -> int:
    """The lines starting in ``[start, end)``; the reader of the file's last range then replaces
    the file with ``new_body`` (as a writer that rewrites it while a command reads it), so the
    ranges read after it come from the new version."""
    from totask_manifest._manifest.ranges import iter_line_batches
    from totask_manifest._storage import AtomicWriter, open_read

    with open_read(url) as f:
        count = sum(len(batch) for batch in iter_line_batches(f, start=start, end=end))
    if end == size:
        with AtomicWriter(url) as out:
            out.write(new_body)
    return count


def replaced_after_the_open(url: str, start: int, end: int | None, size: int, new_body: bytes) -> int:
    """The lines starting in ``[start, end)``; the reader of the file's last range replaces the
    file after opening it and before reading, so its own read finds the version it opened gone
    (s3fs reads with ``If-Match`` and raises ``FileExpired``)."""
    from totask_manifest._manifest.ranges import iter_line_batches
    from totask_manifest._storage import AtomicWriter, open_read

    with open_read(url) as f:
        if end == size:
            with AtomicWriter(url) as out:
                out.write(new_body)
        return sum(len(batch) for batch in iter_line_batches(f, start=start, end=end))


def mark_then_wait(url: str, start: int, end: int | None, parent: int, marks: str) -> int:
    """In a worker: leave a file named by its pid in ``marks``, and return (the worker then waits
    for the next range, as an idle pool worker does). In the parent: wait to be killed."""
    if os.getpid() == parent:
        time.sleep(120)
        return 0
    with open(os.path.join(marks, str(os.getpid())), "w"):
        pass
    return 0
