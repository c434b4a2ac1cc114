"""A YOLO export to S3 (a moto server on 127.0.0.1): the prefix is held as a job folder is, by
its lease (an S3 conditional write), so a second writer is refused instead of interleaving its
label files with the first one's; a finished export holds exactly the label files it wrote."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.jobs_helpers import REPO
from tests.test_convert_interrupted import boxes
from totask_manifest._analytics.convert import convert
from totask_manifest._errors import StorageError, UsageError

#: holds ``sys.argv[1]``'s lease as a YOLO export does, says so, then waits to be killed
HOLD_LEASE = """
import sys, time
from totask_manifest._analytics.yolo_output import YoloOutput
with YoloOutput(sys.argv[1]):
    print("held", flush=True)
    time.sleep(300)
"""


def _labels(fs, dst: str) -> list[str]:
    fs.invalidate_cache()
    return sorted(p.split("/labels/", 1)[1] for p in fs.find(f"{dst}/labels"))


@pytest.mark.slow
def test_a_second_writer_of_one_prefix_is_refused_and_a_killed_ones_lease_is_taken_over(s3, tmp_path: Path) -> None:
    """Before: nothing held the prefix; two exports wrote their label files side by side and each
    one's clean-up on an error could remove the other's."""
    fs = s3.filesystem()
    dst = f"{s3.new_bucket()}/ds"
    src = boxes(tmp_path / "in.manifest", 5)
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LEASE, dst], stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        assert holder.stdout.readline() == "held\n"
        with pytest.raises(UsageError, match="another convert is writing the YOLO folder") as refused:
            convert(str(src), dst, to="yolo", label_attribute="boxes")
        assert refused.value.exit_code == 2 and f"pid {holder.pid}" in str(refused.value)
        assert _labels(fs, dst) == []
    finally:
        holder.kill()  # kill -9: its lease stays behind, held by a process that is gone
        holder.wait(30)
    convert(str(src), dst, to="yolo", label_attribute="boxes")  # same host, holder gone: taken over at once
    assert len(_labels(fs, dst)) == 5
    fs.invalidate_cache()
    assert not [p for p in fs.find(dst) if "/.lease/" in p]  # the lease goes with the export that held it


@pytest.mark.slow
def test_a_re_export_with_fewer_images_leaves_only_its_own_label_files(s3, tmp_path: Path) -> None:
    fs = s3.filesystem()
    dst = f"{s3.new_bucket()}/ds"
    convert(str(boxes(tmp_path / "old.manifest", 12)), dst, to="yolo", label_attribute="boxes")
    assert len(_labels(fs, dst)) == 12
    convert(str(boxes(tmp_path / "new.manifest", 4)), dst, to="yolo", label_attribute="boxes")
    assert _labels(fs, dst) == [f"f{i}/g{i % 7}/img{i}.txt" for i in range(4)]  # before: all 12
    theirs = f"{s3.new_bucket()}/theirs"  # a labels/ of no export of this tool's: not replaced
    fs.pipe(f"{theirs}/labels/a.txt", b"0 0.5 0.5 0.1 0.1\n")
    with pytest.raises(StorageError, match=r"labels/ holds labels/a\.txt and no index\.jsonl"):
        convert(str(tmp_path / "new.manifest"), theirs, to="yolo", label_attribute="boxes")
    fs.invalidate_cache()
    assert [p.rsplit("/", 2)[-2:] for p in fs.find(theirs)] == [["labels", "a.txt"]]
