"""A file a job's options name (``--model``, ``--class-names``, a plugin's own file option) replaced
while the job is stopped: ``resume``, and the same ``annotate`` again, refuse it in one line naming
the option, the path and the rule (exit 2), before any line is labeled. Before, ``job.json`` kept
only the path: the job finished COMPLETED with two models (or two sets of class names), one
before the stop and one after, without a word."""

from __future__ import annotations

import hashlib
import signal
from pathlib import Path

import orjson
import pytest

from tests.jobs_helpers import REPO, killed_midway, run_cli, write_manifest
from totask_manifest import JobConfig, annotate
from totask_manifest._jobs.config import JobConfig as _Config
from totask_manifest._jobs.layout import JobLayout

TOY = "tests.support.toy_annotators:NamesFileToy"
RULE = "a job labels every line with the same files"


def _args(inp: Path, out: Path, names: Path, job: str = "j") -> list[str]:
    return ["annotate", str(inp), "--job-name", job, "--label-attribute", "cls", "--task-type",
            "image-classification", "--method", TOY, "--output", str(out), "--toy-names", str(names),
            "--toy-delay", "0.004", "--checkpoint-every", "11"]


def _stopped(tmp_path: Path) -> tuple[list[str], Path, Path]:
    """A toy job reading its class names from a file, stopped by a real SIGINT midway."""
    names = tmp_path / "names.txt"
    names.write_text("cat\ndog\nbird\n")
    args = _args(write_manifest(tmp_path / "in.manifest", 300, bad_every=0), tmp_path / "out", names)
    job = tmp_path / "out" / "j"
    assert killed_midway(args, job, sig=signal.SIGINT) == 128 + signal.SIGINT
    assert orjson.loads((job / "job.json").read_bytes())["status"] == "STOPPED"
    return args, names, job


def stop(_metrics: dict[str, int]) -> None:
    """An ``on_progress`` that stops the job as Ctrl-C does (``annotate`` raises it once recorded)."""
    raise KeyboardInterrupt


def _changed_line(names: Path, job: Path) -> str:
    return (f"totask-manifest resume: error: --toy-names {names} changed since job 'j' started (sha256 differs "
            f"from the one in job.json): {RULE}; restore it, or start a new job for it (totask-manifest clone "
            f"{job} --job-name NEW, or annotate with another --job-name)")


@pytest.mark.slow
def test_resume_refuses_a_file_replaced_after_a_stop_and_goes_on_once_it_is_restored(tmp_path: Path) -> None:
    args, names, job = _stopped(tmp_path)
    parts = len(JobLayout(str(job)).parts())
    names.write_text("CAT\nDOG\nBIRD\n")
    r = run_cli("resume", str(job))
    assert r.returncode == 2, r.stderr
    assert r.stderr.splitlines() == [_changed_line(names, job)]
    record = orjson.loads((job / "job.json").read_bytes())
    assert record["status"] == "STOPPED" and len(JobLayout(str(job)).parts()) == parts  # nothing labeled
    # the same annotate again resumes the job: refused alike
    again = run_cli(*args)
    assert again.returncode == 2, again.stderr
    assert again.stderr.splitlines() == [_changed_line(names, job).replace("resume:", "annotate:")]
    names.write_text("cat\ndog\nbird\n")
    done = run_cli("resume", str(job))
    assert done.returncode == 0, done.stderr
    labels = [orjson.loads(line).get("cls-metadata", {}).get("class-name") for line in
              (job / "manifests" / "output" / "output.manifest").read_bytes().splitlines()]
    assert set(labels) == {"cat", "dog", "bird"}  # one set of names for every line


@pytest.mark.slow
def test_a_file_gone_is_named_and_an_older_jobs_file_is_not_checked(tmp_path: Path) -> None:
    _, names, job = _stopped(tmp_path)
    names.unlink()
    r = run_cli("resume", str(job))
    assert r.returncode == 2, r.stderr
    assert r.stderr.splitlines() == [
        f"totask-manifest resume: error: --toy-names {names} is gone since job 'j' started (job.json records its "
        f"sha256): {RULE}; restore it at that path and resume again, or start a new job with another file (annotate "
        f"with another --job-name, or totask-manifest chain {job} --job-name NEW --toy-names FILE)"]
    # a job an older version wrote records no digest: it resumes as before, with the file as it is
    record = orjson.loads((job / "job.json").read_bytes())
    assert set(record.pop("option-files")) == {"names"}
    (job / "job.json").write_bytes(orjson.dumps(record))
    names.write_text("a\nb\nc\n")
    r = run_cli("resume", str(job))
    assert r.returncode == 0, r.stderr
    assert "option-files" not in orjson.loads((job / "job.json").read_bytes())


