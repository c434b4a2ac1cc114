"""An output in a folder that takes no file is said one way by every writer: "cannot write OUT:
FOLDER is not a writable folder (why)", exit 2, nothing left behind. ``convert --to yolo /sys/yolo``
said only "Operation not permitted", and ``convert --to coco /proc/x.json`` (``labeled`` too) said
"No such file or directory" of a folder that is there: ``/proc``'s file system makes no new files,
and ``open`` answers ENOENT. ``annotate --output /proc/out`` printed a raw ``[Errno 2]``."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.jobs_helpers import run_cli, sample_job_args

LINE = (b'{"source-ref":"s3://b/a.jpg","boxes":{"image_size":[{"width":10,"height":10,"depth":3}],'
        b'"annotations":[{"class_id":0,"left":1,"top":1,"width":2,"height":2}]},"boxes-metadata":{"class-map":'
        b'{"0":"cat"},"type":"groundtruth/object-detection","human-annotated":"no",'
        b'"creation-date":"2024-01-01T00:00:00","job-name":"j"}}\n')

#: what making a file in /proc says: root gets ENOENT (its file system makes no new files), others EACCES
PROC_WHY = ("its file system makes no new files", "Permission denied")


def _argv(command: str, manifest: Path, out: str) -> list[str]:
    return {"coco": ["convert", str(manifest), out, "--to", "coco"],
            "yolo": ["convert", str(manifest), out, "--to", "yolo"],
            "labeled": ["labeled", str(manifest), "--label-attribute", "boxes", "-o", out]}[command]


def _refused(argv: list[str], cwd: Path) -> str:
    """The one line a refused command ends in, checked: exit 2, no traceback, nothing on stdout."""
    r = run_cli(*argv, cwd=cwd)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and r.stdout == "" and len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    return lines[0]


@pytest.mark.slow
@pytest.mark.parametrize("command", ["coco", "yolo", "labeled"])
@pytest.mark.parametrize("below", ["", "sub/"])
def test_an_immutable_folder_is_named(tmp_path: Path, immutable_folder: Path, command: str, below: str) -> None:
    manifest = tmp_path / "in.manifest"
    manifest.write_bytes(LINE)
    out = f"{immutable_folder}/{below}out"
    line = _refused(_argv(command, manifest, out), tmp_path)
    verb = "labeled" if command == "labeled" else "convert"
    assert line == (f"totask-manifest {verb}: error: cannot write {out}: {immutable_folder} is not a writable folder "
                    "(Operation not permitted)")
    assert list(immutable_folder.iterdir()) == []


@pytest.mark.slow
@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="no /proc file system here")
@pytest.mark.parametrize("command", ["coco", "yolo", "labeled"])
def test_proc_is_no_missing_file(tmp_path: Path, command: str) -> None:
    manifest = tmp_path / "in.manifest"
    manifest.write_bytes(LINE)
    out = "/proc/totask-test/out"
    line = _refused(_argv(command, manifest, out), tmp_path)
    verb = "labeled" if command == "labeled" else "convert"
    if command == "yolo":  # a folder output under /proc is refused by its name, before anything is tried there
        assert line == (f"totask-manifest convert: error: cannot write {out}: it is a name in /proc, the kernel's "
                        "folder of process files, not a place for an output; give a path outside /proc"), line
    else:
        assert line in {f"totask-manifest {verb}: error: cannot write {out}: /proc is not a writable folder ({why})"
                        for why in PROC_WHY}, line
    assert not os.path.exists("/proc/totask-test")


@pytest.mark.slow
@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="no /proc file system here")
def test_annotate_into_proc_names_the_folder(tmp_path: Path) -> None:
    line = _refused(sample_job_args("sample-boxes", "/proc/totask-test"), tmp_path)
    assert line in {"totask-manifest annotate: error: cannot take the lease on /proc/totask-test/sample-boxes: "
                    f"/proc is not a writable folder ({why})" for why in PROC_WHY}, line
