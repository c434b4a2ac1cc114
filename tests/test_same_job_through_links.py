"""The same ``annotate`` through a symbolic link is the same job: local paths (the input, the
appended manifests, the method's path options) count as the files they name. It was refused as
"another configuration (differs in: input, options.relative_to)" when ``/data`` was a link to
``/mnt/disk1/data`` and the job had been started through the other name."""

from __future__ import annotations

from pathlib import Path

from tests.jobs_helpers import REPO, run_cli

SAMPLE = REPO / "sample_data"


def _annotate(manifest: Path, names: Path, out: Path) -> tuple[int, str]:
    done = run_cli("annotate", str(manifest), "--job-name", "j", "--label-attribute", "boxes", "--task-type",
                   "object-detection", "--method", "file", "--url-key", "annotation-ref", "--class-names", str(names),
                   "--native", "convert", "--allow-root", str(SAMPLE), "--output", str(out), timeout=300)
    return done.returncode, done.stdout + done.stderr


def test_the_same_job_through_a_linked_folder_is_that_job_and_another_input_is_refused(tmp_path: Path) -> None:
    link = tmp_path / "data"
    link.symlink_to(SAMPLE, target_is_directory=True)
    names = tmp_path / "names.txt"
    names.symlink_to(SAMPLE / "class_names.txt")
    out = tmp_path / "out"
    code, text = _annotate(SAMPLE / "manifest.jsonl", SAMPLE / "class_names.txt", out)
    assert code == 0, text
    # the input, its folder (relative_to) and --class-names, each through a link: the same job
    code, text = _annotate(link / "manifest.jsonl", names, out)
    assert code == 0 and "already COMPLETED; nothing to do" in text, text
    # another file is another job, named by what differs
    other = tmp_path / "other.manifest"
    other.write_bytes((SAMPLE / "manifest.jsonl").read_bytes().splitlines(keepends=True)[0])
    code, text = _annotate(other, names, out)
    assert code == 2 and "another configuration (differs in: input, options.relative_to)" in text, text
