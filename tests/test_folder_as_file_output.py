"""A folder that exists where a command writes one file (``export -o exports``): the atomic write
only failed at its final rename, after the whole work (every task listed and fetched, every line
read). It is refused up front, in one line naming the path, exit 2, with nothing asked of Synapse."""

from __future__ import annotations

import pytest

from tests.jobs_helpers import run_cli
from totask_manifest.testing.builders import seed_tasks

pytest_plugins = ["totask_manifest.testing.fixtures"]

LINE = ('{"source-ref": "a.jpg", "c": 1, "c-metadata": {"class-name": "x", "job-name": "j", "human-annotated": "no", '
        '"type": "groundtruth/image-classification", "creation-date": "2024-01-01T00:00:00"}}\n')


def _refused(done, folder, what: str = "a folder") -> None:
    assert done.returncode == 2, (done.stdout, done.stderr)
    last = done.stderr.strip().splitlines()
    assert len(last) == 1 and last[0].endswith(f"error: cannot write {folder}: it is {what}, not a regular file; "
                                               "give the file's name (a name inside it, say)"), done.stderr
    assert "Traceback" not in done.stderr


def test_export_into_a_folder_is_refused_before_synapse_is_asked(synapse, files, tmp_path) -> None:
    pid = seed_tasks(synapse, files, 3)
    folder = tmp_path / "exports"
    folder.mkdir()
    done = run_cli("export", "--project", str(pid), "-o", str(folder))
    _refused(done, folder)
    assert synapse.requests_to("GET", "^/sdk/tasks/$") == [] and list(folder.iterdir()) == []


@pytest.mark.parametrize("command", ["labeled", "convert", "report"])
def test_a_file_output_that_is_a_folder_is_refused_in_one_line(tmp_path, command) -> None:
    manifest = tmp_path / "m.manifest"
    manifest.write_text(LINE)
    folder = tmp_path / "out"
    folder.mkdir()
    argv = {"labeled": ("labeled", str(manifest), "--label-attribute", "c", "-o", str(folder)),
            "convert": ("convert", str(manifest), str(folder), "--to", "coco", "--label-attribute", "c"),
            "report": ("report", str(tmp_path), "-o", str(folder))}[command]
    _refused(run_cli(*argv), folder)
    assert list(folder.iterdir()) == []


@pytest.mark.parametrize("command", ["labeled", "convert"])
def test_a_link_to_a_folder_is_called_a_link_to_a_folder(tmp_path, command) -> None:
    """A link to a folder was refused as "it is a folder": the user, seeing a link there, was told
    of a folder; the refusal names what stands at the path, and the link and its folder are kept."""
    manifest = tmp_path / "m.manifest"
    manifest.write_text(LINE)
    folder = tmp_path / "out"
    folder.mkdir()
    link = tmp_path / "linkdir"
    link.symlink_to(folder, target_is_directory=True)
    argv = {"labeled": ("labeled", str(manifest), "--label-attribute", "c", "-o", str(link)),
            "convert": ("convert", str(manifest), str(link), "--to", "coco", "--label-attribute", "c")}[command]
    _refused(run_cli(*argv), link, "a link to a folder")
    assert link.is_symlink() and list(folder.iterdir()) == []


@pytest.mark.parametrize("command", ["yolo", "yolo-deeper", "coco", "labeled", "report"])
def test_an_output_below_a_regular_file_is_refused_before_the_work(tmp_path, command) -> None:
    """A regular file where a folder above the output must be (``afile/ds --to yolo``): the YOLO
    export was refused only when it made its folder, after the whole manifest was read, and
    ``report`` after its page was made. Each is refused up front, in the write's words, exit 2: the
    manifest's broken last line is never reached."""
    from tests.jobs_helpers import quick_start_job

    labeled = quick_start_job(tmp_path / "jobs", "q", "convert")
    broken = tmp_path / "broken.manifest"
    broken.write_bytes(labeled.read_bytes() + b"not json\n")
    afile = tmp_path / "afile"
    afile.write_bytes(b"the user's own file\n")
    out = {"yolo": afile / "ds", "yolo-deeper": afile / "sub" / "ds", "coco": afile / "x.json",
           "labeled": afile / "out.jsonl", "report": afile / "r.html"}[command]
    argv = {"yolo": ("convert", str(broken), str(out), "--to", "yolo"),
            "yolo-deeper": ("convert", str(broken), str(out), "--to", "yolo"),
            "coco": ("convert", str(broken), str(out), "--to", "coco"),
            "labeled": ("labeled", str(broken), "--label-attribute", "boxes", "-o", str(out)),
            "report": ("report", str(tmp_path / "jobs" / "q"), "-o", str(out))}[command]
    done = run_cli(*argv)
    assert (done.returncode, done.stdout) == (2, ""), (done.returncode, done.stderr)
    assert done.stderr.strip() == f"totask-manifest {argv[0]}: error: cannot write {out}: {afile} is a file, not a folder"
    assert afile.read_bytes() == b"the user's own file\n"
