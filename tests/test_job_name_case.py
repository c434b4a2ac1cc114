"""Job names are not case sensitive: a job named as another job of its output root but for letter
case (``a1`` beside ``A1``) is refused by every command that starts a job (``annotate``,
``chain``, ``clone``, ``run``), exit 2, one line naming the existing job's folder, nothing written.

Both wrote the same ``job-name`` into their labels (``labeling-job/a1``: Ground Truth lower-cases
it, and its job names are unique "not case sensitive"), so lineage, ``stats``' job counts and
chaining could not tell them apart; on a case-insensitive file system (macOS, Windows) their
folders are one. A job given by its very name still carries on (resumed or reported).

The CLI runs as a real subprocess; S3 is moto's server on 127.0.0.1; Synapse the contract server.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from tests.jobs_helpers import REPO, TOY, run_cli, sample_job_args, toy_job_args, write_manifest
from tests.support.s3 import S3Endpoint
from totask_manifest import ToTaskAction
from totask_manifest import _api as api
from totask_manifest._errors import JobExistsError
from totask_manifest._jobs.config import JobConfig
from totask_manifest._jobs.lease import hold
from totask_manifest.testing.builders import make_job

pytest_plugins = ["totask_manifest.testing.fixtures"]


def one_line_error(stderr: str, command: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert "Traceback" not in stderr, stderr
    assert len(lines) == 1 and lines[0].startswith(f"totask-manifest {command}: error: "), stderr
    return lines[0]


def test_annotate_chain_and_clone_refuse_a_name_taken_but_for_case(tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert run_cli(*sample_job_args("A1", out)).returncode == 0
    for command, args in [("annotate", sample_job_args("a1", out)),
                          ("chain", ["chain", str(out / "A1"), "--job-name", "a1"]),
                          ("clone", ["clone", str(out / "A1"), "--job-name", "a1"])]:
        r = run_cli(*args)
        assert r.returncode == 2, (command, r.stderr)
        line = one_line_error(r.stderr, command)
        assert f"job 'a1' differs only in letter case from job 'A1' at {out / 'A1'}" in line, line
        assert "choose another --job-name" in line, line
        assert sorted(p.name for p in out.iterdir()) == ["A1"], command  # no a1 folder, not even a lease
    again = run_cli(*sample_job_args("A1", out))  # the job by its very name: reported, as before
    assert again.returncode == 0 and "already COMPLETED" in again.stderr, again.stderr


def test_a_twin_that_holds_no_job_is_not_a_job_name_taken(tmp_path: Path) -> None:
    """A folder of the user's files named ``A1`` (no job.json, no lease) takes no job name: on a
    case-sensitive disk ``a1`` is another folder, as before."""
    out = tmp_path / "out"
    (out / "A1").mkdir(parents=True)
    (out / "A1" / "notes.txt").write_text("mine")
    assert run_cli(*sample_job_args("a1", out)).returncode == 0
    assert (out / "a1" / "job.json").exists() and sorted(p.name for p in (out / "A1").iterdir()) == ["notes.txt"]


def test_jobs_of_both_cases_from_before_still_carry_on_by_their_own_names(tmp_path: Path) -> None:
    """Two such jobs an earlier version let start side by side: each is still its own job when
    given by its very name (reported COMPLETED), and a third spelling is refused."""
    out, aside = tmp_path / "out", tmp_path / "aside"
    assert run_cli(*sample_job_args("Job-A", out)).returncode == 0
    shutil.move(out / "Job-A", aside)  # as an earlier version allowed: job-a started beside Job-A
    assert run_cli(*sample_job_args("job-a", out)).returncode == 0
    shutil.move(aside, out / "Job-A")
    for name in ("Job-A", "job-a"):
        r = run_cli(*sample_job_args(name, out))
        assert r.returncode == 0 and "already COMPLETED" in r.stderr, (name, r.stderr)
    third = run_cli(*sample_job_args("JOB-A", out))
    assert third.returncode == 2 and "from job 'Job-A' at" in one_line_error(third.stderr, "annotate")
    assert not (out / "JOB-A").exists()


def test_a_job_name_taken_but_for_case_on_s3(tmp_path: Path, s3: S3Endpoint) -> None:
    """On a store (case-sensitive, as Linux): the same refusal, nothing written under the new
    name; a job still starting (its lease alone, while it reads its input) takes its name too."""
    import fsspec

    inp = write_manifest(tmp_path / "in.manifest", 12)
    root = f"{s3.new_bucket()}/jobs"

    def config(name: str) -> JobConfig:
        return JobConfig(job_name=name, input=str(inp), output_root=root, label_attribute="cls",
                         task_type="image-classification", method=TOY)

    assert api.annotate(config("Ons3")).status == "COMPLETED"
    with pytest.raises(JobExistsError, match=rf"^job 'ons3' differs only in letter case from job 'Ons3' at {root}/Ons3: "):
        api.annotate(config("ons3"))
    fs = fsspec.filesystem("s3")
    fs.invalidate_cache()
    assert sorted(p.rsplit("/", 1)[-1] for p in fs.ls(root.removeprefix("s3://"), detail=False)) == ["Ons3"]
    assert api.annotate(config("Ons3")).status == "COMPLETED"  # its own name: reported
    with hold(config("Starting").job_url, "annotate"), pytest.raises(JobExistsError, match="from job 'Starting' at"):
        api.annotate(config("STARTING"))


def test_run_refuses_a_job_name_taken_but_for_case_before_synapse(synapse, tmp_path: Path) -> None:
    """``run``'s job is named after its ``name`` parameter, lower-cased (``Boxes`` -> ``boxes``):
    beside an ``annotate`` job ``Boxes`` it is refused before Synapse is asked anything, exit 2
    (the action itself: a FAILED result saying the same)."""
    manifest = tmp_path / "m.manifest"
    manifest.write_text('{"source-ref": "s3://b/a.jpg"}\n')
    root = tmp_path / "out"
    job = make_job(root, manifest, name="Boxes")
    params = tmp_path / "params.yaml"
    params.write_text("name: Boxes\nproject: 1\nagent: 1\nmethod: file\ntarget_specification_name: a\n")
    r = run_cli("run", str(params), "--output", str(root))
    assert r.returncode == 2 and r.stdout == "", r.stdout + r.stderr
    line = one_line_error(r.stderr, "run")
    assert f"job 'boxes' differs only in letter case from job 'Boxes' at {job}" in line, line
    assert "choose another name (the parameter the job is named after)" in line, line
    result = ToTaskAction(params={"name": "Boxes", "project": 1, "agent": 1, "method": "file",
                                  "target_specification_name": "a"}, output_root=str(root)).start()
    assert result["status"] == "FAILED" and "differs only in letter case from job 'Boxes'" in result["message"], result
    assert synapse.requests == []
    assert sorted(p.name for p in root.iterdir()) == ["Boxes"]


def test_a_job_folder_renamed_in_letter_case_says_case_counts(tmp_path: Path) -> None:
    """``out/A1`` renamed ``out/a1`` is refused by ``resume`` (its folder is not named after its
    job), saying that letter case counts: on a case-insensitive disk (macOS, Windows) that very
    folder is given as ``out/a1`` by a user who typed the name in other case, and "rename it to
    'A1'" alone named what the folder already is."""
    out = tmp_path / "out"
    assert run_cli(*sample_job_args("A1", out)).returncode == 0
    (out / "A1").rename(out / "a1")
    r = run_cli("resume", str(out / "a1"))
    assert r.returncode == 2, r.stderr
    line = one_line_error(r.stderr, "resume")
    assert ("must be named after its job, letter case included: rename it to 'A1' (or give it so, where the "
            "file system ignores case)") in line, line


