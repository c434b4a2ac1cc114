"""A file size limit (``ulimit -f``) met by an export: said as that limit, in one line naming the
output, exit 2, nothing left behind, and without the TMPDIR advice (the limit is the process's,
so another folder does not help)."""

from __future__ import annotations

import resource
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from tests.jobs_helpers import REPO

LIMIT = 100 * 1024  # ``ulimit -f 100``


def _limited() -> None:
    resource.setrlimit(resource.RLIMIT_FSIZE, (LIMIT, resource.RLIM_INFINITY))


def _boxes_manifest(path: Path, lines: int) -> None:
    """``lines`` lines of five boxes each: a COCO document of them is well over ``LIMIT``."""
    meta = {"class-map": {"0": "cat"}, "objects": [{"confidence": 0.9}] * 5, "type": "groundtruth/object-detection",
            "human-annotated": "no", "creation-date": "2024-01-01T00:00:00.000000", "job-name": "labeling-job/j"}
    label = {"image_size": [{"width": 100, "height": 100, "depth": 3}],
             "annotations": [{"class_id": 0, "left": 1, "top": 1, "width": 3, "height": 3}] * 5}
    path.write_bytes(b"".join(orjson.dumps({"source-ref": f"s3://b/img{i}.jpg", "boxes": label, "boxes-metadata": meta})
                              + b"\n" for i in range(lines)))


@pytest.mark.parametrize(("to", "out"), [("coco", "c.json"), ("yolo", "y")])
def test_an_export_past_the_file_size_limit_says_so_not_set_tmpdir(tmp_path: Path, to: str, out: str) -> None:
    """The COCO export said "the temporary file in /tmp ... failed: File too large; set TMPDIR to
    a folder with room": another folder meets the same limit."""
    _boxes_manifest(tmp_path / "in.manifest", 3000)
    r = subprocess.run([sys.executable, "-m", "totask_manifest", "convert", "in.manifest", out, "--to", to],
                       capture_output=True, text=True, timeout=180, cwd=tmp_path, preexec_fn=_limited,
                       env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and r.stdout == "" and len(lines) == 1, r.stderr
    assert lines[0].startswith(f"totask-manifest convert: error: cannot write {out}: "), r.stderr
    assert f"File too large: this process's file size limit ({LIMIT} bytes, ulimit -f) was reached" in lines[0]
    assert "TMPDIR" not in lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.manifest"]  # nothing half written
