"""``JobReporter.flush`` posts the queued logs, then PATCHes the job (the SDK's order). With
Synapse down, the PATCH after failed logs ran its own whole retry schedule (4 attempts over 12 s
by default), so every send, ``close``'s last one included, waited two. A real contract server, or
a closed port on 127.0.0.1."""

from __future__ import annotations

import pytest

from tests.jobs_helpers import closed_port
from totask_manifest._synapse.errors import BackendUnavailable
from totask_manifest._synapse.progress import JobReporter
from totask_manifest._synapse.settings import SynapseSettings
from totask_manifest._synapse.sync_client import SynapseClient
from totask_manifest.testing import Fault
from totask_manifest.testing.builders import TOKEN, fast_client

pytest_plugins = ["totask_manifest.testing.fixtures"]

RETRIES = 2


def _flush_with_logs(client: SynapseClient, job_id: int) -> JobReporter:
    """A final status sent after one queued message, as a run's last send."""
    reporter = JobReporter(client, job_id, interval=0.0, pump=False)
    reporter.message("the run's last message")
    reporter.status("FAILED", result={"status": "FAILED"})
    reporter.flush()
    return reporter


def _flush_against(synapse, fault: Fault) -> JobReporter:
    """``_flush_with_logs`` to a job of the contract server answering with ``fault``."""
    job_id = synapse.add_job()
    synapse.add_fault(fault)
    client = fast_client(synapse, retries=RETRIES)
    try:
        return _flush_with_logs(client, job_id)
    finally:
        client.close()


def test_logs_to_an_unreachable_host_skip_the_status_update_which_stays_pending() -> None:
    """Every connection refused: a send runs the logs' retry schedule alone, not a second one for
    the PATCH; ``last_error`` says why the status was not sent, and the status is not dropped: the
    next send carries it (once: its own schedule)."""
    settings = SynapseSettings(host=f"http://127.0.0.1:{closed_port()}", access_token=TOKEN)
    client = SynapseClient(settings, backoff=0.01, max_backoff=0.05, retries=RETRIES)
    try:
        reporter = JobReporter(client, 41, interval=0.0, pump=False)
        reporter.message("the run's last message")
        reporter.status("FAILED", result={"status": "FAILED"})  # a final status is sent at once
        sent, pending = client.aio.sent, dict(reporter._patch)
        reporter.flush()
        sent_after = client.aio.sent
    finally:
        client.close()
    assert sent == 1 + RETRIES  # the POST's attempts only
    assert pending.get("status") == "FAILED", pending
    assert sent_after == 2 * (1 + RETRIES)  # the pending PATCH, on the next send
    error = reporter.last_error
    assert isinstance(error, BackendUnavailable) and error.unreachable and "PATCH /jobs/" in str(error), error


def test_logs_refused_with_a_4xx_still_send_the_status_and_leave_no_error(synapse) -> None:
    """A 400 to the logs says nothing of the PATCH: it is sent, and it succeeds, so ``last_error``
    is None (it held the logs' error, and a refused run said its job was not told)."""
    reporter = _flush_against(synapse, Fault(status=400, method="POST", path="^/logs/", times=None))
    assert [(r.method, r.status) for r in synapse.requests] == [("POST", 400), ("PATCH", 200)]
    assert synapse.requests_to("PATCH")[0].body["status"] == "FAILED"
    assert reporter.last_error is None


def test_a_status_update_refused_after_logs_taken_is_the_error_said(synapse) -> None:
    """The logs taken, the PATCH refused: ``last_error`` is the PATCH's."""
    reporter = _flush_against(synapse, Fault(status=403, method="PATCH", path="^/jobs/", times=None))
    assert [(r.method, r.status) for r in synapse.requests] == [("POST", 201), ("PATCH", 403)]
    assert "PATCH /jobs/" in str(reporter.last_error), reporter.last_error


@pytest.mark.parametrize("status", [500, 429])
def test_logs_failing_alone_keep_no_final_status_from_the_job(synapse, status) -> None:
    """The logs' endpoint alone failing (a 500, 429s) while ``jobs/`` answers: the PATCH was skipped
    as if the backend were down, its fields dropped, and ``close`` had nothing left to send: the job
    stayed RUNNING in Synapse for good. The final status is sent."""
    job_id = synapse.add_job()
    synapse.add_fault(Fault(status=status, method="POST", path="^/logs/", times=None))
    client = fast_client(synapse, retries=RETRIES)
    try:
        reporter = JobReporter(client, job_id, interval=0.0, pump=False)
        reporter.message("the run's last message")
        reporter.status("FAILED", result={"status": "FAILED"})
        reporter.close()
    finally:
        client.close()
    patches = synapse.requests_to("PATCH")
    assert [r.status for r in patches] == [200], [(r.method, r.status) for r in synapse.requests]
    assert patches[0].body["status"] == "FAILED"
