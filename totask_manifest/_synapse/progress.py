"""Progress, metrics and logs of a ToTask run, sent to its Synapse job (``SYNAPSE_JOB_ID``:
``_to_task.job_id``).

The shapes are the SDK's v2 ``JobLogger`` ones (synapse-api.md §2): ``PATCH jobs/{id}/`` with
``progress_record`` (``record.steps.<step>`` and ``current_progress``) and ``metrics_record``
(``record.steps.<step>``), and ``POST logs/`` with ``{event, data, datetime, job, step, level}``
entries, every entry carrying the step it was made in. The steps and their shares are the SDK
v2 ToTask's (``STEP_PROPORTIONS``: ``initialize`` 10, ``prepare`` 5 for the file method or 20
for inference, ``fetch_tasks`` 10, ``annotate_task_data`` 70 or 60, ``finalize`` 5); the
overall figure is the SDK's: finished steps count whole, the current one by its percent, capped
at 100; metrics are ``{success, failed, stand_by}`` under ``annotate_task_data``. Updates are only remembered when made; a background thread sends what changed at most
once a second (one PATCH carrying progress and metrics, one POST carrying every queued log
entry), so a run of 10,000 tasks costs a few hundred requests, not 20,000. Reporting never
fails the run: backend errors are logged at debug level and dropped.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from typing import Any

from .errors import never_connected
from .sync_client import SynapseClient

log = logging.getLogger(__name__)

#: the SDK v2 ToTask steps, in order, with their share of the overall progress, per method
STEP_PROPORTIONS: dict[str, dict[str, int]] = {
    "file": {"initialize": 10, "prepare": 5, "fetch_tasks": 10, "annotate_task_data": 70, "finalize": 5},
    "inference": {"initialize": 10, "prepare": 20, "fetch_tasks": 10, "annotate_task_data": 60, "finalize": 5},
}
STEPS = STEP_PROPORTIONS["file"]
METRICS_STEP = "annotate_task_data"
#: job statuses that end a run (the SDK's entry point sends them with the result)
FINAL_STATUSES = frozenset({"SUCCEEDED", "FAILED"})


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat()


class JobReporter:
    """Coalescing reporter; ``job_id=None`` makes every call a no-op (no Synapse job to report to)."""

    def __init__(self, client: SynapseClient | None, job_id: str | int | None, *, interval: float = 1.0,
                 method: str = "file", pump: bool = True) -> None:
        """``pump=False``: no background thread; only ``status`` and ``flush`` send (a refused
        run's two statuses, with ``interval=0``, go at once rather than a second apart)."""
        self.client = client
        self.job_id = job_id
        self.interval = interval
        self.steps = STEP_PROPORTIONS.get(method, STEPS)
        self.percent: dict[str, float] = dict.fromkeys(self.steps, 0.0)
        self.current = next(iter(self.steps))
        self.metrics: dict[str, int] = {"success": 0, "failed": 0, "stand_by": 0}
        self._logs: list[dict] = []
        self._patch: dict[str, Any] = {}
        self._dirty = False
        self._lock = threading.Lock()
        self._last_send = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._started = time.monotonic()
        #: set by a final status: ``current_progress`` then carries the SDK's ``time_remaining: 0.0``
        #: and ``time_elapsed`` (whole seconds since the reporter was made), as its last PATCH does
        self._finished = False
        #: why the last status update failed or was not sent (``None`` once one succeeds, whatever
        #: became of the logs before it): reporting never raises, but a caller that must say the job
        #: was not told (a refused run) reads it here
        self.last_error: Exception | None = None
        if self.enabled and pump:
            self._thread = threading.Thread(target=self._pump, name="synapse-job-reporter", daemon=True)
            self._thread.start()

    @property
    def enabled(self) -> bool:
        return self.client is not None and self.job_id not in (None, "")

    # -- what callers report ----------------------------------------------------------------------

    def status(self, status: str, **fields: Any) -> None:
        """A status change is sent now (or as soon as the once-a-second limit allows), never merged away."""
        if status in FINAL_STATUSES:
            with self._lock:
                self._finished = True
        self._update({"status": status, **fields})
        self.flush(wait=True)

    def progress(self, step: str, done: int, total: int) -> None:
        with self._lock:
            self.current = step
            self.percent[step] = 100.0 if total <= 0 else round(min(100.0, 100.0 * done / total), 2)
            for earlier in self.steps:
                if earlier == step:
                    break
                self.percent[earlier] = 100.0
        self._update({})

    def set_metrics(self, success: int, failed: int, stand_by: int) -> None:
        with self._lock:
            self.metrics = {"success": success, "failed": failed, "stand_by": max(0, stand_by)}
        self._update({})

    def log(self, event: str, data: dict, *, level: str = "info", step: str | None = None) -> None:
        """Queue a ``POST logs/`` entry; it carries ``step`` (by default the step now running)."""
        if not self.enabled:
            return
        with self._lock:
            entry = {"event": event, "data": data, "datetime": _now(), "job": self.job_id,
                     "step": step or self.current, "level": level}
            self._logs.append(entry)
            self._dirty = True

    def message(self, content: str, *, key: str = "", level: str = "info", echo: bool = True) -> None:
        """A user message, as the SDK's ``log_message``: event ``message``, ``{content, key}``.
        ``echo=False``: for the job's log only, as a line said already here (an export's warning)
        would be said twice."""
        if echo:
            log.log(logging.WARNING if level in ("warning", "danger", "error") else logging.INFO, "%s", content)
        self.log("message", {"content": content, "key": key}, level=level)

    # -- sending ---------------------------------------------------------------------------------------

    def _update(self, fields: dict[str, Any]) -> None:
        if not self.enabled:
            return
        with self._lock:
            self._patch.update(fields)
            self._dirty = True

    def _records(self) -> dict[str, Any]:
        steps = {}
        for order, (name, proportion) in enumerate(self.steps.items()):  # 0-based, as the SDK's JobLogger
            steps[name] = {"proportion": proportion, "order": order, "percent": self.percent[name],
                           "time_remaining": None}
        overall = round(min(100.0, sum(self.steps[n] * self.percent[n] / 100.0 for n in self.steps)), 2)
        current = {"overall": overall, "step": self.current, "percent": self.percent[self.current],
                   "time_remaining": None, "order": list(self.steps).index(self.current)}
        if self._finished:
            current.update(time_remaining=0.0, time_elapsed=int(time.monotonic() - self._started))
        return {
            "progress_record": {"record": {"steps": steps}, "current_progress": current},
            "metrics_record": {"record": {"steps": {METRICS_STEP: dict(self.metrics)}}},
        }

    def _pump(self) -> None:
        while not self._stop.wait(self.interval / 4):
            self.flush()

    def flush(self, *, wait: bool = False) -> None:
        """Send what changed; ``wait`` sleeps first if the last send was under ``interval`` ago."""
        if not self.enabled:
            return
        with self._lock:
            if not self._dirty:
                return
            pause = self.interval - (time.monotonic() - self._last_send) if wait else 0.0
        if pause > 0:
            time.sleep(pause)
        with self._lock:
            if not self._dirty or time.monotonic() - self._last_send < self.interval:
                return
            body = {**self._records(), **self._patch}
            logs, self._logs = self._logs, []
            self._patch = {}
            self._dirty = False
            self._last_send = time.monotonic()
        assert self.client is not None
        # the logs first, then the PATCH, as the SDK sends them: a final status then follows the
        # run's last messages (a backend may refuse logs to a finished job); logs refused (a 4xx,
        # or a 5xx or 429s of the logs' endpoint alone) never keep the status from the job
        logs_error = self._send(self.client.create_logs, logs) if logs else None
        if never_connected(logs_error):
            # no connection to the host at all: the PATCH would meet the same, after a second retry
            # schedule (12 s by default) for nothing; its fields stay pending for the next send, and
            # what kept the status from the job is said
            log.debug("Synapse job %s: status update not sent, as the host took no connection", self.job_id)
            with self._lock:
                self._patch = {**body, **self._patch}
                self._dirty = True
            self.last_error = logs_error
            return
        self.last_error = self._send(self.client.update_job, self.job_id, body)

    def _send(self, call: Any, *args: Any) -> Exception | None:
        """One request to the job; a failure is returned and logged, never raised."""
        try:
            call(*args)
        except Exception as exc:  # reporting must never fail the run
            log.debug("could not report to Synapse job %s: %s", self.job_id, exc)
            return exc
        return None

    def close(self) -> None:
        """Stop the pump and send the last state (respecting the once-a-second limit)."""
        if not self.enabled:
            return
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.flush(wait=True)
