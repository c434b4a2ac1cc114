"""A sound ``job.json`` for a job folder a test lays out by hand (its output manifest written
directly): written by the job's own ``JobState.save``, so every key the job loader requires is
there. ``report`` says a damaged ``job.json`` (``"input"`` missing, say) and exits 1."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from totask_manifest._jobs.config import JobConfig
from totask_manifest._jobs.state import JobState
from totask_manifest._jobs.status import COMPLETED


def write_job_json(job: Path, input_manifest: Path, attribute: str, task_type: str, *,
                   options: dict[str, Any] | None = None, metrics: dict[str, int] | None = None) -> None:
    """``job``'s ``job.json``: a COMPLETED job named after its folder, which read ``input_manifest``."""
    config = JobConfig(job.name, str(input_manifest), str(job.parent), attribute, task_type, options=options or {})
    state = JobState(config, status=COMPLETED, effective_input=str(input_manifest))
    if metrics is not None:
        state.metrics = {**state.metrics, **metrics}
    state.save()
