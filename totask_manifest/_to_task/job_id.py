"""Which Synapse job a ToTask run reports to, read from the environment as the SDK reads it.

The SDK v2 job entry point (``synapse_sdk/plugins/entrypoint.py``, ``main``, synapse-sdk
2026.2.17) takes ``os.environ.get('SYNAPSE_JOB_ID') or os.environ.get('RAY_JOB_ID')``: the
Synapse job's own id wins, and a worker started without it (a Ray job whose submission id is
the Synapse job's) still reports, through Ray's ``RAY_JOB_ID``. ``or`` makes an empty
``SYNAPSE_JOB_ID`` count as unset, so ``RAY_JOB_ID`` is read then; the value is used as it is
(no prefix taken off, no spaces stripped), and when neither is set, or both are empty, there is no
job and nothing is reported (the SDK's ``if client and job_id``). The action and a refused run
both ask here, so the two cannot disagree about the job.
"""

from __future__ import annotations

import os
from collections.abc import Mapping


def synapse_job_id(env: Mapping[str, str] | None = None) -> str | None:
    """The Synapse job to report to: ``SYNAPSE_JOB_ID``, else ``RAY_JOB_ID``, else ``None``
    (an empty value counts as unset, as the SDK's ``or`` does). ``env``: ``os.environ`` unless given."""
    env = os.environ if env is None else env
    return env.get("SYNAPSE_JOB_ID") or env.get("RAY_JOB_ID") or None