@pytest.mark.slow
def test_clone_and_chain_say_the_file_changed_and_record_it_as_it_is_now(tmp_path: Path) -> None:
    _, names, job = _stopped(tmp_path)
    names.write_text("CAT\nDOG\nBIRD\n")
    r = run_cli("clone", str(job), "--job-name", "k")
    assert r.returncode == 0, r.stderr
    said = [line for line in r.stderr.splitlines() if "changed since" in line]
    assert said == [f"--toy-names {names} changed since job 'j' started (sha256 differs from the one in its "
                    "job.json); the new job labels with it as it is now"], r.stderr
    now = {"sha256": hashlib.sha256(b"CAT\nDOG\nBIRD\n").hexdigest(), "size": 13}
    assert orjson.loads((tmp_path / "out" / "k" / "job.json").read_bytes())["option-files"] == {"names": now}
    # chain (the same method: it takes the option over) says it alike, and records the file as it is
    r = run_cli("chain", str(job), "--job-name", "c")
    assert r.returncode == 0, r.stderr
    assert [line for line in r.stderr.splitlines() if "changed since" in line] == said, r.stderr
    assert orjson.loads((tmp_path / "out" / "c" / "job.json").read_bytes())["option-files"] == {"names": now}


@pytest.mark.slow
def test_file_jobs_class_names_are_checked_on_resume(tmp_path: Path) -> None:
    """The tester's case: a file job's ``--class-names`` renamed between two runs (every later line
    failed ``format-invalid``). Stopped in this process (a KeyboardInterrupt from ``on_progress``
    stops the job as Ctrl-C does: the 50 lines are too few to stop a subprocess midway), resumed by
    the CLI."""
    sample = REPO / "sample_data"
    names = tmp_path / "names.txt"
    names.write_bytes((sample / "class_names.txt").read_bytes())
    config = JobConfig(job_name="cn", input=str(sample / "manifest.jsonl"), output_root=str(tmp_path / "out"),
                       label_attribute="boxes", task_type="object-detection", method="file", checkpoint_every=5,
                       options={"url_key": "annotation-ref", "class_names": str(names), "allow_root": str(sample)})

    with pytest.raises(KeyboardInterrupt):  # reaches the caller once the job is recorded STOPPED
        annotate(config, on_progress=stop)
    record = orjson.loads((tmp_path / "out" / "cn" / "job.json").read_bytes())
    assert record["status"] == "STOPPED", record
    recorded = record["option-files"]
    assert set(recorded) == {"class_names"}  # --allow-root is a folder: not recorded
    names.write_text("renamed\n" + names.read_text())
    r = run_cli("resume", str(tmp_path / "out" / "cn"))
    assert r.returncode == 2, r.stderr
    assert r.stderr.splitlines() == [
        f"totask-manifest resume: error: --class-names {names} changed since job 'cn' started (sha256 differs from "
        f"the one in job.json): {RULE}; restore it, or start a new job for it (totask-manifest clone "
        f"{tmp_path / 'out' / 'cn'} --job-name NEW, or annotate with another --job-name)"]


def test_a_model_factory_file_is_recorded_an_imported_module_and_an_endpoint_are_not(tmp_path: Path) -> None:
    """``--model file.py:factory``: its ``.py`` file is what the job is made with; a module found by
    import and an http(s) endpoint are no file of the job's (the README says so)."""
    from totask_manifest._option_files import option_files_for  # here: the other tests run on older code too

    factory = tmp_path / "net.py"
    factory.write_text("def build():\n    return None\n")
    weights = tmp_path / "w.pt"
    weights.write_bytes(b"weights")

    def recorded(model: str, **more: str) -> dict:
        config = _Config(job_name="m", input="in", output_root="out", label_attribute="a",
                         task_type="image-classification", method="inference", options={"model": model, **more})
        return option_files_for(config)

    digest = hashlib.sha256(factory.read_bytes()).hexdigest()
    assert recorded(f"{factory}:build", weights=str(weights)) == {
        "model": {"sha256": digest, "size": factory.stat().st_size},
        "weights": {"sha256": hashlib.sha256(b"weights").hexdigest(), "size": 7}}
    assert recorded("torchvision.models:resnet18") == {}
    assert recorded("http://127.0.0.1:9/predict") == {}


