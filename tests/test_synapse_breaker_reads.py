"""The "backend down" rule (``Breaker``) on export's reads, on the fake Synapse server: task reads failing
while the project's GET (itself a read) is answered are those tasks' own, skipped and listed, however many;
a hung backend during a large export is stopped soon after its first read times out."""

from __future__ import annotations

import gc
import logging

import pytest

from totask_manifest import ToTaskAction
from totask_manifest._errors import FatalSynapseError
from totask_manifest._synapse.client import PROBE_RETRIES, BackendUnavailable
from totask_manifest._synapse.export import export_tasks
from totask_manifest.testing.builders import fast_client, seed_tasks
from totask_manifest.testing.recording import Fault

pytest_plugins = ["totask_manifest.testing.fixtures"]

READS = r"^/tasks/\d+/$"


@pytest.mark.parametrize("status", [500, 503])
@pytest.mark.parametrize(("concurrency", "answered"), [(1, 0), (32, 0), (32, 60)])
def test_every_task_read_failing_while_the_check_is_answered_is_each_tasks_own(synapse, files, tmp_path, status,
                                                                              concurrency, answered) -> None:
    """The project's GET answered, every task read (after the first ``answered``) ``status`` after its
    retries. The check is itself a read: answered, the failed reads are their tasks' own (the SDK skips
    them), whatever their count or status; 8 in a row stopped the export as an outage of the reads, and a
    window of broken tasks at the listing's end lost the whole export (review12 #4). Skipped and listed;
    an export with none left says so (exit 1), no manifest written."""
    pid = seed_tasks(synapse, files, 200 if answered else 20)
    synapse.add_fault(Fault(status=status, method="GET", path=READS, skip=answered, times=None))
    client = fast_client(synapse, max_concurrency=concurrency)
    out = tmp_path / "out.manifest"
    try:
        if answered:
            assert export_tasks(pid, str(out), client=client).exported == answered
        else:
            with pytest.raises(FatalSynapseError, match=rf"^No tasks could be exported: all 20 listed tasks were "
                                                        rf"skipped \(first: task \d+: Synapse answered {status} "):
                export_tasks(pid, str(out), client=client)
    finally:
        client.close()
    assert out.exists() == bool(answered)


@pytest.mark.parametrize("status", [502, 503])
def test_broken_reads_filling_the_last_window_are_skipped(synapse, files, client, tmp_path, status) -> None:
    """256 + 8 tasks: the first window of 256 all answered; the 8 of the last window (read alone, nothing
    else out to be answered) answer ``status`` every time, the check answered. The export stopped, nothing
    written, the 256 good lines lost (review12 #4); now the 8 are skipped."""
    pid = seed_tasks(synapse, files, 264)
    broken = "|".join(map(str, sorted(synapse.tasks)[256:]))
    synapse.add_fault(Fault(status=status, method="GET", path=rf"^/tasks/({broken})/$", times=None))
    result = export_tasks(pid, str(tmp_path / "out.manifest"), client=client)
    assert result.exported == 256 and len(result.skipped) == 8, result
    assert len((tmp_path / "out.manifest").read_bytes().splitlines()) == 256


@pytest.mark.parametrize("concurrency", [1, 32])
def test_every_task_read_failing_in_runs_export_is_no_outage(synapse, files, tmp_path, concurrency) -> None:
    """``run``'s export (its ``--concurrency`` the client's requests in flight) the same way: every read 503,
    the check answered: FAILED as no task exported, not as the backend down; nothing written to Synapse."""
    pid = seed_tasks(synapse, files, 40)
    synapse.add_fault(Fault(status=503, method="GET", path=READS, times=None))
    client = fast_client(synapse, max_concurrency=concurrency)
    params = {"name": "File_Based_Annotation", "description": "from JSON files", "project": pid, "agent": 1,
              "method": "file", "target_specification_name": "annotation_data", "pre_processor_params": {}}
    try:
        result = ToTaskAction(params=params, output_root=str(tmp_path), client=client, concurrency=concurrency).start()
    finally:
        client.close()
    assert result["status"] == "FAILED" and "No tasks could be exported" in result["message"], result["message"]
    assert "unavailable" not in result["message"], result["message"]
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


def test_a_hung_export_stopped_leaves_no_future_unretrieved(synapse, files, tmp_path, caplog) -> None:
    """The stop cancels the window's reads: their gather, ended by the cancellation, was never awaited,
    so asyncio said "_GatheringFuture exception was never retrieved" with a traceback on stderr when it
    was collected. That is noise for a user, and on CPython 3.11.7 the traceback's formatting (an
    ``ast.parse``) run by the garbage collector inside another ``ast.parse`` broke the interpreter's AST
    state: the next import compiled from source failed with "SystemError: AST constructor recursion
    depth mismatch" (pytest crashed at its session's end)."""
    pid = seed_tasks(synapse, files, 64)
    client = fast_client(synapse, timeout=1.0, probe_timeout=0.1)
    synapse.add_fault(Fault(status=None, delay=60.0, method="GET", path=READS, times=None))
    synapse.add_fault(Fault(status=None, delay=60.0, method="GET", path=rf"^/projects/{pid}/$", skip=1, times=None))
    caplog.set_level(logging.ERROR, logger="asyncio")
    try:
        with pytest.raises(BackendUnavailable, match=r"^the Synapse backend is unavailable"):
            export_tasks(pid, str(tmp_path / "out.manifest"), client=client)
    finally:
        client.close()
    gc.collect()
    unretrieved = [r.getMessage() for r in caplog.records if "never retrieved" in r.getMessage()]
    assert not unretrieved, unretrieved


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
