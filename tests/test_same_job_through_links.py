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
    tmp_path = tmp_path.resolve()  # no link of its own in the recorded paths
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


def _sample_copy(folder: Path) -> Path:
    folder.mkdir()
    for name in ("manifest.jsonl", "class_names.txt"):
        (folder / name).write_bytes((SAMPLE / name).read_bytes())
    (folder / "annotations").symlink_to(SAMPLE / "annotations", target_is_directory=True)
    (folder / "images").symlink_to(SAMPLE / "images", target_is_directory=True)
    return folder


def test_a_link_to_another_folder_is_another_job(tmp_path: Path) -> None:
    """Only a link to the very files the job recorded makes the same job: ``data`` pointing at a copy
    elsewhere is another input, even with the same bytes."""
    first, second = _sample_copy(tmp_path / "A"), _sample_copy(tmp_path / "B")
    out = tmp_path / "out"
    code, text = _annotate(first / "manifest.jsonl", SAMPLE / "class_names.txt", out)
    assert code == 0, text
    link = tmp_path / "data"
    link.symlink_to(second, target_is_directory=True)
    code, text = _annotate(link / "manifest.jsonl", SAMPLE / "class_names.txt", out)
    assert code == 2 and "another configuration (differs in: input, options.relative_to)" in text, text


def test_a_job_started_through_a_link_is_not_taken_for_where_the_link_points_now(tmp_path: Path) -> None:
    """The job recorded ``data/manifest.jsonl``, not where ``data`` pointed then: given the target's
    own path later, it cannot tell that ``data`` still points there (it may have been re-pointed),
    so that is refused as another input, as before; the recorded path itself is the same job."""
    tmp_path = tmp_path.resolve()
    first = _sample_copy(tmp_path / "A")
    link = tmp_path / "data"
    link.symlink_to(first, target_is_directory=True)
    out = tmp_path / "out"
    code, text = _annotate(link / "manifest.jsonl", SAMPLE / "class_names.txt", out)
    assert code == 0, text
    code, text = _annotate(first / "manifest.jsonl", SAMPLE / "class_names.txt", out)
    assert code == 2 and "differs in: input, options.relative_to" in text, text
    code, text = _annotate(link / "manifest.jsonl", SAMPLE / "class_names.txt", out)
    assert code == 0 and "nothing to do" in text, text


def test_chain_through_a_link_to_the_job_folder_is_the_same_chained_job(tmp_path: Path) -> None:
    tmp_path = tmp_path.resolve()
    out = tmp_path / "out"
    code, text = _annotate(SAMPLE / "manifest.jsonl", SAMPLE / "class_names.txt", out)
    assert code == 0, text
    linked = tmp_path / "linked"
    linked.symlink_to(out, target_is_directory=True)
    chain = ["--job-name", "j2", "--output", str(out), "--method", "file", "--url-key", "annotation-ref",
             "--class-names", str(SAMPLE / "class_names.txt"), "--native", "convert", "--allow-root", str(SAMPLE)]
    done = run_cli("chain", str(out / "j"), *chain, timeout=300)
    assert done.returncode == 0, done.stderr
    again = run_cli("chain", str(linked / "j"), *chain, timeout=300)
    assert again.returncode == 0 and "nothing to do" in again.stdout + again.stderr, again.stderr
