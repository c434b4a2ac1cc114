"""A job's output manifest changed after the job wrote it (``head -25`` onto it, an edit of the
same size) is not the job's output: ``chain``, ``resume``, the same ``annotate`` again and
``apply`` refuse it in one line naming the file, ``status`` says so. job.json's run record
holds the output's size and checksum, hashed by the commit as it wrote the file.

Real jobs over the README's sample data, the CLI as a subprocess.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from tests.jobs_helpers import run_cli, sample_job_args


def one_line_error(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert "Traceback" not in stderr and len(lines) == 1, stderr
    return lines[0]


@pytest.fixture
def job(tmp_path: Path) -> Path:
    r = run_cli(*sample_job_args("boxes", tmp_path / "out"))
    assert r.returncode == 0, r.stderr
    return tmp_path / "out" / "boxes"


def _output(job: Path) -> Path:
    return job / "manifests" / "output" / "output.manifest"


def test_commit_records_the_output_size_and_checksum(job: Path) -> None:
    data = _output(job).read_bytes()
    run = json.loads((job / "job.json").read_text())["runs"][-1]
    assert run["output"] == {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def test_output_cut_short_is_refused_and_shown(job: Path, tmp_path: Path) -> None:
    out = _output(job)
    whole = out.read_bytes()
    out.write_bytes(b"".join(whole.splitlines(keepends=True)[:25]))  # head -25 onto it
    said = f"the output manifest {out} changed since job 'boxes' wrote it ({len(out.read_bytes()):,} bytes, "
    # before: chain labeled 25 of 50 lines, exit 0; resume and the same annotate said "already COMPLETED"
    chained = run_cli("chain", str(job), "--job-name", "x")
    assert chained.returncode == 1 and one_line_error(chained.stderr).endswith(
        said + f"{len(whole):,} when the job wrote it); it is not the job's output: move it aside and resume "
        "the job to write its own again"), chained.stderr
    assert not (tmp_path / "out" / "x").exists()
    for args in (["resume", str(job)], sample_job_args("boxes", tmp_path / "out")):
        r = run_cli(*args)
        assert r.returncode == 1 and said in one_line_error(r.stderr), r.stderr
    status = run_cli("status", str(job))
    assert status.returncode == 0 and f"changed: {said}" in status.stdout, status.stdout
    as_json = json.loads(run_cli("status", str(job), "--format", "json").stdout)
    assert as_json["output-changed"].startswith(said)
    from totask_manifest._errors import JobError
    from totask_manifest._synapse.apply_plan import load_job_target

    with pytest.raises(JobError, match="changed since job 'boxes' wrote it"):
        load_job_target(str(job))  # apply reads this before it asks Synapse anything
    # moved aside, resume writes the job's own again, and chain takes it
    out.rename(tmp_path / "cut.manifest")
    assert run_cli("resume", str(job)).returncode == 0 and out.read_bytes() == whole
    assert "changed" not in run_cli("status", str(job)).stdout
    assert run_cli("chain", str(job), "--job-name", "x", "--method", "file").returncode == 0


def test_output_edited_in_place_is_refused_by_chain_through_its_checksum(job: Path, tmp_path: Path) -> None:
    out = _output(job)
    whole = out.read_bytes()
    edited = whole.replace(b'"human-annotated":"no"', b'"human-annotated":"ya"')
    assert len(edited) == len(whole) and edited != whole
    out.write_bytes(edited)
    r = run_cli("chain", str(job), "--job-name", "x")
    assert r.returncode == 1, r.stderr
    assert one_line_error(r.stderr).endswith(f"the output manifest {out} changed since job 'boxes' wrote it (its "
                                             "checksum differs from the one the job recorded); it is not the job's "
                                             "output: move it aside and resume the job to write its own again")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["boxes"]
    # before: apply checked the size only, and sent the edited labels to Synapse ("1 would-apply", exit 0)
    from totask_manifest._errors import JobError
    from totask_manifest._synapse.apply_plan import load_job_target

    with pytest.raises(JobError, match=r"\(its checksum differs from the one the job recorded\)"):
        load_job_target(str(job))  # before any request: nothing is sent
    applied = run_cli("apply", str(job), "--dry-run", env={"SYNAPSE_HOST": "http://127.0.0.1:9",
                                                             "SYNAPSE_ACCESS_TOKEN": "never-sent-token"})
    assert applied.returncode == 1 and one_line_error(applied.stderr).endswith(
        "(its checksum differs from the one the job recorded); it is not the job's output: move it aside and "
        "resume the job to write its own again"), applied.stderr


def test_input_edited_after_completion_is_refused_as_for_a_stopped_job(tmp_path: Path) -> None:
    """A COMPLETED job's input edited (same size, another modification time): the same annotate
    again and resume said "already COMPLETED; nothing to do", exit 0, as if the input as it is
    now had been labeled, while a STOPPED job with the same change was refused. Refused alike."""
    import shutil

    from tests.jobs_helpers import REPO

    shutil.copytree(REPO / "sample_data", tmp_path / "data")
    manifest = tmp_path / "data" / "manifest.jsonl"
    args = [arg.replace(str(REPO / "sample_data"), str(tmp_path / "data"))
            for arg in sample_job_args("same", tmp_path / "out")]
    assert run_cli(*args).returncode == 0
    again = run_cli(*args)
    assert again.returncode == 0 and "nothing to do" in again.stderr  # unchanged: reported, not refused
    text = manifest.read_bytes()
    manifest.write_bytes(text.replace(b"img_000.jpg", b"img_999.jpg", 1))
    said = (f"the input manifest {manifest} changed since job 'same' read it (checksum differs): the job's lines "
            "are of the version it read; start a new job from the input as it is now (another --job-name), or put "
            "back the version the job read and resume it")
    for command in (args, ["resume", str(tmp_path / "out" / "same")]):
        r = run_cli(*command)
        assert r.returncode == 1 and one_line_error(r.stderr).endswith(said), r.stderr
    # status said "COMPLETED" and nothing of it; then "put back the version the job read and resume it",
    # though resume has nothing to do for a COMPLETED job: it says what the change means for it
    shown = (f"the input manifest {manifest} changed since job 'same' read it (checksum differs): the job's lines "
             "are of the version it read; the job is COMPLETED, so nothing is left to resume: its output manifest "
             "keeps the labels of that version (chain and apply read it, not the input); to label the input as it "
             "is now, start a new job from it (another --job-name, or clone this one)")
    status = run_cli("status", str(tmp_path / "out" / "same"))
    assert status.returncode == 0 and f"changed: {shown}" in status.stdout.splitlines(), status.stdout
    assert "resume it" not in status.stdout, status.stdout
    as_json = json.loads(run_cli("status", str(tmp_path / "out" / "same"), "--format", "json").stdout)
    assert as_json["status"] == "COMPLETED" and as_json["input-changed"] == shown
    manifest.write_bytes(text)  # the version it read, written again (a new modification time): nothing to do
    assert run_cli("resume", str(tmp_path / "out" / "same")).returncode == 0
    assert "changed" not in run_cli("status", str(tmp_path / "out" / "same")).stdout


@pytest.mark.parametrize("status", ["COMPLETED", "STOPPED"])
def test_status_and_report_of_a_job_whose_output_is_gone_say_so(job: Path, tmp_path: Path, status: str) -> None:
    """A STOPPED job writes its output too (the lines so far): its deleted output was said "not
    written yet", as if no run had written it."""
    record = json.loads((job / "job.json").read_text())
    (job / "job.json").write_text(json.dumps({**record, "status": status}))
    out = _output(job)
    out.unlink()
    said = (f"{out} is gone (deleted or moved since job 'boxes' wrote it); resume writes it again from the "
            f"job's checkpoint (totask-manifest resume {job})")
    # before: "output manifest: PATH" as if there, no key; report "0 samples", exit 0, not a word
    status = run_cli("status", str(job))
    assert status.returncode == 0 and f"output manifest: {said}" in status.stdout.splitlines(), status.stdout
    assert json.loads(run_cli("status", str(job), "--format", "json").stdout)["output-missing"] == said
    page = tmp_path / "gone.html"
    r = run_cli("report", str(job), "-o", str(page))
    assert r.returncode == 0 and r.stderr.splitlines() == [f"output manifest {said}"], r.stderr
    assert "is gone (deleted or moved since job" in page.read_text()
    assert run_cli("resume", str(job)).returncode == 0 and out.exists()  # what the line says resume does
    assert "gone" not in run_cli("status", str(job)).stdout
    assert "output-missing" not in json.loads(run_cli("status", str(job), "--format", "json").stdout)


