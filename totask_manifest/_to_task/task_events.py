"""The per-task events of a ToTask run (``annotate_task_data`` log entries) in the SDK's order.

synapse-sdk 2026.2.17 (``AnnotateTaskDataStep._process_sequential``) takes the tasks in the order
the listing gave them and numbers each event's ``index`` by that place (1 = the first task
listed), a failed task where it was listed. Our writes end out of order (``concurrency`` of them
in flight) and the tasks the export could not take (no files) are known from the start, so the
events are put back in listing order here. Only events that end ahead of a task still in flight
are held (a window's worth); past ``HELD_MAX`` the oldest are sent out of order rather than hold a
run's every event (a task looked at again after the run, ``apply``'s recheck, would hold all
behind it): their ``index`` stays their place in the listing, only their order differs.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable
from typing import Any

#: events held at most while an earlier task's write is in flight (a few hundred bytes each)
HELD_MAX = 10_000

#: ``send(index, task_id, error, message)``: one task's event (``error`` None: it succeeded)
Send = Callable[[int, Any, "str | None", str], None]


class ListingOrder:
    """Sends each task's event in listing order, ``index`` its place in the listing.

    ``skipped``: the listed tasks the export could not take (``{"task_id", "reason", "line"}``,
    in listing order; ``line``: the export line the next exported task took), failed tasks
    of the run; every other task is an export line, given to ``add`` as it ends."""

    def __init__(self, skipped: list[dict[str, Any]], send: Send, *, held_max: int = HELD_MAX) -> None:
        # a record an older version noted may lack ``line``: such a task is taken as listed first
        self._skipped_lines = [max(int(sk.get("line") or 1), 1) for sk in skipped]
        self._skipped = {line + k: sk for k, (line, sk) in enumerate(zip(self._skipped_lines, skipped, strict=True))}
        self._send = send
        self._held: dict[int, tuple[Any, str | None, str]] = {}
        self._held_max = held_max
        self._next = 1

    def position(self, line: int) -> int:
        """The listing place of export line ``line``: the line, plus the skipped tasks listed before it."""
        return line + bisect.bisect_right(self._skipped_lines, line)

    def add(self, line: int, task_id: Any, error: str | None, message: str) -> None:
        """Export line ``line``'s task ended: its event goes now, or once the tasks listed before it have."""
        place = self.position(line)
        if place < self._next:  # sent out of order already (``HELD_MAX``), or a line said twice: at once
            self._send(place, task_id, error, message)
            return
        self._held[place] = (task_id, error, message)
        self._drain()
        if len(self._held) > self._held_max:  # the tasks still in flight before it are sent when they end
            self._advance(min(self._held))

    def close(self) -> None:
        """The run is over (or stopped): every event still held, and every skipped task not yet
        sent, in listing order (a stopped run leaves gaps: the tasks it never tried)."""
        last = max([*self._held, *self._skipped], default=0)
        self._advance(last + 1)

    def _advance(self, place: int) -> None:
        """Send what is known of the places up to ``place`` (gaps left), then drain from there."""
        while self._next < place:
            self._send_next()
            self._next += 1
        self._drain()

    def _drain(self) -> None:
        """Send the events that are next in listing order, as far as they are known."""
        while self._send_next():
            self._next += 1

    def _send_next(self) -> bool:
        """The event of the next place, sent if known; whether it was."""
        if (sk := self._skipped.get(self._next)) is not None:
            self._send(self._next, sk["task_id"], sk["reason"], sk["reason"])
        elif (held := self._held.pop(self._next, None)) is not None:
            self._send(self._next, *held)
        else:
            return False
        return True
