"""``Slots``: the fetcher's request slots, ``asyncio.Semaphore``'s job at less Python a request.

Every line of a file job takes a slot and gives it back, and a job runs a quarter more workers
than slots (``FileAnnotator.annotate``), so a slot is handed from one worker to a waiting one on
nearly every request. ``asyncio.Semaphore`` pays for that in coroutines (``async with``: an
``__aenter__``, an ``acquire``, an ``__aexit__``) and in its wake-up bookkeeping; here a free slot
is taken with a plain call (``take``), and a given-back slot passes straight to the longest
waiter, first come first served, as the semaphore's does.
"""

from __future__ import annotations

import asyncio
from collections import deque


class Slots:
    """``n`` slots: ``take()`` or ``await wait()``, then ``give()`` once, whatever happens."""

    __slots__ = ("_free", "_waiters")

    def __init__(self, n: int) -> None:
        self._free = n
        self._waiters: deque[asyncio.Future[None]] = deque()

    def take(self) -> bool:
        """Take a free slot now; False when there is none (or others wait for one first)."""
        if self._free > 0 and not self._waiters:
            self._free -= 1
            return True
        return False

    async def wait(self) -> None:
        """Wait for a slot in turn. Cancelled after one was handed over, it is given back."""
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():  # handed a slot it will not use
                self.give()
            raise

    def give(self) -> None:
        """Give a slot back: to the longest waiter still waiting, or to the free ones."""
        waiters = self._waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():  # a cancelled waiter left
                waiter.set_result(None)
                return
        self._free += 1
