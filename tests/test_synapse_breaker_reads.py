"""The "backend down" rule (``Breaker``) on export's reads, on the fake Synapse server: every task read
failing while the project's GET is answered is a read-side outage, said as one (not tasks skipped);
a hung backend during a large export is stopped soon after its first read times out."""

from __future__ import annotations

import re

import pytest

from totask_manifest import ToTaskAction
from totask_manifest._errors import FatalSynapseError
from totask_manifest._synapse.client import PROBE_RETRIES, BackendUnavailable
from totask_manifest._synapse.export import export_tasks
from totask_manifest._synapse.workers import FRESH_OUTAGE
from totask_manifest.testing.builders import fast_client, seed_tasks
from totask_manifest.testing.recording import Fault

pytest_plugins = ["totask_manifest.testing.fixtures"]

READS = r"^/tasks/\d+/$"


def read_outage_stop(pid: int) -> re.Pattern[str]:
    """The stop of an outage of the reads alone: the check (the project's GET) answered, ``FRESH_OUTAGE``
    reads or more in a row failed, none answered since each was first sent."""
    return re.compile(rf"the Synapse backend is unavailable \((\d+) tasks in a row failed, each with no read "
                      rf"answered since it was first sent, though its check, GET /projects/{pid}/, was answered; "
                      rf"last: Synapse answered 503 Service Unavailable to GET /tasks/\d+/")


@pytest.mark.parametrize(("concurrency", "answered"), [(1, 0), (32, 0), (32, 60)])
def test_every_task_read_failing_stops_export_as_an_outage(synapse, files, tmp_path, concurrency, answered) -> None:
    """The project's GET answered, every task read (after the first ``answered``) 503 after its retries: the
    check's answer made each 3 failures "their tasks' own", and the export read every task to skip them.
    The reads first sent after the last one answered are fresh: ``FRESH_OUTAGE`` of them stop the export as
    an outage, nothing written. (200 tasks: after the 60th answered, the 32 reads out with it are not fresh;
    the later ones are.)"""
    pid = seed_tasks(synapse, files, 200)
    synapse.add_fault(Fault(status=503, method="GET", path=READS, skip=answered, times=None))
    client = fast_client(synapse, max_concurrency=concurrency)
    try:
        with pytest.raises(BackendUnavailable) as stopped:
            export_tasks(pid, str(tmp_path / "out.manifest"), client=client)
    finally:
        client.close()
    stop = read_outage_stop(pid).match(str(stopped.value))
    assert stop is not None and int(stop[1]) >= FRESH_OUTAGE, stopped.value
    assert not (tmp_path / "out.manifest").exists()


@pytest.mark.parametrize("concurrency", [1, 32])
def test_every_task_read_answered_500_is_each_tasks_own(synapse, files, tmp_path, concurrency) -> None:
    """Every task read answered 500, the check answered: the application answered each read with an error,
    no sign of an outage (``OUTAGE_STATUSES``), so the tasks are skipped, and an export with none left says so
    (exit 1), no manifest written."""
    pid = seed_tasks(synapse, files, 20)
    synapse.add_fault(Fault(status=500, method="GET", path=READS, times=None))
    client = fast_client(synapse, max_concurrency=concurrency)
    try:
        with pytest.raises(FatalSynapseError, match=r"^No tasks could be exported: all 20 listed tasks were skipped "
                                                    r"\(first: task \d+: Synapse answered 500 Internal Server Error"):
            export_tasks(pid, str(tmp_path / "out.manifest"), client=client)
    finally:
        client.close()
    assert not (tmp_path / "out.manifest").exists()


@pytest.mark.parametrize("concurrency", [1, 32])
def test_every_task_read_failing_stops_runs_export_as_an_outage(synapse, files, tmp_path, concurrency) -> None:
    """``run``'s export (its ``--concurrency`` the client's requests in flight) stops the same way: FAILED
    as the backend unavailable, not a run of skipped tasks; nothing written to Synapse."""
    pid = seed_tasks(synapse, files, 40)
    synapse.add_fault(Fault(status=503, method="GET", path=READS, times=None))
    client = fast_client(synapse, max_concurrency=concurrency)
    params = {"name": "File_Based_Annotation", "description": "from JSON files", "project": pid, "agent": 1,
              "method": "file", "target_specification_name": "annotation_data", "pre_processor_params": {}}
    try:
        result = ToTaskAction(params=params, output_root=str(tmp_path), client=client, concurrency=concurrency).start()
    finally:
        client.close()
    assert result["status"] == "FAILED" and read_outage_stop(pid).search(result["message"]), result["message"]
    assert "skipped" not in result["message"], result["message"]
    assert synapse.requests_to("PUT") == []


def test_a_hung_backend_is_stopped_at_the_first_read_timeout_not_after_the_retries(synapse, files, tmp_path) -> None:
    """Every task read and the check hang, 256 tasks: the check was asked at the third failed read, each
    failing only after all its tries, and each retry waited for a connection slot behind the window's
    other first tries (8 rounds of the 32 in flight, one read timeout each). Now the first try that times
    out with no read answered asks the check at once: the stop comes within one read timeout and the
    check's time, before any read is sent a second time, and the check is asked once, not per timeout."""
    pid = seed_tasks(synapse, files, 256)
    client = fast_client(synapse, timeout=1.0, probe_timeout=0.1)
    synapse.add_fault(Fault(status=None, delay=60.0, method="GET", path=READS, times=None))
    synapse.add_fault(Fault(status=None, delay=60.0, method="GET", path=rf"^/projects/{pid}/$", skip=1, times=None))
    try:
        with pytest.raises(BackendUnavailable, match=rf"^the Synapse backend is unavailable \(GET /tasks/\d+/ got no "
                                                     rf"answer in time, and its check, GET /projects/{pid}/, got no "
                                                     r"answer either: .*; last: Synapse did not answer GET /tasks/"):
            export_tasks(pid, str(tmp_path / "out.manifest"), client=client)
    finally:
        client.close()
    reads = [r.path for r in synapse.requests_to("GET", READS)]
    assert len(reads) == len(set(reads)) <= 2 * 32, len(reads)  # the stop within the 2nd round of first tries
    assert len(synapse.requests_to("GET", rf"^/projects/{pid}/$")) == 1 + 1 + PROBE_RETRIES  # the start's, one check
    assert not (tmp_path / "out.manifest").exists()


def test_a_read_timing_out_while_the_backend_answers_its_check_is_retried(synapse, files, tmp_path) -> None:
    """The check a timeout asks is answered: one slow read, not the backend down; it is tried again and
    the export ends whole. (One read at a time: the first read's timeout has no read answered since it
    went out; with others in flight and answered, a timeout asks nothing.)"""
    pid = seed_tasks(synapse, files, 40)
    client = fast_client(synapse, timeout=0.5, max_concurrency=1)
    synapse.add_fault(Fault(status=None, delay=3.0, method="GET", path=READS, times=1))
    try:
        result = export_tasks(pid, str(tmp_path / "out.manifest"), client=client)
    finally:
        client.close()
    assert (result.exported, result.skipped) == (40, [])
    assert len(synapse.requests_to("GET", rf"^/projects/{pid}/$")) == 2  # the start's, the timeout's check