@pytest.mark.slow
def test_a_remote_file_is_known_by_its_etag_and_size(tmp_path: Path, s3) -> None:
    """An S3 (moto) class-names file: no second read of it, what the store says changes with its
    content (its ETag) and its size are recorded and compared."""
    from totask_manifest._errors import JobExistsError
    from totask_manifest._jobs.state import JobState
    from totask_manifest._option_files import option_files_for, refuse_changed_files

    url = s3.new_bucket() + "/names.txt"
    fs = s3.filesystem()
    fs.pipe(url, b"cat\ndog\n")
    config = _Config(job_name="r", input="in", output_root=str(tmp_path), label_attribute="cls",
                     task_type="image-classification", method="file", options={"class_names": url})
    recorded = option_files_for(config)
    assert set(recorded["class_names"]) == {"ETag", "size"} and recorded["class_names"]["size"] == 8
    state = JobState(config=config, status="STOPPED", option_files=recorded)
    refuse_changed_files(state)  # the same object: nothing said
    fs.pipe(url, b"cat\nbird\n")
    with pytest.raises(JobExistsError, match=r"^--class-names s3://.*/names.txt changed since job 'r' started "
                                             r"\(ETag and size differ from the one in job.json\)"):
        refuse_changed_files(state)


def test_status_shows_a_changed_option_file_as_resume_refuses_it(tmp_path: Path) -> None:
    """``status`` of a stopped job whose ``--class-names`` changed: the ``changed:`` line resume
    refuses it with (``option-files-changed`` in --format json); before, not a word. Not for a
    COMPLETED job: it has no line left to label, and resume does not check its files."""
    sample = REPO / "sample_data"
    names = tmp_path / "names.txt"
    names.write_bytes((sample / "class_names.txt").read_bytes())
    config = JobConfig(job_name="cn", input=str(sample / "manifest.jsonl"), output_root=str(tmp_path / "out"),
                       label_attribute="boxes", task_type="object-detection", method="file", checkpoint_every=5,
                       options={"url_key": "annotation-ref", "class_names": str(names), "allow_root": str(sample)})
    with pytest.raises(KeyboardInterrupt):
        annotate(config, on_progress=stop)
    job = tmp_path / "out" / "cn"
    assert "\nchanged:" not in run_cli("status", str(job)).stdout
    names.write_text("renamed\n" + names.read_text())
    refused = run_cli("resume", str(job))
    assert refused.returncode == 2, refused.stderr
    said = refused.stderr.strip().removeprefix("totask-manifest resume: error: ")
    status = run_cli("status", str(job))
    assert status.returncode == 0 and f"changed: {said}" in status.stdout.splitlines(), status.stdout
    assert orjson.loads(run_cli("status", str(job), "--format", "json").stdout)["option-files-changed"] == said
    names.write_bytes((sample / "class_names.txt").read_bytes())
    assert run_cli("resume", str(job)).returncode == 0
    names.write_text("renamed\n")  # COMPLETED: nothing left to label with it
    assert "\nchanged:" not in run_cli("status", str(job)).stdout


@pytest.mark.slow
def test_status_of_a_killed_job_whose_input_changed_says_so(tmp_path: Path) -> None:
    """A job killed (-9) is RUNNING in job.json with no process behind it: ``resume`` refuses its
    changed input, and ``status`` said nothing of it (only a job that was not RUNNING was checked)."""
    inp = write_manifest(tmp_path / "in.manifest", 300, bad_every=0)
    names = tmp_path / "names.txt"
    names.write_text("cat\ndog\nbird\n")
    job = tmp_path / "out" / "j"
    assert killed_midway(_args(inp, tmp_path / "out", names), job) == -signal.SIGKILL
    inp.write_bytes(inp.read_bytes().replace(b"img", b"IMG", 1))
    resumed = run_cli("resume", str(job))
    assert resumed.returncode == 1 and "changed since job 'j' read it" in resumed.stderr, resumed.stderr
    status = run_cli("status", str(job))
    said = [line for line in status.stdout.splitlines() if line.startswith("changed: the input manifest")]
    assert status.returncode == 0 and len(said) == 1 and "status: RUNNING" in status.stdout, status.stdout
    assert said[0].removeprefix("changed: ") in resumed.stderr
