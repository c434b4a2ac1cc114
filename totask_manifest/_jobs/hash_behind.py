"""The output manifest's sha256, computed on a thread of its own while the commit writes.

job.json records the output's size and sha256 (``chain``, ``apply``, ``status`` and ``resume``
tell an output changed since). Hashed inline, the commit of a large job paid it on its critical
path: about 0.8 ms of CPU a MB, some 0.5 s for a 700 MB output, on a path that otherwise only
reads and writes. ``hashlib`` lets go of the GIL for updates over 2 kB, so a thread hashes the
bytes already written while the commit reads and writes the next ones, on another core.

The bytes are handed over without a copy: ``bytes`` (immutable) as they are, and the blocks a
``Sink`` reuses through a small ring (``block``/``done``), a block taken again only once the
thread has hashed it. Small writes are gathered into one item, so the thread is woken per
``GATHER`` bytes, not per line. The digest is the one ``hashlib.sha256`` gives the same bytes in
the same order (one queue, one thread).
"""

from __future__ import annotations

import hashlib
import queue
import threading
import weakref
from collections.abc import Callable
from typing import Any

#: blocks in the ring: the commit may run this many blocks ahead of the hash
RING = 4
#: small writes gathered before they are handed over
GATHER = 1 << 20

_STOP = object()


class HashBehind:
    """sha256 of what ``update`` is given, on a thread started at the first update."""

    def __init__(self, block_size: int) -> None:
        self._block_size = block_size
        self._items: queue.SimpleQueue = queue.SimpleQueue()
        self._free: queue.SimpleQueue = queue.SimpleQueue()
        self._blocks: list[memoryview] = []
        self._small: list[bytes] = []
        self._small_size = 0
        self._digest = hashlib.sha256()
        self._thread: threading.Thread | None = None

    def update(self, data: bytes | memoryview) -> None:
        """Hash ``data`` after what was given before. A ``memoryview`` is copied: the buffer under
        it (a part's bodies) may be released or reused before the thread reads it."""
        if type(data) is not bytes:
            data = bytes(data)
        if len(data) < GATHER:
            self._small.append(data)
            self._small_size += len(data)
            if self._small_size < GATHER:
                return
            data = b"".join(self._small)
            self._small.clear()
            self._small_size = 0
        else:
            self._hand_small()
        self._put((data, None))

    def block(self) -> tuple[int, memoryview]:
        """A block of the ring to read into (``done`` hands it to the hash), waiting while every
        block is still to be hashed."""
        if len(self._blocks) < RING:
            self._blocks.append(memoryview(bytearray(self._block_size)))
            return len(self._blocks) - 1, self._blocks[-1]
        i = self._free.get()
        return i, self._blocks[i]

    def done(self, i: int, n: int) -> None:
        """The first ``n`` bytes of block ``i`` were written: hash them, then free the block."""
        self._hand_small()
        self._put((self._blocks[i][:n], i))

    def hexdigest(self) -> str:
        """The digest of everything given (waits for the thread)."""
        self.close()
        return self._digest.hexdigest()

    def close(self) -> None:
        """Stop the thread once it has hashed all it was given (a failed commit's too: no thread
        is left waiting)."""
        self._hand_small()
        if self._thread is not None:
            self._items.put(_STOP)
            self._thread.join()
            self._thread = None

    def _hand_small(self) -> None:
        if self._small:
            self._put((b"".join(self._small), None))
            self._small.clear()
            self._small_size = 0

    def _put(self, item: tuple) -> None:
        if self._thread is None:
            # the thread holds the queues, not this object: one never closed (dropped by its
            # owner) is collected, and its finalizer stops the thread
            self._thread = threading.Thread(target=_hash_items, args=(self._items, self._digest.update, self._free),
                                            name="totask-output-sha256", daemon=True)
            self._thread.start()
            weakref.finalize(self, self._items.put, _STOP)
        self._items.put(item)


def _hash_items(items: queue.SimpleQueue, update: Callable[[Any], None], free: queue.SimpleQueue) -> None:
    while (item := items.get()) is not _STOP:
        data, ring_index = item
        update(data)
        if ring_index is not None:
            free.put(ring_index)
