"""A ToTask run refused before it starts (bad parameters, a bad parameter file): its result, and
the Synapse job of ``SYNAPSE_JOB_ID`` (``job_id``) told of it.

The SDK's job entry point marks the platform's job ``RUNNING``, then ``FAILED`` with the error, for
any action whose parameters fail; told nothing, the job stays ``PENDING`` for ever. The Python
action (``ToTaskAction.start``) and ``totask-manifest run`` (which checks the parameter file itself,
to exit 2 naming it) both refuse through ``tell_refused`` here, so the job is told the same way on
both. Telling it is best-effort and quick (``REPORT_OPTIONS``): the user waits on it to learn a
mistake, and a job that could not be told is said in one more line rather than by a minute's wait.
"""

from __future__ import annotations

import logging
from typing import Any

from .._credentials import hide_env_credentials
from .._errors import TotaskError
from .._redaction import redact_url
from .._storage import map_strings
from .job_id import synapse_job_id
from .runs import FAILED_STATUS

log = logging.getLogger(__name__)

#: the counters of a run that did nothing
NO_METRICS = {"total": 0, "success": 0, "failed": 0, "stand_by": 0}
#: the client that tells the Synapse job of a refusal: one retry, at once (a connection never
#: made, a 502/503/504), no wait for a 429, short timeouts. A run that is not refused keeps the
#: client's defaults (the SDK's 4 attempts over 12 s): there the work is worth the wait.
REPORT_OPTIONS: dict[str, Any] = {"retries": 1, "backoff": 0.0, "rate_limit_retries": 0,
                                  "connect_timeout": 2.0, "timeout": 5.0}


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
    """The ``FAILED`` result of a run refused with ``message``, told to the Synapse job of
    ``SYNAPSE_JOB_ID`` (``tell_refused``); a job that could not be told is a warning in the log."""
    result, untold = tell_refused(message, client)
    if untold:
        log.warning("%s", untold)
    return result


def tell_refused(message: str, client: Any = None) -> tuple[dict[str, Any], str | None]:
    """The ``FAILED`` result of a run refused with ``message`` (the environment's credentials
    masked: a converter plugin that failed as it loaded is quoted, and it may have read them),
    told to the Synapse job of ``SYNAPSE_JOB_ID`` when it is set: ``RUNNING``,
    then ``FAILED`` with the result and its ``error``. Nothing else is sent. Then the line saying
    the job could not be told, or ``None`` (told, or no job to tell).

    Telling is best-effort and quick: the user is waiting to learn their mistake, and with Synapse
    down the client's own schedule (4 attempts over 12 s a request) kept them a minute. So the
    client made here tries each request twice at most, at once (``REPORT_OPTIONS``), and a
    ``RUNNING`` that Synapse did not take because it is unreachable or unavailable is not followed
    by a ``FAILED`` bound to fail the same way. ``client``: a ``SynapseClient`` to use instead
    (its own retries then hold; else one is made, and closed); without credentials the job cannot
    be told (nor can the SDK)."""
    result = map_strings(action_result(FAILED_STATUS, message), hide_env_credentials)
    job_id = synapse_job_id()
    if not job_id:
        return result, None
    from .._synapse.errors import backend_down  # on use: the CLI refuses a bad file without aiohttp
    from .._synapse.progress import JobReporter
    from .._synapse.sync_client import SynapseClient

    try:
        own = client is None
        client = client or SynapseClient(max_concurrency=1, **REPORT_OPTIONS)
    except TotaskError:  # no credentials, a broken login file: nothing to tell the job with
        return result, None
    reporter = JobReporter(client, job_id, interval=0.0, pump=False)
    try:
        reporter.status("RUNNING")
        if not backend_down(reporter.last_error):  # a 4xx (the job refused ``RUNNING``): FAILED still sent
            reporter.status(FAILED_STATUS, result={**result, "error": result["message"]})
    finally:
        reporter.close()
        if own:
            client.close()
    if reporter.last_error is None:
        return result, None
    return result, _untold_line(job_id, client.settings.host, reporter.last_error)


def _untold_line(job_id: str, host: str, error: Exception) -> str:
    """One line naming the job, the host (no user info, no query) and why; the error's own text
    is the client's, tokens masked, and the environment's credentials are masked again here."""
    line = f"the Synapse job {job_id} at {redact_url(host)} was not told of this refusal (it may stay PENDING): {error}"
    return hide_env_credentials(" ".join(line.split()))
