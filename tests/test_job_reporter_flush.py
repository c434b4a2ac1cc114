"""``JobReporter.flush`` posts the queued logs, then PATCHes the job (the SDK's order). With
Synapse down, the PATCH after failed logs ran its own whole retry schedule (4 attempts over 12 s
by default), so every send, ``close``'s last one included, waited two. A real contract server, or
a closed port on 127.0.0.1."""

from __future__ import annotations

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


def test_logs_to_an_unreachable_host_skip_the_status_update() -> None:
    """Every connection refused: the logs' retry schedule alone, not a second one for the PATCH,
    and ``last_error`` says why the status was not sent."""
    settings = SynapseSettings(host=f"http://127.0.0.1:{closed_port()}", access_token=TOKEN)
    client = SynapseClient(settings, backoff=0.01, max_backoff=0.05, retries=RETRIES)
    try:
        reporter = _flush_with_logs(client, 41)
        sent = client.aio.sent
    finally:
        client.close()
    assert sent == 1 + RETRIES  # the POST's attempts only
    error = reporter.last_error
    assert isinstance(error, BackendUnavailable) and error.unreachable and "POST /logs/" in str(error), error


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
