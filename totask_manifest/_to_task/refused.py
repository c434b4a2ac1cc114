"""A ToTask run refused before it starts (bad parameters, a bad parameter file): its result, and
the Synapse job of ``SYNAPSE_JOB_ID`` (else ``RAY_JOB_ID``, as the SDK reads them: ``job_id``) told of it.

The SDK's job entry point marks the platform's job ``RUNNING``, then ``FAILED`` with the error, for
any action whose parameters fail; told nothing, the job stays ``PENDING`` for ever. The Python
action (``ToTaskAction.start``) and ``totask-manifest run`` (which checks the parameter file itself,
to exit 2 naming it) both refuse through ``refuse`` here, so the job is told the same way on both.
"""

from __future__ import annotations

from typing import Any

from .._credentials import hide_env_credentials
from .._errors import TotaskError
from .._storage import map_strings
from .job_id import synapse_job_id
from .runs import FAILED_STATUS

#: the counters of a run that did nothing
NO_METRICS = {"total": 0, "success": 0, "failed": 0, "stand_by": 0}


def action_result(status: str, message: str, metrics: dict[str, int] | None = None,
                  failures: list[dict] | None = None, totask: dict[str, Any] | None = None) -> dict[str, Any]:
    """The SDK's ``ToTaskResult`` keys, then ours: ``metrics`` and ``totask``."""
    metrics = metrics or dict(NO_METRICS)
    return {
        "status": status,
        "message": message,
        "total_tasks": metrics["total"],
        "success_count": metrics["success"],
        "failed_count": metrics["failed"],
        "failures": failures or [],
        "metrics": metrics,
        "totask": totask or {},
    }


def refuse(message: str, client: Any = None) -> dict[str, Any]:
    """The ``FAILED`` result of a run refused with ``message`` (the environment's credentials
    masked: a converter plugin that failed as it loaded is quoted, and it may have read them),
    told to the Synapse job of ``SYNAPSE_JOB_ID`` (else ``RAY_JOB_ID``) when it is set: ``RUNNING``, then ``FAILED`` with
    the result and its ``error``. Nothing else is sent. ``client``: a ``SynapseClient`` to use
    (else one is made, and closed); without credentials the job cannot be told (nor can the SDK)."""
    result = map_strings(action_result(FAILED_STATUS, message), hide_env_credentials)
    job_id = synapse_job_id()
    if not job_id:
        return result
    from .._synapse.progress import JobReporter  # on use: the CLI refuses a bad file without aiohttp
    from .._synapse.sync_client import SynapseClient

    try:
        own = client is None
        client = client or SynapseClient(max_concurrency=1)
    except TotaskError:  # no credentials, a broken login file: nothing to tell the job with
        return result
    reporter = JobReporter(client, job_id)
    try:
        reporter.status("RUNNING")
        reporter.status(FAILED_STATUS, result={**result, "error": result["message"]})
    finally:
        reporter.close()
        if own:
            client.close()
    return result
