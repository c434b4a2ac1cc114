"""A job's own files are written by the job alone: ``report -o`` naming one of them, and ``run``
with an output root inside a job folder, are refused with one line, exit 2, before anything is
written (or, for ``run``, asked of Synapse).

The CLI runs as a real subprocess; Synapse is the contract server on 127.0.0.1.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.jobs_helpers import run_cli
from totask_manifest import ToTaskAction
from totask_manifest._jobs.layout import JOB_OWN_NAMES
from totask_manifest.testing.builders import make_job, seed_tasks

pytest_plugins = ["totask_manifest.testing.fixtures"]


def one_line_error(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert "Traceback" not in stderr, stderr
    assert len(lines) == 1, stderr
    return lines[0]


def snapshot(folder: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def file_params(pid: int) -> dict:
    return {"name": "File_Based_Annotation", "project": pid, "agent": 1, "method": "file",
            "target_specification_name": "annotation_data", "pre_processor_params": {}}


@pytest.fixture
def applied_job(synapse, files, tmp_path: Path) -> Path:
    """What a real run that applied leaves: job.json, manifests/, failures.jsonl, the action's
    record and export, and Synapse's journal."""
    pid = seed_tasks(synapse, files, 3)
    result = ToTaskAction(params=file_params(pid), output_root=str(tmp_path / "runs")).start()
    assert result["status"] == "SUCCEEDED", result
    return tmp_path / "runs" / "file-based-annotation"


def test_report_refuses_every_file_a_real_run_keeps_at_the_top_of_its_job(applied_job: Path) -> None:
    job = applied_job
    kept = sorted(p.name for p in job.iterdir())
    assert {"job.json", "manifests", "failures.jsonl", "totask-run.json", "synapse-export.manifest",
            "synapse-journal.jsonl"} <= set(kept)
    assert set(kept) <= JOB_OWN_NAMES  # the list names all a run leaves
    before = snapshot(job)
    # the names a run leaves, and those it may (a journal's segments, a mask model's masks, the lease)
    for name in sorted(set(kept) | JOB_OWN_NAMES):
        r = run_cli("report", str(job), "-o", str(job / name))
        assert r.returncode == 2, (name, r.stdout + r.stderr)
        line = one_line_error(r.stderr)
        assert str(job) in line and name in line, line
        assert snapshot(job) == before, name  # before: the journal held HTML, rollback "journal corrupt"
    for deeper in ("synapse-journal/x.html", "annotations/r.html", "manifests/r.html", "extra/r.html"):
        r = run_cli("report", str(job), "-o", str(job / deeper))
        assert r.returncode == 2 and one_line_error(r.stderr), (deeper, r.stderr)
    assert snapshot(job) == before and sorted(p.name for p in job.iterdir()) == kept
    r = run_cli("report", str(job), "-o", str(job / "report.html"))  # the README's page: still written
    assert r.returncode == 0, r.stderr
    assert (job / "report.html").read_text().startswith("<!DOCTYPE html>")


@pytest.mark.parametrize("how", ["--output", "TOTASK_OUTPUT_ROOT"])
def test_run_with_an_output_root_inside_a_job_folder_is_refused_before_synapse(synapse, tmp_path: Path,
                                                                                 how: str) -> None:
    manifest = tmp_path / "m.manifest"
    manifest.write_text('{"source-ref": "s3://b/a.jpg"}\n')
    job = make_job(tmp_path / "out", manifest, name="mine")
    before = snapshot(job)
    params = tmp_path / "params.yaml"
    params.write_text("name: InJob\nproject: 1\nagent: 1\nmethod: file\ntarget_specification_name: a\n")
    root = job / "runs"
    if how == "--output":
        r = run_cli("run", str(params), "--output", str(root))
    else:
        r = run_cli("run", str(params), env={"TOTASK_OUTPUT_ROOT": str(root)})
    assert r.returncode == 2, r.stdout + r.stderr
    assert f"is inside job folder {job}" in one_line_error(r.stderr)
    assert r.stdout == ""
    assert synapse.requests == []  # before: the project was exported into the job folder, FAILED exit 1
    assert snapshot(job) == before and not root.exists()