def test_report_of_a_changed_output_warns_on_stderr_and_on_the_page(job: Path, tmp_path: Path) -> None:
    out = _output(job)
    out.write_bytes(b"".join(out.read_bytes().splitlines(keepends=True)[:25]))  # head -25 onto it
    said = f"the output manifest {out} changed since job 'boxes' wrote it ("
    page = tmp_path / "changed.html"
    r = run_cli("report", str(job), "-o", str(page))
    # before: exit 0, nothing said, a page mixing the job's 49 of 50 with the 25 lines left
    assert r.returncode == 0, r.stderr
    assert len(r.stderr.splitlines()) == 1 and r.stderr.startswith(said), r.stderr
    assert "changed since job &#x27;boxes&#x27; wrote it" in page.read_text()


def test_a_completed_jobs_failures_file_gone_is_said_and_written_again(job: Path, tmp_path: Path) -> None:
    """failures.jsonl deleted or moved after a COMPLETED job wrote it: ``status`` and ``resume``
    printed ``failures: PATH`` as if there, ``resume`` said "nothing to do", and ``report``'s page
    said "Failures (0)" beside failed=1. Now ``status`` says it is gone, ``report`` reads the
    failures from the checkpoint, and ``resume`` writes it again, as for the output manifest."""
    failures = job / "failures.jsonl"
    kept = failures.read_bytes()
    assert len(kept.splitlines()) == 1  # the sample's one broken file
    failures.unlink()
    said = (f"{failures} is gone (deleted or moved since job 'boxes' wrote it); resume writes it again from the "
            f"job's checkpoint (totask-manifest resume {job})")
    status = run_cli("status", str(job))
    assert status.returncode == 0 and f"failures: {said}" in status.stdout.splitlines(), status.stdout
    assert json.loads(run_cli("status", str(job), "--format", "json").stdout)["failures-missing"] == said
    page = tmp_path / "gone.html"
    r = run_cli("report", str(job), "-o", str(page))
    assert r.returncode == 0 and r.stderr.splitlines() == [f"failures {said}"], r.stderr
    assert "Failures (1)" in page.read_text() and "img_013.json is not valid JSON" in page.read_text()
    r = run_cli("resume", str(job))
    assert r.returncode == 0 and f"failures: {failures}" in r.stdout.splitlines(), (r.stdout, r.stderr)
    assert failures.read_bytes() == kept  # what the line says resume does
    assert "failures-missing" not in json.loads(run_cli("status", str(job), "--format", "json").stdout)


