"""A user's mistakes about job folders, through the real CLI: one line, the README's exit code.

A job name already taken by a job with another configuration and a folder of the user's own
files are the same mistake (the name or ``--output`` chosen): both exit 2, the code of the
user's input and usage (before, the first exited 1, the code of invalid data or a failed job).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

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
    assert chained.returncode == 2 and "is the job being chained" in one_line_error(chained, "chain"), chained.stderr
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


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_job_folder_copied_under_another_name_is_refused_exit_2_and_status_shows_the_copy(tmp_path: Path) -> None:
    """``cp -r out/j out/b``: resume, chain and clone of ``out/b`` exited 1 (the code of invalid
    data; the folder's name is the user's mistake, as a ``--job-name`` taken: 2), and resume first
    wrote a lease into the copy. ``status out/b`` named the original's output manifest and
    failures, and read the original's lease, as the copy's own."""
    out = tmp_path / "out"
    assert cli(*sample_job_args("j", out), cwd=tmp_path).returncode == 0
    shutil.copytree(out / "j", out / "b", ignore=shutil.ignore_patterns(".lease"))
    original, copy = _tree(out / "j"), _tree(out / "b")
    for args in (("resume", "out/b"), ("chain", "out/b", "--job-name", "c"), ("clone", "out/b", "--job-name", "d")):
        r = cli(*args, cwd=tmp_path)
        line = one_line_error(r, args[0])
        assert r.returncode == 2 and "out/b holds job 'j'" in line and "rename it to 'j'" in line, (r.returncode, line)
    assert _tree(out / "j") == original and _tree(out / "b") == copy and not (out / "b" / ".lease").exists()
    assert sorted(p.name for p in out.iterdir()) == ["b", "j"]
    r = cli("status", "out/b", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert f"output manifest: {out / 'b' / 'manifests' / 'output' / 'output.manifest'}" in r.stdout, r.stdout
    assert f"failures: {out / 'b' / 'failures.jsonl'}" in r.stdout, r.stdout
    assert str(out / "j" / "manifests") not in r.stdout and str(out / "j" / "failures") not in r.stdout
    assert "note: out/b holds job 'j' (job.json)" in r.stdout


def test_a_file_or_folder_inside_a_job_is_named_with_the_job_folder_to_give(tmp_path: Path) -> None:
    """``resume out/j/job.json`` said "cannot take the lease on out/j/job.json: ... is a file, not
    a folder", and status, chain and clone "out/j/job.json/job.json not found": one line now,
    exit 2, naming the job folder to give, and nothing written."""
    out = tmp_path / "out"
    assert cli(*sample_job_args("j", out), cwd=tmp_path).returncode == 0
    before = _tree(out)
    for inside, what in (("job.json", "file"), ("manifests/output/output.manifest", "file"), ("manifests", "folder")):
        for args in (("resume",), ("status",), ("chain", "--job-name", "c"), ("clone", "--job-name", "d")):
            r = cli(args[0], f"out/j/{inside}", *args[1:], cwd=tmp_path)
            line = one_line_error(r, args[0])
            assert r.returncode == 2, (r.returncode, line)
            assert line.endswith(f"out/j/{inside} is not a job folder: it is a {what} inside job folder out/j; "
                                 "give that folder"), line
    r = cli("status", "job.json", cwd=out / "j")
    assert r.returncode == 2 and "inside job folder .;" in one_line_error(r, "status")
    (tmp_path / "loose.json").write_text("{}")
    r = cli("resume", "loose.json", cwd=tmp_path)
    assert r.returncode == 2 and "loose.json is a file, not a job folder" in one_line_error(r, "resume")
    assert _tree(out) == before and sorted(p.name for p in out.iterdir()) == ["j"]
    assert not list(out.rglob(".lease/.lease")) and not (out / "j" / "manifests" / ".lease").exists()


def test_chain_and_clone_refuse_an_empty_output_as_annotate_does(tmp_path: Path) -> None:
    """``chain J --output ''`` wrote the new job under the previous job's output root, as if
    --output had been left out, while ``annotate --output ''`` is refused (exit 2); an empty
    JOB_DIR was "  is not a job folder: /job.json not found"."""
    out = tmp_path / "out"
    assert cli(*sample_job_args("j", out), cwd=tmp_path).returncode == 0
    for command in ("chain", "clone"):
        r = cli(command, str(out / "j"), "--job-name", "n", "--output", "", cwd=tmp_path)
        assert r.returncode == 2 and "output root (--output) is empty" in one_line_error(r, command)
        r = cli(command, "", "--job-name", "n", cwd=tmp_path)
        assert r.returncode == 2 and "job folder (JOB_DIR) is empty" in one_line_error(r, command)
    for command in ("resume", "status"):
        r = cli(command, "", cwd=tmp_path)
        assert r.returncode == 2 and "job folder (JOB_DIR) is empty" in one_line_error(r, command)
    assert sorted(p.name for p in out.iterdir()) == ["j"] and sorted(p.name for p in tmp_path.iterdir()) == ["out"]


@pytest.fixture
def read_only_mount(tmp_path: Path) -> Iterator[tuple[Path, Callable[[], None]]]:
    """A tmpfs at ``tmp_path/ro`` and a call that remounts it read-only (root ignores permission
    bits, so a chmod'ed folder would not do); skipped where mounting is not allowed."""
    mount = tmp_path / "ro"
    mount.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(mount)],
                                           capture_output=True).returncode != 0:
        pytest.skip("needs root and mount(8) to make a read-only file system")

    def read_only() -> None:
        subprocess.run(["mount", "-o", "remount,ro", str(mount)], check=True, capture_output=True)

    try:
        yield mount, read_only
    finally:
        subprocess.run(["umount", str(mount)], check=True, capture_output=True)


