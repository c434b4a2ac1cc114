"""Progress a person can watch: a live bar on a terminal, Synapse-style log lines otherwise.

The log line format is the ToTask action's (``[annotate_task_data] Progress: 25.0% (25/100)``),
so logs read the same whichever tool pre-annotated the tasks.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from typing import TextIO

log = logging.getLogger("totask_manifest")

STEP = "annotate_task_data"


class Progress:
    def __init__(
        self,
        total: int,
        done: int = 0,
        *,
        stream: TextIO | None = None,
        interval: float = 1.0,
        on_update: Callable[[int, int], None] | None = None,
    ) -> None:
        self.total = total
        self.done = done
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.interval = interval
        self.on_update = on_update
        self._last = 0.0
        self._last_pct_logged = -1
        self._start = time.monotonic()
        self._start_done = done
        self._emitted_done = -1

    def advance(self, n: int = 1) -> None:
        self.done += n
        now = time.monotonic()
        if self.done >= self.total or now - self._last >= (0.1 if self.tty else self.interval):
            self._emit(now)

    def _pct(self) -> float:
        return 100.0 * self.done / self.total if self.total else 100.0

    def _emit(self, now: float, final: bool = False) -> None:
        if final and self._emitted_done == self.done and not self.tty:
            return
        self._emitted_done = self.done
        self._last = now
        pct = self._pct()
        if self.on_update is not None:
            self.on_update(self.done, self.total)
        if self.tty:
            width = 30
            filled = int(width * pct / 100)
            rate = (self.done - self._start_done) / max(now - self._start, 1e-9)
            bar = "#" * filled + "-" * (width - filled)
            self.stream.write(f"\r[{STEP}] [{bar}] {pct:5.1f}% ({self.done}/{self.total}) {rate:,.0f} lines/s")
            if final:
                self.stream.write("\n")
            self.stream.flush()
        else:
            whole = int(pct)
            if whole != self._last_pct_logged or final:
                self._last_pct_logged = whole
                log.info("[%s] Progress: %.1f%% (%d/%d)", STEP, pct, self.done, self.total)

    def finish(self) -> None:
        self._emit(time.monotonic(), final=True)
