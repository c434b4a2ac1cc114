"""Smaller promises of the job commands (issue 11): corrupt job files give one line, an empty
label attribute is refused, a killed run's temporaries are removed on resume, tuning options
are not job identity, paths in job.json are absolute, the API defaults like the CLI, and the
README's Python snippets run as printed."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

from tests.jobs_helpers import REPO, TOY, popen_cli, run_cli, write_manifest
from totask_manifest import _api as api
from totask_manifest._errors import TotaskError, UsageError
from totask_manifest._jobs.checkpoint import encode_part, read_part
from totask_manifest._jobs.config import JobConfig
from totask_manifest._jobs.layout import JobLayout

SAMPLE = REPO / "sample_data"


def toy_args(inp, out, job, *extra):
    return ("annotate", str(inp), "--job-name", job, "--label-attribute", "cls", "--task-type",
            "image-classification", "--method", TOY, "--output", str(out), *extra)


def one_line_error(r: subprocess.CompletedProcess, code: int, text: str) -> None:
    assert r.returncode == code, (r.returncode, r.stderr)
    assert "Traceback" not in r.stderr and r.stderr.strip().count("\n") == 0, r.stderr
    assert text in r.stderr, r.stderr


@pytest.fixture
def sample(tmp_path) -> Path:
    """A copy of sample_data in its own folder (the tests change into other folders)."""
    dst = tmp_path / "data" / "sample_data"
    shutil.copytree(SAMPLE, dst, ignore=shutil.ignore_patterns("*.py", "models"))
    return dst


# -- corrupt job files ---------------------------------------------------------------------------

@pytest.mark.parametrize("damage", [
    lambda d: b"{not json",
    lambda d: orjson.dumps({**d, "config": ["a"]}),
    lambda d: orjson.dumps({**d, "status": "WHATEVER"}),
    lambda d: orjson.dumps({**d, "metrics": "lots"}),
    lambda d: orjson.dumps({**d, "config": {**d["config"], "options": 3}}),
    lambda d: orjson.dumps({**d, "input": "x"}),
])
@pytest.mark.slow
def test_a_corrupt_job_json_is_one_line_for_every_command(tmp_path, damage):
    inp = write_manifest(tmp_path / "in.manifest", 6)
    assert run_cli(*toy_args(inp, tmp_path / "out", "j")).returncode in (0, 1)
    job_json = tmp_path / "out" / "j" / "job.json"
    job_json.write_bytes(damage(orjson.loads(job_json.read_bytes())))
    for args in (("status", str(job_json.parent)), ("resume", str(job_json.parent)),
                 ("chain", str(job_json.parent), "--job-name", "k"), ("clone", str(job_json.parent), "--job-name", "k"),
                 ("apply", str(job_json.parent))):
        r = run_cli(*args)
        one_line_error(r, 1, "job.json")


@pytest.mark.slow
def test_a_corrupt_checkpoint_part_is_one_line(tmp_path):
    inp = write_manifest(tmp_path / "in.manifest", 6)
    run_cli(*toy_args(inp, tmp_path / "out", "j"))
    part = JobLayout(str(tmp_path / "out" / "j")).parts()[0]
    Path(part).write_bytes(b'{"i": "zero"}\n')
    job_json = tmp_path / "out" / "j" / "job.json"
    data = orjson.loads(job_json.read_bytes())
    job_json.write_bytes(orjson.dumps({**data, "status": "RUNNING"}))  # status reads a running job's parts
    s = run_cli("status", str(job_json.parent))  # it reads the job: exit 0, the damage in one line of its own
    assert s.returncode == 0 and "Traceback" not in s.stderr, s.stderr
    assert [line for line in s.stdout.splitlines() if "damaged" in line] == [
        f"damaged: checkpoint part {part} is damaged (shorter than a part: torn); its lines are not recorded: "
        "run resume, which sets a damaged last part aside (renamed, kept) and labels its lines again"]
    # the only part, so the last: set aside and its lines labeled again (tests/test_damaged_parts.py)
    r = run_cli("resume", str(job_json.parent))
    assert r.returncode == 0 and "set aside as part-000000.ckpt.damaged" in r.stderr, r.stderr


# -- an empty label attribute -------------------------------------------------------------------

@pytest.mark.slow
def test_an_empty_label_attribute_is_refused_not_replaced(tmp_path):
    inp = write_manifest(tmp_path / "in.manifest", 4)
    out = tmp_path / "out"
    r = run_cli("annotate", str(inp), "--job-name", "j", "--label-attribute", "", "--task-type",
                "image-classification", "--method", TOY, "--output", str(out))
    one_line_error(r, 2, "label attribute")
    assert not (out / "j").exists()
    assert run_cli(*toy_args(inp, out, "base")).returncode in (0, 1)
    for args in (("chain", str(out / "base"), "--job-name", "c", "--label-attribute", ""),
                 ("clone", str(out / "base"), "--job-name", "c", "--label-attribute", "")):
        one_line_error(run_cli(*args), 2, "label attribute")
    with pytest.raises(UsageError):
        api.annotate(JobConfig(job_name="k", input=str(inp), output_root=str(out), label_attribute="",
                               task_type="image-classification", method=TOY))


# -- temporaries left by kill -9 ---------------------------------------------------------------------

@pytest.mark.slow
def test_resume_removes_what_a_killed_run_left(tmp_path):
    inp = write_manifest(tmp_path / "in.manifest", 400)
    out = tmp_path / "out"
    proc = popen_cli(*toy_args(inp, out, "k", "--toy-delay", "0.01", "--checkpoint-every", "5"))
    layout = JobLayout(str(out / "k"))
    deadline = time.monotonic() + 60
    while len(layout.parts()) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    # what a kill during an atomic write leaves: full-size temporaries beside their targets
    planted = [
        out / "k" / "manifests" / "intermediate" / ".tmp-part-000099.jsonl-abc123",
        out / "k" / "manifests" / "output" / ".tmp-output.manifest-def456",
        out / "k" / ".tmp-job.json-0a1b2c",
    ]
    for path in planted:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x" * 100_000)
    r = run_cli("resume", str(out / "k"))
    assert r.returncode == 0, r.stderr
    left = [p for p in (out / "k").rglob(".tmp-*") if ".lease" not in p.parts]
    assert left == []
    assert "left by an interrupted run" in r.stderr


def test_a_memory_job_cleans_its_temporaries_too(tmp_path):
    inp = write_manifest(tmp_path / "in.manifest", 12, bad_every=0)
    root = f"memory://honest-{os.getpid()}"
    config = JobConfig(job_name="m", input=str(inp), output_root=root, label_attribute="cls",
                       task_type="image-classification", method=TOY)
    result = api.annotate(config)
    assert result.status == "COMPLETED"
    import fsspec

    fs = fsspec.filesystem("memory")
    fs.pipe_file(f"/honest-{os.getpid()}/m/manifests/intermediate/.tmp-part-000007.jsonl-ff", b"partial")
    state = api.load_job(result.job_url)
    assert state["status"] == "COMPLETED"
    from totask_manifest._jobs.job import Job

    s = Job.open(result.job_url).state
    s.status = "STOPPED"
    s.save()
    assert api.resume(result.job_url).status == "COMPLETED"
    assert not fs.exists(f"/honest-{os.getpid()}/m/manifests/intermediate/.tmp-part-000007.jsonl-ff")


@pytest.mark.slow
def test_resume_names_an_s3_temporary_it_removed_with_its_scheme(tmp_path, s3):
    """``resume`` said ``removed jobs/root/huge1/manifests/output/.tmp-...``, the key as s3fs holds
    it, where every other line of the run said ``s3://jobs/root/huge1``: a user with a local
    ``jobs/`` folder looked there. The moto S3 server on 127.0.0.1, the CLI in a subprocess."""
    inp = write_manifest(tmp_path / "in.manifest", 12, bad_every=0)
    root = f"{s3.new_bucket()}/root"
    r = run_cli(*toy_args(inp, root, "t"))
    assert r.returncode == 0, r.stderr
    job_url = f"{root}/t"
    planted = f"{job_url}/manifests/output/.tmp-output.manifest-{'ab' * 16}"
    s3.filesystem().pipe_file(planted, b"partial")
    from totask_manifest._jobs.job import Job

    state = Job.open(job_url).state
    state.status = "STOPPED"
    state.save()
    r = run_cli("resume", job_url)
    assert r.returncode == 0, r.stderr
    assert f"removed {planted}, left by an interrupted run" in r.stderr, r.stderr
    assert not s3.filesystem().exists(planted)


# -- tuning options are not job identity ---------------------------------------------------------------

def file_args(sample, out, *extra, url_key: str = "annotation-ref"):
    """The sample's file job (each flag once: a flag given twice is refused, so ``url_key`` is a keyword)."""
    return ("annotate", str(sample / "manifest.jsonl"), "--job-name", "boxes", "--label-attribute", "boxes",
            "--task-type", "object-detection", "--method", "file", "--url-key", url_key,
            "--class-names", str(sample / "class_names.txt"), "--allow-root", str(sample), "--output", str(out),
            *extra)


