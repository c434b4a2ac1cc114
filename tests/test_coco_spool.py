"""The COCO export gathers its annotations in a local temporary file (``TMPDIR``) while it writes
the images, then copies them in. A full disk there was reported as the output's own
(``cannot write /data/coco.json: No space left on device``), naming a folder with plenty of room:
the user freed space in the wrong place. The error now names the temporary folder and what to do."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from totask_manifest._cli import main

LINE = (b'{"source-ref":"s3://b/%d.jpg","boxes":{"image_size":[{"width":100,"height":100,"depth":3}],'
        b'"annotations":[{"class_id":0,"left":1,"top":1,"width":10,"height":10}]},"boxes-metadata":'
        b'{"class-map":{"0":"cat"},"type":"groundtruth/object-detection","human-annotated":"yes",'
        b'"creation-date":"2024-01-01T00:00:00.000000","job-name":"labeling-job/x"}}\n')

needs_dev_full = pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full")


@needs_dev_full
def test_a_full_temporary_folder_is_named_not_the_output(tmp_path: Path, monkeypatch, capsys) -> None:
    src = tmp_path / "in.manifest"
    src.write_bytes(b"".join(LINE % i for i in range(2000)))
    dst = tmp_path / "out" / "coco.json"
    # /dev/full: every write fails with ENOSPC, as on a full TMPDIR
    monkeypatch.setattr(tempfile, "TemporaryFile", lambda **_: open("/dev/full", "w+b"))  # noqa: SIM115
    assert main(["convert", str(src), str(dst), "--to", "coco"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert "No space left on device" in err and "TMPDIR" in err, err
    assert tempfile.gettempdir() in err, err
    assert not dst.exists()
    assert not dst.parent.exists()  # no temporary left beside it, and the folder the writer made removed
