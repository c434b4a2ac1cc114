"""Reading the checkpoint parts ahead of their use, so the disk and the merge overlap.

A resume with one line left of a million reads 2,000 parts (716 MB) and writes the output from
them. Read one after another from a cold page cache, each part is a short synchronous read: on
this project's benchmark machine (virtio disk) 730 MB took 3.2-3.3 s that way, 2.3 s with the
kernel told of the next 64 parts (``posix_fadvise(WILLNEED)``, which queues their reads at
once), 1.7 s with 16 reading threads. ``advise_ahead`` tells the kernel to read the parts (or
only their first and last pages, where the magic line and the footer are) some way ahead of the
one being read; nothing is read twice, and a part already cached costs three system calls.

Loading the parts in a thread while the commit writes was tried and dropped: at load 6 on 2
cores, the commit alone took 4.58-6.45 s with it against 3.80-5.48 s without, and 0.3 s more CPU
(the two threads hand the interpreter lock back and forth at every system call).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

#: parts the kernel is asked to read ahead of the one being read (about 23 MB of parts)
AHEAD = 64
#: bytes at a part's end the footer read needs (``checkpoint._TAIL``)
TAIL = 4096


def advise_ahead(urls: list[str], *, tail: bool = False, ahead: int | None = None) -> Iterator[str]:
    """``urls`` in order; as each is handed out, the local file ``ahead`` (``AHEAD``) places
    further is advised for reading (whole, or with ``tail`` its first and last ``TAIL`` bytes)."""
    ahead = AHEAD if ahead is None else ahead
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