def stop(job_dir: Path) -> None:
    from totask_manifest._jobs.job import Job

    s = Job.open(str(job_dir)).state
    s.status = "STOPPED"
    s.save()


@pytest.mark.slow
def test_tuning_options_may_change_between_runs_and_on_resume(tmp_path, sample):
    out = tmp_path / "out"
    first = run_cli(*file_args(sample, out, "--concurrency", "2", "--timeout", "10", "--retries", "0"))
    assert first.returncode == 0, first.stderr  # one sample file is broken: a failed line, the job completes
    stop(out / "boxes")
    again = run_cli(*file_args(sample, out, "--concurrency", "7", "--timeout", "3", "--retries", "2",
                               "--checkpoint-every", "9"))
    assert "another configuration" not in again.stderr, again.stderr
    config = orjson.loads((out / "boxes" / "job.json").read_bytes())["config"]
    assert (config["options"]["concurrency"], config["options"]["timeout"], config["options"]["retries"]) == (7, 3.0, 2)
    assert config["checkpoint_every"] == 9
    stop(out / "boxes")
    r = run_cli("resume", str(out / "boxes"), "--concurrency", "5", "--retries", "1", "--checkpoint-every", "4")
    assert "error" not in r.stderr, r.stderr
    config = orjson.loads((out / "boxes" / "job.json").read_bytes())["config"]
    assert (config["options"]["concurrency"], config["options"]["retries"], config["checkpoint_every"]) == (5, 1, 4)
    # what the job writes is still identity
    refused = run_cli(*file_args(sample, out, url_key="source-ref"))
    one_line_error(refused, 2, "another configuration")
    with pytest.raises(UsageError, match="tuning options"):
        api.resume(str(out / "boxes"), options={"url_key": "x"})