def _a_stopped_run(job: Path) -> Path:
    """What a ``run`` stopped before its job started leaves (``docs/synapse.md``): its record and
    its export, no ``job.json``, no lease (given back as it stopped)."""
    job.mkdir(parents=True)
    (job / "totask-run.json").write_text("{}")
    (job / "synapse-export.manifest").write_text('{"source-ref": "s3://b/a.jpg"}\n')
    return job


def test_a_run_stopped_before_its_job_started_takes_its_name(tmp_path: Path) -> None:
    """Before, a folder holding only the run's files was no job for this rule: ``annotate
    --job-name File-Based-Annotation`` started beside it, and the run could never be resumed."""
    out = tmp_path / "out"
    run = _a_stopped_run(out / "file-based-annotation")
    r = run_cli(*sample_job_args("File-Based-Annotation", out))
    assert r.returncode == 2, r.stderr
    line = one_line_error(r.stderr, "annotate")
    assert f"job 'File-Based-Annotation' differs only in letter case from job 'file-based-annotation' at {run}" in line
    assert sorted(p.name for p in out.iterdir()) == ["file-based-annotation"]
    assert sorted(p.name for p in run.iterdir()) == ["synapse-export.manifest", "totask-run.json"]


def test_a_stopped_run_beside_a_twin_from_before_is_resumed(synapse, files, tmp_path: Path) -> None:
    """A stopped run whose name an earlier version let a job of the other case take: running the
    same action again is the run itself (its record), not refused (exit 2, for ever, before)."""
    from totask_manifest.testing.builders import seed_tasks

    pid = seed_tasks(synapse, files, 2)
    out = tmp_path / "out"
    run = _a_stopped_run(out / "file-based-annotation")
    manifest = tmp_path / "m.manifest"
    manifest.write_text('{"source-ref": "s3://b/a.jpg"}\n')
    twin = make_job(out, manifest, name="File-Based-Annotation")
    params = tmp_path / "params.yaml"
    params.write_text(f"name: File_Based_Annotation\nproject: {pid}\nagent: 1\nmethod: file\n"
                      "target_specification_name: annotation_data\n")
    r = run_cli("run", str(params), "--output", str(out))
    assert r.returncode == 0 and orjson.loads(r.stdout)["status"] == "SUCCEEDED", r.stdout + r.stderr
    assert (run / "job.json").exists() and sorted(p.name for p in twin.iterdir()) == ["job.json", "manifests"]


