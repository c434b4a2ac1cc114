"""An empty path or URL (``''``, or blanks) given to the Python API is refused as the CLI refuses
it (``UsageError`` naming the argument), before anything is read or written. To the file system
it is the current folder: ``convert(m, '', to='yolo')`` wrote a YOLO dataset among the caller's
files, ``convert(m, ' ', to='coco')`` a file named ' ', ``write_report('', 'r.html')`` run inside
a job folder reported that folder, and ``write_report(job, '')`` said ``cannot write : Is a directory``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import orjson
import pytest

import totask_manifest as tm
from totask_manifest.testing.builders import make_job


@pytest.fixture
def job(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A finished job of 2 labeled lines (images that are never fetched), the current folder."""
    export = tmp_path / "export.manifest"
    export.write_bytes(b"".join(orjson.dumps({"source-ref": f"http://127.0.0.1:9/{i}.jpg", "synapse": {"task_id": i}})
                                + b"\n" for i in range(2)))
    job_dir = make_job(tmp_path, export)
    monkeypatch.chdir(job_dir)
    return job_dir


def output_of(job_dir: Path) -> str:
    return str(job_dir / "manifests" / "output" / "output.manifest")


CALLS: dict[str, tuple[Callable[[Path], object], str]] = {
    "write_report job_url": (lambda j: tm.write_report("", "r.html"), "job folder (job_url)"),
    "write_report output": (lambda j: tm.write_report(j, ""), "output (output)"),
    "convert dst yolo": (lambda j: tm.convert(output_of(j), "", to="yolo", label_attribute="boxes"), "output (dst)"),
    "convert dst blank": (lambda j: tm.convert(output_of(j), " ", to="coco", label_attribute="boxes"), "output (dst)"),
    "convert src": (lambda j: tm.convert("", "out.manifest", to="manifest", from_format="coco"), "input (src)"),
    "labeled_only dst": (lambda j: tm.labeled_only(output_of(j), "", "boxes"), "output (dst)"),
    "labeled_only src": (lambda j: tm.labeled_only("", "out.manifest", "boxes"), "input (src)"),
    "write_lines": (lambda j: tm.write_lines("", []), "output (url)"),
    "read_lines": (lambda j: list(tm.read_lines("")), "manifest (url)"),
    "validate_manifest": (lambda j: tm.validate_manifest(""), "manifest (url)"),
    "manifest_stats": (lambda j: tm.manifest_stats(""), "manifest (url)"),
}


@pytest.mark.parametrize("name", CALLS)
def test_an_empty_path_is_a_usage_error_naming_the_argument(job: Path, name: str) -> None:
    call, named = CALLS[name]
    before = sorted(p.name for p in job.iterdir())
    with pytest.raises(tm.UsageError) as caught:
        call(job)
    assert str(caught.value) == f"the {named} is empty: give a path or URL (an empty one is never taken for the current folder)"
    assert sorted(p.name for p in job.iterdir()) == before  # nothing written in the current folder