# -- absolute paths, API defaults, README -------------------------------------------------------------

def test_api_relative_paths_become_absolute_and_chain_works_from_elsewhere(tmp_path, sample, monkeypatch):
    monkeypatch.chdir(sample.parent)
    result = api.annotate(JobConfig(
        job_name="sample-boxes", input="sample_data/manifest.jsonl", output_root="out/",
        label_attribute="boxes", task_type="object-detection", method="file",
        options={"url_key": "annotation-ref", "allow_root": "sample_data", "class_names": "sample_data/class_names.txt"},
    ))
    assert result.metrics["success"] > 0
    options = api.load_job(result.job_url)["config"]["options"]
    for key in ("allow_root", "class_names", "relative_to"):
        assert os.path.isabs(options[key]), key
    assert options["relative_to"] == str(sample)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    second = api.chain(result.job_url, "second-pass", label_attribute="boxes")  # retry what failed
    assert second.metrics["total"] == result.metrics["failed"]
    assert second.metrics["failed"] == result.metrics["failed"]  # the broken file is still broken, but was read
    failures = Path(second.failures_url).read_text()
    assert "not found" not in failures.lower() and "refused by policy" not in failures, failures


def python_blocks(markdown: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", markdown.read_text(), flags=re.S)


def test_the_readme_python_snippets_run_as_printed(tmp_path, sample):
    blocks = python_blocks(REPO / "README.md")
    assert blocks, "the README has Python snippets"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    for block in blocks:
        r = subprocess.run([sys.executable, "-c", block], cwd=sample.parent, capture_output=True, text=True,
                           env=env, timeout=300)
        assert r.returncode == 0, f"README snippet failed:\n{block}\n{r.stderr[-3000:]}"
    assert (sample.parent / "out" / "reviewed.manifest").exists()


def test_a_busy_job_error_is_a_totask_error_with_exit_code_2(tmp_path):
    from totask_manifest._jobs.lease import JobBusyError, acquire

    lease = acquire(str(tmp_path / "job"), "annotate")
    try:
        with pytest.raises(JobBusyError) as info:
            acquire(str(tmp_path / "job"), "resume")
        assert isinstance(info.value, TotaskError) and info.value.exit_code == 2
    finally:
        lease.release()


# -- the parts on disk decide COMPLETED ------------------------------------------------------------------

def test_counters_that_agree_do_not_complete_a_job_whose_parts_miss_a_line(tmp_path):
    """What two writers used to leave: as many records as selected lines, but one for a line
    that was not selected and none for one that was. The job must not say COMPLETED."""
    inp = write_manifest(tmp_path / "in.manifest", 30, bad_every=0, prelabeled_every=3)
    config = JobConfig(job_name="cover", input=str(inp), output_root=str(tmp_path / "out"), label_attribute="cls",
                       task_type="image-classification", method=TOY, checkpoint_every=4)
    result = api.annotate(config)
    assert result.status == "COMPLETED"
    layout = JobLayout(result.job_url)
    part = Path(layout.parts()[0])
    records = list(read_part(str(part)))
    assert records[0].index == 1 and records[1].index == 2  # line index 0 is prelabeled (not selected)
    records[0].index = 0  # the record moves to an unselected line; line 2 loses its record
    part.write_bytes(encode_part(records))
    from totask_manifest._jobs.job import Job

    s = Job.open(result.job_url).state
    s.status = "STOPPED"
    s.save()
    again = api.resume(result.job_url)
    assert again.status == "FAILED"
    error = api.load_job(result.job_url)["error"]
    assert "1 selected line has no checkpoint record (first: line 2)" in error
    assert "1 checkpoint record names lines that were not selected (first: line 1)" in error


def test_job_json_counters_are_not_saved_at_each_checkpoint_part(tmp_path, monkeypatch):
    """job.json is saved (two fsyncs) as the run starts and ends, and in between at most every
    ``METRICS_SECONDS``, not once a part (20 saves for 10,000 quick lines): the parts say what is
    done, and ``status`` counts a running job from them. Its counters at the end are exact."""
    from totask_manifest._jobs import execute
    from totask_manifest._jobs.state import JobState

    monkeypatch.setattr(execute, "METRICS_SECONDS", 3600.0, raising=False)  # no save from a part
    saved: list[dict] = []
    real = JobState.save
    monkeypatch.setattr(JobState, "save", lambda self: saved.append(dict(self.metrics)) or real(self))
    inp = write_manifest(tmp_path / "in.manifest", 30, bad_every=0)
    config = JobConfig(job_name="quiet", input=str(inp), output_root=str(tmp_path / "out"), label_attribute="cls",
                       task_type="image-classification", method=TOY, checkpoint_every=2)
    result = api.annotate(config)
    assert result.status == "COMPLETED" and len(JobLayout(result.job_url).parts()) == 15
    assert len(saved) == 3  # the job created, its run started, its end
    assert saved[-1] == result.metrics and result.metrics["success"] == 30
    assert api.status(result.job_url)["metrics"] == result.metrics


@pytest.mark.slow
def test_a_line_with_two_checkpoint_records_does_not_complete_the_job(tmp_path):
    """The other half of "exactly once": a line recorded twice (two writers each wrote a part
    holding it) stops the commit with the line named, instead of writing one of the two."""
    inp = write_manifest(tmp_path / "in.manifest", 30, bad_every=0)
    config = JobConfig(job_name="twice", input=str(inp), output_root=str(tmp_path / "out"), label_attribute="cls",
                       task_type="image-classification", method=TOY, checkpoint_every=4)
    result = api.annotate(config)
    assert result.status == "COMPLETED"
    layout = JobLayout(result.job_url)
    first, second = (Path(p) for p in layout.parts()[:2])
    last_of_first = list(read_part(str(first)))[-1]
    second.write_bytes(encode_part([last_of_first, *read_part(str(second))]))  # the line is in both parts now
    from totask_manifest._jobs.job import Job

    s = Job.open(result.job_url).state
    s.status = "STOPPED"
    s.save()
    r = run_cli("resume", result.job_url)
    assert "Traceback" not in r.stderr
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    job = api.load_job(result.job_url)
    assert job["status"] != "COMPLETED"
    assert "out of order at line index" in (job.get("error") or "") + r.stderr


@pytest.mark.slow
def test_a_job_folder_is_resumed_where_it_is_and_a_renamed_one_is_refused(tmp_path):
    """Paths in job.json are absolute, so a folder moved elsewhere must still be worked on where it
    is found, never through the path it was written at: a renamed copy used to be resumed into the
    original folder (or a new one there), redoing every line, while the folder given stayed STOPPED."""
    inp = write_manifest(tmp_path / "in.manifest", 12, bad_every=0)
    (tmp_path / "more").mkdir()
    more = write_manifest(tmp_path / "more" / "in.manifest", 16, bad_every=0)  # 4 new lines (the combined
    # input is kept in the job folder, and must move with it)
    config = JobConfig(job_name="mover", input=str(inp), output_root=str(tmp_path / "first"), label_attribute="cls",
                       task_type="image-classification", method=TOY, checkpoint_every=4, append=[str(more)])
    assert api.annotate(config).status == "COMPLETED"
    job = tmp_path / "first" / "mover"
    for part in JobLayout(str(job)).parts()[1:]:
        Path(part).unlink()  # as if stopped after the first part
    from totask_manifest._jobs.job import Job

    s = Job.open(str(job)).state
    s.status = "STOPPED"
    s.save()
    renamed = tmp_path / "backup-of-mover"
    job.rename(renamed)
    for args in (("resume", str(renamed)), ("chain", str(renamed), "--job-name", "next"),
                 ("clone", str(renamed), "--job-name", "again")):
        one_line_error(run_cli(*args), 2, "must be named after its job: rename it to 'mover'")
    assert not job.exists() and api.status(str(renamed))["status"] == "STOPPED"
    # a symbolic link to the folder under another name is the folder itself: not refused
    job.parent.mkdir(exist_ok=True)
    renamed.rename(job)
    link = tmp_path / "link-to-mover"
    link.symlink_to(job)
    assert run_cli("status", str(link)).returncode == 0
    r = run_cli("clone", str(link), "--job-name", "via-link", "--output", str(tmp_path / "clones"))
    assert r.returncode == 0, r.stderr
    link.unlink()
    job.rename(renamed)
    # under its own name, in any folder, it resumes there
    moved = tmp_path / "second" / "mover"
    moved.parent.mkdir()
    renamed.rename(moved)
    r = run_cli("resume", str(moved))
    assert r.returncode == 0, r.stderr
    done = api.status(str(moved))
    assert done["status"] == "COMPLETED" and done["metrics"]["total"] == 16, done
    assert len((moved / "manifests" / "output" / "output.manifest").read_bytes().splitlines()) == 16
    assert not job.exists()
