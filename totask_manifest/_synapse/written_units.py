"""The data unit a task was written for, where the journal does not say: a journal written before
apply recorded ``data_unit`` in its ``before`` records.

Rollback must not put a task's earlier data back onto a task now bound to another data unit (a
colliding id on another backend, a task rebound since): that data belongs to another image. For
such an older journal the data unit is taken from the line the write came from (its ``line``) in
the job's output manifest, whose ``synapse.data_unit_id`` is the one apply checked before writing,
and only where that line still names the same task: a line that names another one (the manifest
edited since) proves nothing, and the task is not checked, as before.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from .._errors import ManifestError, TotaskError
from .._jobs.job import Job
from .._manifest.io import read_lines
from .._storage import exists
from .current import unit_id
from .journal import TaskHistory

log = logging.getLogger(__name__)


def fill_written_units(job_url: str, histories: Mapping[int, TaskHistory]) -> None:
    """Set ``exported_unit`` of each history whose writes name no data unit, from the job's output
    manifest (read once, only when there is such a history); nothing when it cannot be read."""
    wanted = {w["line"]: h for h in histories.values() if h.data_unit is None
              for w in h.writes[:1] if isinstance(w.get("line"), int) and not isinstance(w.get("line"), bool)}
    if not wanted:
        return
    try:
        job = Job(job_url)
        output = job.output_manifest if job.exists else None
        if output is None or not exists(output):
            return
        last = max(wanted)
        for line in read_lines(output):
            if line.number > last:
                break
            history = wanted.get(line.number)
            if history is None or line.is_blank:
                continue
            try:
                record = line.record()
            except ManifestError:  # that line proves nothing; the others still do
                continue
            syn = record.get("synapse") if isinstance(record, dict) else None
            if isinstance(syn, dict) and syn.get("task_id") == history.task_id:
                history.exported_unit = unit_id({"data_unit": syn.get("data_unit_id")})
    except TotaskError as exc:  # a damaged job.json, a manifest that cannot be read: not checked, as before
        log.debug("cannot read the data units of %s's writes: %s", job_url, exc)
