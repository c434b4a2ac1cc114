"""Which Synapse job a ToTask run reports to: ``SYNAPSE_JOB_ID``, and deliberately not ``RAY_JOB_ID``.

The SDK v2 job entry point (``synapse_sdk/plugins/entrypoint.py``, ``main``, synapse-sdk
2026.2.17) takes ``os.environ.get('SYNAPSE_JOB_ID') or os.environ.get('RAY_JOB_ID')``. We part
from it on the fallback, because Ray sets ``RAY_JOB_ID`` in every worker to its own internal job
id, never to the Synapse job's: measured with the Ray this project installs, a task worker reads
``ffffffff`` and a driver's job is ``01000000``, and Ray keeps a user's ``runtime_env`` from
setting it. The SDK's own Ray executor sets ``SYNAPSE_JOB_ID`` (``executors/ray/jobs_api.py``), so
there the two agree; anywhere else the fallback would mark a job that is not the run's (an
all-digit id such as ``01000000`` may name a real one) ``RUNNING``, then ``FAILED`` or
``SUCCEEDED``, with another run's result. An empty ``SYNAPSE_JOB_ID`` counts as unset (the SDK's
``or``); the value is used as it is. The action and a refused run both ask here, so the two
cannot disagree about the job.
"""

from __future__ import annotations

import os
from collections.abc import Mapping


def synapse_job_id(env: Mapping[str, str] | None = None) -> str | None:
    """The Synapse job to report to: ``SYNAPSE_JOB_ID`` when set and not empty, else ``None``
    (``RAY_JOB_ID`` is Ray's own id, never read: the module says why). ``env``: ``os.environ``
    unless given."""
    env = os.environ if env is None else env
    return env.get("SYNAPSE_JOB_ID") or None
