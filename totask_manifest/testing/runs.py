"""A ``JobRun`` for tests and benchmarks that build an annotator directly, without a job."""

from __future__ import annotations

from typing import Any

from .._jobs.config import JobConfig
from .._jobs.run import JobRun


def job_run(
    job_name: str = "test-job",
    label_attribute: str = "label",
    task_type: str = "image-classification",
    options: dict[str, Any] | None = None,
    *,
    method: str = "file",
    manifest_url: str = "",
    output_root: str = "",
) -> JobRun:
    """What an annotator is built from (``Annotator(job_run(...))``): the job's name, attribute,
    task type and options; ``manifest_url`` is the manifest its relative references resolve
    against; the job folder (``job_url``) is ``output_root/job_name`` (masks are written there)."""
    config = JobConfig(job_name=job_name, input=manifest_url, output_root=output_root,
                       label_attribute=label_attribute, task_type=task_type, method=method,
                       options=dict(options or {}))
    return JobRun(config, input_url=manifest_url)
