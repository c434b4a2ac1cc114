"""``run`` (the ToTask action) holds the job folder's lease from the export on, as two real
processes show. Before, the lease was first taken by the annotation job, so a second ``run`` of
the same folder started during the first one's export exported again (the first one's job start
removed the second's export temporary under it: "cannot write .../synapse-export.manifest: No
such file or directory"), and one with other parameters moved the folder to the archive from
under the first."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

from tests.jobs_helpers import REPO
from totask_manifest.testing.synapse_server import SynapseServer


def _run(params: Path, out: Path, server: SynapseServer) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "totask_manifest", "run", str(params), "--output", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=params.parent,
                            env={**os.environ, "PYTHONPATH": str(REPO), "SYNAPSE_HOST": server.url,
                                 "SYNAPSE_ACCESS_TOKEN": "tok-1"})


def wait_for_export(run: subprocess.Popen, job: Path) -> None:
    """Return once ``run`` is writing its export into ``job`` (its temporary is there)."""
    deadline = time.monotonic() + 120
    while not (job.is_dir() and list(job.glob(".tmp-synapse-export.manifest-*"))):
        assert run.poll() is None, run.communicate()
        assert time.monotonic() < deadline, "the run did not start its export within 120 s"
        time.sleep(0.01)


def stop(run: subprocess.Popen | None, server: SynapseServer) -> None:
    """Let the held export go, stop ``run`` as Ctrl-C's SIGTERM does (killed if it lingers), then the server."""
    server.held = False
    try:
        if run is not None and run.poll() is None:
            run.send_signal(signal.SIGTERM)
            run.communicate(timeout=120)
    finally:
        if run is not None and run.poll() is None:
            run.kill()
        server.stop()


@pytest.mark.slow
@pytest.mark.parametrize("second_agent", [1, 2])  # 1: the same action (resumable), 2: another one (archives)
def test_a_second_run_during_the_first_ones_export_is_refused(tmp_path: Path, second_agent: int) -> None:
    server = SynapseServer(tokens=("tok-1",)).start()
    first = None
    try:
        pid = server.seed(300)
        server.latency = 0.3  # every answer: the export lasts seconds
        for name, agent in (("a", 1), ("b", second_agent)):
            (tmp_path / f"{name}.json").write_bytes(orjson.dumps({
                "name": "Two_Runs", "project": pid, "agent": agent, "method": "file",
                "target_specification_name": "annotation_data"}))
        out, job = tmp_path / "out", tmp_path / "out" / "two-runs"
        first = _run(tmp_path / "a.json", out, server)
        wait_for_export(first, job)
        server.held = True  # the first run's export waits until the second run has been answered
        second = _run(tmp_path / "b.json", out, server)
        _out, err = second.communicate(timeout=120)
        still_exporting = first.poll() is None and not (job / "synapse-export.manifest").exists()
    finally:
        stop(first, server)
    err = err.decode()
    assert "Fetching task list" not in err and "moved to" not in err, err  # before: it exported (or archived)
    assert second.returncode == 2, err  # a job folder in use: 2 in every command (it was 1 here)
    assert f"job {job} is in use by pid {first.pid} on host" in err and "(run, holder" in err, err
    assert still_exporting, "the first run's export ended before the second run was refused: nothing tested"
    assert job.is_dir() and not (out / ".totask-archive").exists()
    # the run's record ends with the first run's result (stopped by SIGTERM), not the refused one's
    record = orjson.loads((job / "totask-run.json").read_bytes())
    assert "interrupted" in record["result"]["message"] and "in use" not in orjson.dumps(record).decode(), record


def test_a_run_refused_as_busy_leaves_the_live_runs_record_alone(tmp_path: Path) -> None:
    """The same action again (``description`` may differ on a resume) while a run holds the
    folder: refused before its record is touched. Before, ``claim`` rewrote the live run's record
    first (its ``runs`` counted one more, its ``params`` the refused run's) and only the lease
    taken after it refused the run."""
    from totask_manifest._jobs.lease import JobBusyError, acquire
    from totask_manifest._to_task.runs import claim

    job = str(tmp_path / "out" / "two-runs")
    params = {"name": "Two_Runs", "project": 1, "agent": 1, "method": "file"}
    record = Path(claim(job, params, "http://synapse.example"))
    before = record.read_bytes()
    live = acquire(job, "run")  # as another live process holds it (not this thread's ``hold``)
    try:
        with pytest.raises(JobBusyError, match="is in use by pid"):
            claim(job, {**params, "description": "again"}, "http://synapse.example")
        with pytest.raises(JobBusyError, match="is in use by pid"):  # another action: not archived either
            claim(job, {**params, "agent": 2}, "http://synapse.example")
    finally:
        live.release()
    assert record.read_bytes() == before
    assert not (tmp_path / "out" / ".totask-archive").exists()


def test_another_action_archives_an_s3_job_folder_with_its_subfolders(s3) -> None:
    """Archiving on S3 moves file by file: s3fs's recursive ``mv`` of the folder failed on its
    subfolders ("The specified key does not exist"), and a job folder always has ``manifests/``.
    The lease folder stays where the fresh run starts."""
    from totask_manifest._storage import write_bytes_atomic
    from totask_manifest._to_task.runs import claim

    bucket = s3.new_bucket()
    job = f"{bucket}/root/two-runs"
    params = {"name": "Two_Runs", "project": 1, "agent": 1, "method": "file"}
    claim(job, params, "http://synapse.example")
    write_bytes_atomic(f"{job}/manifests/output/output.manifest", b'{"source-ref":"a.jpg"}\n')
    claim(job, {**params, "agent": 2}, "http://synapse.example")
    fs = s3.filesystem()
    root = bucket.removeprefix("s3://") + "/root"
    files = sorted(f.removeprefix(root + "/") for f in fs.find(root))
    [archived] = {f.split("/")[1] for f in files if f.startswith(".totask-archive/")}
    assert files == [f".totask-archive/{archived}/manifests/output/output.manifest",
                     f".totask-archive/{archived}/totask-run.json", "two-runs/totask-run.json"], files
    assert orjson.loads(fs.cat_file(f"{root}/two-runs/totask-run.json"))["params"]["agent"] == 2
