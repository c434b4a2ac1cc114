"""The "backend down" rule (``Breaker``) on export's reads, on the fake Synapse server: every task read
failing while the project's GET is answered is a read-side outage, said as one (not tasks skipped);
a hung backend during a large export is stopped soon after its first read times out."""

from __future__ import annotations

import re

import pytest

from totask_manifest import ToTaskAction
from totask_manifest._synapse.client import BackendUnavailable
from totask_manifest._synapse.export import export_tasks
from totask_manifest._synapse.workers import FRESH_OUTAGE
from totask_manifest.testing.builders import fast_client, seed_tasks
from totask_manifest.testing.recording import Fault

pytest_plugins = ["totask_manifest.testing.fixtures"]

READS = r"^/tasks/\d+/$"


def read_outage_stop(pid: int) -> re.Pattern[str]:
    """The stop of an outage of the reads alone: the check (the project's GET) answered, ``FRESH_OUTAGE``
    reads or more in a row failed, none answered since each went out."""
    return re.compile(rf"the Synapse backend is unavailable \((\d+) tasks in a row failed, each sent after it last "
                      rf"answered a request of the same kind, though its check, GET /projects/{pid}/, was answered; "
                      rf"last: Synapse answered 503 Service Unavailable to GET /tasks/\d+/")


@pytest.mark.parametrize(("concurrency", "answered"), [(1, 0), (32, 0), (32, 60)])
def test_every_task_read_failing_stops_export_as_an_outage(synapse, files, tmp_path, concurrency, answered) -> None:
    """The project's GET answered, every task read (after the first ``answered``) 503 after its retries: the
    check's answer made each 3 failures "their tasks' own", and the export read every task to skip them.
    The reads sent after the last one answered are fresh: ``FRESH_OUTAGE`` of them stop the export as an
    outage, nothing written."""
    pid = seed_tasks(synapse, files, 100)
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
