"""review22 #1-#3: the "backend down" rule (``Breaker``) against a write-side outage, a hung backend
behind a full pool, and a check that is answered 401 or 404, on the fake Synapse server."""

from __future__ import annotations

import pytest

from totask_manifest._synapse.apply import apply_job
from totask_manifest._synapse.apply_report import ROLLBACK_NEEDS_TOKEN
from totask_manifest._synapse.client import PROBE_RETRIES, BackendUnavailable
from totask_manifest._synapse.export import export_tasks
from totask_manifest._synapse.workers import FRESH_OUTAGE
from totask_manifest.testing.builders import fast_client, make_job, seed_tasks, seeded_export
from totask_manifest.testing.recording import Fault

from .support.breaker import kept, write_outage_stop

pytest_plugins = ["totask_manifest.testing.fixtures"]


@pytest.mark.parametrize("concurrency", [1, 32])
def test_a_write_side_outage_stops_apply_and_keeps_the_writes(synapse, files, client, tmp_path, concurrency) -> None:
    """Reads answered, every write after the 2nd 503: each check was answered, so each 3 failures were
    "their tasks' own" and apply ran to its end, exit 0. The writes first sent after the last answered
    write are fresh: ``FRESH_OUTAGE`` of them stop the run (not 3: review25 #1, 3 broken tasks at
    concurrency 1 stopped a healthy run), and the 2 answered writes are kept, not rolled back."""
    pid, export = seeded_export(synapse, files, client, tmp_path, 40)
    synapse.add_fault(Fault(status=503, method="PUT", skip=2, times=None))
    report = apply_job(str(make_job(tmp_path, export)), client=client, concurrency=concurrency)
    stop = write_outage_stop(pid).match(report.fatal or "")
    assert stop is not None and int(stop[1]) >= FRESH_OUTAGE, report.fatal
    assert report.rollback is None and kept(report.summary(), 2), report.summary()


def test_a_hung_backend_is_judged_before_the_windows_reads_have_all_retried(synapse, files, tmp_path) -> None:
    """Every task read and the check hang: the check waited for a connection slot behind the window's
    256 reads and their retries (every read sent 3 times before it went out, ~16 min at the defaults).
    Now it goes out on its own connection, tried ``PROBE_RETRIES`` more times at most (review25 #2: one
    dropped connection is not an outage), while the window's reads are still being retried."""
    pid = seed_tasks(synapse, files, 256)
    client = fast_client(synapse, timeout=0.3, probe_timeout=0.5)
    try:
        synapse.add_fault(Fault(status=None, delay=5.0, method="GET", path=r"^/tasks/\d+/$", times=None))
        synapse.add_fault(Fault(status=None, delay=5.0, method="GET", path=rf"^/projects/{pid}/$", skip=1, times=None))
        with pytest.raises(BackendUnavailable, match=rf"and its check, GET /projects/{pid}/, got no answer either"):
            export_tasks(pid, str(tmp_path / "out.manifest"), client=client)
    finally:
        client.close()
    paths = [r.path for r in synapse.requests if r.method == "GET"]
    reads = [i for i, path in enumerate(paths) if path.startswith("/tasks/")]
    checks = [i for i, path in enumerate(paths) if path == f"/projects/{pid}/"][1:]  # after the start's
    assert len(checks) == 1 + PROBE_RETRIES, checks  # one check, its few tries
    assert checks[0] < reads[-1] and len(reads) < 3 * 256, (checks, len(reads))  # not after every read's 3 tries


def test_a_401_to_the_check_stops_apply_as_the_token_refused(synapse, files, client, tmp_path) -> None:
    """The check's 401 marks the token revoked (the rollback is skipped for it), but the stop said
    "the backend is unavailable ... got no answer either: Synapse answered 401": both now say the token."""
    pid, export = seeded_export(synapse, files, client, tmp_path, 5)
    synapse.add_fault(Fault(status=503, method="PUT", skip=2, times=None))
    synapse.add_fault(Fault(status=401, method="GET", path=rf"^/projects/{pid}/$", times=None))
    report = apply_job(str(make_job(tmp_path, export)), client=client, concurrency=1)
    assert report.fatal is not None and report.fatal.startswith(
        f"the token was refused (Synapse answered 401 Unauthorized to GET /projects/{pid}/"), report.fatal
    assert report.rollback is None and ROLLBACK_NEEDS_TOKEN in report.summary(), report.summary()


def test_a_404_to_the_check_stops_export_as_the_project_gone(synapse, files, client, tmp_path) -> None:
    """A 404 to the check was said as an outage whose check "got no answer either: Synapse answered 404"."""
    pid = seed_tasks(synapse, files, 5)
    synapse.add_fault(Fault(status=503, method="GET", path=r"^/tasks/\d+/$", times=None))
    synapse.add_fault(Fault(status=404, method="GET", path=rf"^/projects/{pid}/$", skip=1, times=None))
    with pytest.raises(BackendUnavailable, match=rf"^project {pid} is gone \(404\); if it still exists in Synapse, "
                                                 "check SYNAPSE_HOST"):
        export_tasks(pid, str(tmp_path / "out.manifest"), client=client)