def test_resume_with_failures_gone_still_refuses_a_changed_output(job: Path) -> None:
    """A changed output manifest (``head -25`` onto it) is the user's file: ``resume`` refuses it,
    "move it aside". With failures.jsonl also deleted, ``resume`` took the deleted file first and
    wrote both again, exit 0: the edited output was replaced, nothing said."""
    out = _output(job)
    edited = b"".join(out.read_bytes().splitlines(keepends=True)[:25])
    out.write_bytes(edited)
    (job / "failures.jsonl").unlink()
    r = run_cli("resume", str(job))
    assert r.returncode == 1 and "changed since job 'boxes' wrote it" in r.stderr, (r.stdout, r.stderr)
    assert out.read_bytes() == edited


def test_report_of_a_deleted_failures_file_reads_the_checkpoint(job: Path, tmp_path: Path) -> None:
    """With failures.jsonl deleted, the page read its rows from the output manifest (no task ids,
    a note that the job has no failures.jsonl) while stderr said resume writes it again from the
    checkpoint: the job's own rows are the checkpoint's."""
    (job / "failures.jsonl").unlink()
    page = tmp_path / "page.html"
    assert run_cli("report", str(job), "-o", str(page)).returncode == 0
    text = page.read_text()
    assert "Failures (1)" in text and "img_013.json is not valid JSON" in text
    assert "the failed lines of the output manifest" not in text
