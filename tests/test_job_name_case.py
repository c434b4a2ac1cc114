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

import shutil
from pathlib import Path

import pytest

from tests.jobs_helpers import TOY, run_cli, sample_job_args, write_manifest
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
