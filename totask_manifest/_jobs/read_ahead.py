"""Reading the checkpoint parts ahead of their use, so the disk and the merge overlap.

A resume with one line left of a million reads 2,000 parts (716 MB) and writes the output from
them. Read one after another from a cold page cache, each part is a short synchronous read: on
this project's benchmark machine (virtio disk) 730 MB took 3.2-3.3 s that way, 2.3 s with the
kernel told of the next 64 parts (``posix_fadvise(WILLNEED)``, which queues their reads at
once), 1.7 s with 16 reading threads. Two things follow:

* ``advise_ahead``: the kernel is told to read the parts (or only their tails, where the footers
  are) some way ahead of the one being read; nothing is read twice, a part already cached costs
  three system calls;
* ``in_thread``: the parts are loaded (read and checked) by a thread while the caller merges
  the previous ones; ``pread`` and ``write`` let the other thread run, so reading, checking and
  writing overlap. At most ``depth`` parts wait in memory.

Neither changes what is read or checked: an error of a part is raised where it was met, in order.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Iterator
from typing import TypeVar

T = TypeVar("T")

#: parts the kernel is asked to read ahead of the one being read (about 23 MB of parts)
AHEAD = 64
#: bytes at a part's end the footer read needs (``checkpoint._TAIL``)
TAIL = 4096


def advise_ahead(urls: list[str], *, tail: bool = False, ahead: int = AHEAD) -> Iterator[str]:
    """``urls`` in order; as each is handed out, the local file ``ahead`` places further is
    advised for reading (whole, or with ``tail`` its first and last ``TAIL`` bytes only)."""
    for i, url in enumerate(urls):
        if i == 0:
            for first in urls[1:ahead + 1]:
                _will_need(first, tail)
        elif i + ahead < len(urls):
            _will_need(urls[i + ahead], tail)
        yield url


def _will_need(url: str, tail: bool) -> None:
    """Ask the kernel to start reading a local file; a store's file, a file gone or a system
    without the call: nothing (it is advice)."""
    if "://" in url or not hasattr(os, "posix_fadvise"):
        return
    try:
        fd = os.open(url, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError:
        return
    try:
        if tail:  # the footer, and the first page, where the format's magic line is checked
            os.posix_fadvise(fd, 0, TAIL, os.POSIX_FADV_WILLNEED)
            os.posix_fadvise(fd, max(os.fstat(fd).st_size - TAIL, 0), 0, os.POSIX_FADV_WILLNEED)
        else:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_WILLNEED)
    except OSError:
        pass
    finally:
        os.close(fd)


_END = object()


def in_thread(items: Iterator[T], depth: int = 4) -> Iterator[T]:
    """``items``, produced by a thread up to ``depth`` ahead of the caller. What the producer
    raises is raised here, after the items before it. Leaving the loop early (an error of the
    caller, ``close``) stops the producer before its next item and waits for it."""
    q: queue.Queue[tuple[object, BaseException | None]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        q.put((item, None), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put((_END, None))
        except BaseException as exc:  # handed to the caller, who raises it in order
            q.put((_END, exc))
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()

    thread = threading.Thread(target=produce, name="read-ahead", daemon=True)
    thread.start()
    try:
        while True:
            item, error = q.get()
            if item is _END:
                if error is not None:
                    raise error
                return
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        while thread.is_alive():  # a producer blocked on a full queue: make room until it sees stop
            try:
                q.get(timeout=0.1)
            except queue.Empty:
                pass
        thread.join()
