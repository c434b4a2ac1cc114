"""Progress a person can watch: a live bar on a terminal, Synapse-style log lines otherwise.

The log line format is the ToTask action's (``[annotate_task_data] Progress: 25.0% (25/100)``),
so logs read the same whichever tool pre-annotated the tasks. On a terminal the bar shows what a
person waits on (count, rate, time left), and log records (a line that failed, say) are printed
above it: while the bar is live, the log handlers writing to the bar's stream write through
``_AboveBar``, which clears the bar first and draws it again below the record.

A terminal that goes away while the job runs (an ssh session closed under a job started with
``disown`` or ``setsid``) fails every write to it (EIO): the bar is given up then, and the job
goes on. It is drawn for a person, never a reason for the job to stop.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, TextIO

log = logging.getLogger("totask_manifest")

STEP = "annotate_task_data"
#: carriage return + erase to the end of the line (ANSI): what clears the bar
CLEAR = "\r\x1b[K"


def eta_text(seconds: float | None) -> str:
    """``m:ss`` (or ``h:mm:ss``); ``--:--`` until there is a rate to go by."""
    if seconds is None or seconds != seconds or seconds == float("inf"):
        return "--:--"
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class _AboveBar:
    """A log handler's stream while the bar is live: a record clears the bar, is written on its
    own line, and the bar is drawn again below it when the handler flushes."""

    def __init__(self, stream: TextIO, progress: Progress) -> None:
        self._stream = stream
        self._progress = progress

    def write(self, text: str) -> int:
        with self._progress._lock:
            self._progress._clear()
            return self._stream.write(text)

    def flush(self) -> None:
        with self._progress._lock:
            self._stream.flush()
            self._progress._redraw()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


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
        self._lock = threading.RLock()
        self._bar = ""  # the bar as last drawn
        self._shown = False  # whether it is on the screen now (not cleared by a log record)
        self._routed: list[tuple[logging.StreamHandler, TextIO]] = []
        self._finished = False
        self._gone = False  # the terminal refused a write: nothing more is drawn

    def advance(self, n: int = 1) -> None:
        self.done += n
        now = time.monotonic()
        if self.done >= self.total or now - self._last >= (0.1 if self.tty else self.interval):
            self._emit(now)

    def _pct(self) -> float:
        return 100.0 * self.done / self.total if self.total else 100.0

    def bar_text(self, now: float, width: int = 80) -> str:
        """``[#####-----]  50.0% 25/50  12 lines/s  ETA 0:02``, cut to ``width`` columns."""
        pct = self._pct()
        elapsed = max(now - self._start, 1e-9)
        rate = (self.done - self._start_done) / elapsed
        left = (self.total - self.done) / rate if rate > 0 else None
        tail = f" {pct:5.1f}% {self.done}/{self.total}  {rate:,.1f} lines/s  ETA {eta_text(left)}"
        cells = max(10, min(30, width - len(tail) - 3))
        filled = int(cells * pct / 100)
        return ("[" + "#" * filled + "-" * (cells - filled) + "]" + tail)[: max(width - 1, 1)]

    def _emit(self, now: float, final: bool = False) -> None:
        if final and self._emitted_done == self.done and not self.tty:
            return
        self._emitted_done = self.done
        self._last = now
        pct = self._pct()
        if self.on_update is not None:
            self.on_update(self.done, self.total)
        if self.tty:
            if self._gone:
                self._unroute()  # records written through the bar's stream go to it as they are
                return
            width = self._columns()
            # handlers are switched outside the lock: a record being written holds its handler's
            # lock and then takes this one
            self._route_log_records()
            with self._lock:
                self._bar = self.bar_text(now, width)
                self._shown = self._put(CLEAR + self._bar)
                if final:
                    self._put("\n")
                    self._shown = False
                    self._finished = True
            if final or self._gone:
                self._unroute()
        else:
            whole = int(pct)
            if whole != self._last_pct_logged or final:
                self._last_pct_logged = whole
                log.info("[%s] Progress: %.1f%% (%d/%d)", STEP, pct, self.done, self.total)

    def _columns(self) -> int:
        """The bar's terminal width: ``COLUMNS`` if set, else the stream's own terminal, else 80
        (stdout may be a file while stderr, where the bar goes, is the terminal)."""
        if os.environ.get("COLUMNS", "").isdigit() and int(os.environ["COLUMNS"]) > 0:
            return int(os.environ["COLUMNS"])
        try:
            columns = os.get_terminal_size(self.stream.fileno()).columns
        except (OSError, ValueError, AttributeError):
            columns = 0
        return columns if columns > 0 else shutil.get_terminal_size((80, 24)).columns

    def finish(self) -> None:
        self._emit(time.monotonic(), final=True)

    # -- log records above the bar ----------------------------------------------------------------

    def _route_log_records(self) -> None:
        """Send the records of handlers writing to the bar's stream through ``_AboveBar``."""
        if self._routed:
            return
        loggers = [logging.getLogger(), log]
        for handler in {h for lg in loggers for h in lg.handlers}:
            if isinstance(handler, logging.StreamHandler) and getattr(handler, "stream", None) is self.stream:
                self._routed.append((handler, handler.stream))
                handler.setStream(_AboveBar(self.stream, self))  # type: ignore[arg-type]

    def _unroute(self) -> None:
        routed, self._routed = self._routed, []  # first, so the flush setStream does draws nothing
        for handler, stream in routed:
            handler.setStream(stream)

    def _clear(self) -> None:
        if self._shown:
            self._put(CLEAR)
            self._shown = False

    def _redraw(self) -> None:
        if self._routed and not self._shown and self._bar and not self._finished:
            self._shown = self._put(CLEAR + self._bar)

    def _put(self, text: str) -> bool:
        """Write and flush ``text``; False, and nothing drawn from then on, where the terminal
        refuses it (closed: EIO; a stream closed under the job: ValueError)."""
        if self._gone:
            return False
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):
            self._gone = self._finished = True
            return False
        return True