def test_a_completed_job_in_a_read_only_folder_is_reported_without_its_lease(
        tmp_path: Path, read_only_mount: tuple[Path, Callable[[], None]]) -> None:
    """The same ``annotate`` again, or ``resume``, on a COMPLETED job whose folder is read-only
    failed taking the lease ("cannot take the lease ... Read-only file system", exit 2), though
    reporting a finished job writes nothing: it reports the job, exit 0."""
    mount, read_only = read_only_mount
    assert cli(*sample_job_args("j", mount), cwd=tmp_path).returncode == 0
    shutil.rmtree(mount / "j" / ".lease")
    before = _tree(mount / "j")
    read_only()
    for args in (sample_job_args("j", mount), ["resume", str(mount / "j")], ["resume", str(mount / "j"),
                                                                              "--concurrency", "3"]):
        r = cli(*args, cwd=tmp_path)
        assert r.returncode == 0 and "Traceback" not in r.stderr, (r.returncode, r.stderr)
        assert f"job {mount / 'j'}: COMPLETED" in r.stdout and "already COMPLETED; nothing to do" in r.stderr
    assert _tree(mount / "j") == before


def test_another_configuration_of_a_stopped_job_is_not_sent_to_resume(tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture) -> None:
    """A stopped job run again with ``--max-body-bytes`` changed was told "resume it", but resume
    takes no such flag and runs the job with its own value: the advice is another --job-name, and
    resume is offered for the job as it is."""
    from totask_manifest._cli import main
    from totask_manifest._jobs.job import Job

    out = tmp_path / "out"
    assert main(sample_job_args("j", out)) == 0
    state = Job.open(str(out / "j")).state
    state.status = "STOPPED"
    state.save()
    capsys.readouterr()
    assert main([*sample_job_args("j", out), "--max-body-bytes", "1000"]) == 2
    assert capsys.readouterr().err == (
        f"totask-manifest annotate: error: job 'j' already exists at {out / 'j'} with another configuration "
        f"(differs in: options.max_body_bytes); choose another --job-name (or resume it with its own: "
        f"totask-manifest resume {out / 'j'})\n")
