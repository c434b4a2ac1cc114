"""A user's mistakes about job folders, through the real CLI: one line, the README's exit code.

A job name already taken by a job with another configuration and a folder of the user's own
files are the same mistake (the name or ``--output`` chosen): both exit 2, the code of the
user's input and usage (before, the first exited 1, the code of invalid data or a failed job).
"""

from __future__ import annotations

from pathlib import Path

from tests.jobs_helpers import REPO, sample_job_args
from tests.test_user_mistakes import cli, one_line_error


def test_a_job_name_taken_by_another_configuration_or_by_user_files_exits_2(tmp_path: Path) -> None:
    out = tmp_path / "out"
    first = cli(*sample_job_args("j", out), cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    other = [*sample_job_args("j", out), "--allow-drop"]
    refused = cli(*other, cwd=tmp_path)
    line = one_line_error(refused, "annotate")
    assert refused.returncode == 2 and "already exists" in line and "differs in: options.allow_drop" in line, line
    chained = cli("chain", str(out / "j"), "--job-name", "j", "--output", str(out), cwd=tmp_path)
    assert chained.returncode == 2 and "already exists" in one_line_error(chained, "chain"), chained.stderr
    (out / "mine").mkdir()
    (out / "mine" / "notes.txt").write_text("mine")
    foreign = cli(*sample_job_args("mine", out), cwd=tmp_path)
    assert foreign.returncode == 2 and "is not a job folder" in one_line_error(foreign, "annotate"), foreign.stderr
    assert sorted(p.name for p in (out / "mine").iterdir()) == ["notes.txt"]
    assert (REPO / "sample_data" / "manifest.jsonl").exists()


def test_resume_writes_again_the_lost_output_manifest_of_a_completed_job(tmp_path: Path) -> None:
    """``chain`` from a COMPLETED job whose output manifest was deleted says "resume it first";
    resume said "nothing to do" and printed the missing file as the output manifest, exit 0, so
    the advice led nowhere. Resume now writes it again from the checkpoint, byte for byte."""
    out = tmp_path / "out"
    assert cli(*sample_job_args("j", out), cwd=tmp_path).returncode == 0
    output = out / "j" / "manifests" / "output" / "output.manifest"
    written = output.read_bytes()
    output.unlink()
    chained = cli("chain", str(out / "j"), "--job-name", "c", "--output", str(out), cwd=tmp_path)
    assert chained.returncode == 1 and "resume it first" in one_line_error(chained, "chain"), chained.stderr
    again = cli("resume", str(out / "j"), cwd=tmp_path)
    assert again.returncode == 0 and "Traceback" not in again.stderr, again.stderr
    assert output.read_bytes() == written
    assert cli("chain", str(out / "j"), "--job-name", "c", "--output", str(out), cwd=tmp_path).returncode == 0


def test_an_empty_output_root_or_input_is_refused_not_the_current_folder(tmp_path: Path) -> None:
    """``--output ''`` wrote the job into the current folder (among the user's files, unasked);
    an empty INPUT was named as "is a folder, not a file: <the current folder>"."""
    args = sample_job_args("j", "")
    refused = cli(*args, cwd=tmp_path)
    assert refused.returncode == 2 and "output root (--output) is empty" in one_line_error(refused, "annotate")
    args[1] = ""
    args[-1] = str(tmp_path / "out")
    refused = cli(*args, cwd=tmp_path)
    assert refused.returncode == 2 and "input manifest (INPUT) is empty" in one_line_error(refused, "annotate")
    assert list(tmp_path.iterdir()) == []