def test_a_start_killed_beside_a_twin_from_before_carries_on(tmp_path: Path) -> None:
    """A start of ``a1`` killed while it held its lease (no ``job.json``), beside a job ``A1`` an
    earlier version let start: the same command again is that job itself, and carries on."""
    out, aside = tmp_path / "out", tmp_path / "aside"
    assert run_cli(*sample_job_args("A1", aside)).returncode == 0
    shutil.move(aside / "A1", out / "A1")
    # a real process takes a1's lease and dies holding it (os._exit: no release, as a kill -9)
    code = ("import os, sys; from totask_manifest._jobs.lease import acquire; "
            "acquire(sys.argv[1], 'annotate'); os._exit(0)")
    subprocess.run([sys.executable, "-c", code, str(out / "a1")], check=True, timeout=120,
                   env={**os.environ, "PYTHONPATH": str(REPO)})
    assert sorted(p.name for p in (out / "a1").iterdir()) == [".lease"]
    r = run_cli(*sample_job_args("a1", out))
    assert r.returncode == 0, r.stderr
    assert (out / "a1" / "job.json").exists() and (out / "A1" / "job.json").exists()


def _twin_starts_between_the_checks(monkeypatch: pytest.MonkeyPatch, module: object, start_twin) -> None:
    """Patch ``module``'s ``refuse_case_twin`` only to open the race window: the first check
    (before the lease) is made as it is, then ``start_twin`` starts the job of the other case;
    the check under the lease (``held``) is the real one, untouched."""
    check = module.refuse_case_twin

    def first_then_twin(job_url: str, *args, **kwargs) -> bool:
        verdict = check(job_url, *args, **kwargs)
        if not kwargs.get("held"):
            start_twin()
        return verdict

    monkeypatch.setattr(module, "refuse_case_twin", first_then_twin)


def test_a_twin_started_between_the_two_checks_is_refused_under_the_lease(tmp_path: Path, monkeypatch) -> None:
    """The check under the lease: a job ``A1`` that a second process starts once ``a1`` passed its
    first check refuses ``a1`` (``JobExistsError``, exit 2), and no folder ``a1`` is left."""
    inp, out = write_manifest(tmp_path / "in.manifest", 12), tmp_path / "out"
    out.mkdir()

    def twin() -> None:  # a second process
        started = run_cli(*toy_job_args(inp, out, job="A1"))
        assert started.returncode == 0, started.stderr

    _twin_starts_between_the_checks(monkeypatch, api, twin)
    config = JobConfig(job_name="a1", input=str(inp), output_root=str(out), label_attribute="cls",
                       task_type="image-classification", method=TOY)
    with pytest.raises(JobExistsError, match=rf"^job 'a1' differs only in letter case from job 'A1' at {out / 'A1'}: "):
        api.annotate(config)
    assert sorted(p.name for p in out.iterdir()) == ["A1"]


def test_a_twin_started_before_the_runs_lease_is_refused_under_it(synapse, tmp_path: Path, monkeypatch) -> None:
    """The run's check under its lease, before its record: a job ``Boxes`` started once the run
    ``boxes`` passed its first check refuses the run before Synapse is asked anything, no folder
    ``boxes`` left (the annotation job, under the run's lease, finds the run's record: its own)."""
    from totask_manifest._to_task import action

    manifest = tmp_path / "m.manifest"
    manifest.write_text('{"source-ref": "s3://b/a.jpg"}\n')
    root = tmp_path / "out"
    root.mkdir()
    _twin_starts_between_the_checks(monkeypatch, action, lambda: make_job(root, manifest, name="Boxes"))
    result = ToTaskAction(params={"name": "boxes", "project": 1, "agent": 1, "method": "file",
                                  "target_specification_name": "a"}, output_root=str(root)).start()
    assert result["status"] == "FAILED", result
    assert result["message"].startswith(f"job 'boxes' differs only in letter case from job 'Boxes' at {root / 'Boxes'}")
    assert synapse.requests == []
    assert sorted(p.name for p in root.iterdir()) == ["Boxes"]
