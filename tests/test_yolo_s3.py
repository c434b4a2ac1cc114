"""A YOLO export to S3 (a moto server on 127.0.0.1): the prefix is held as a job folder is, by
its lease (an S3 conditional write), so a second writer is refused instead of interleaving its
label files with the first one's; a finished export holds exactly the label files it wrote."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from tests.jobs_helpers import REPO
from tests.test_convert_interrupted import boxes
from totask_manifest._analytics.convert import convert
from totask_manifest._errors import ManifestError, StorageError, UsageError

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
    mine = f"{s3.new_bucket()}/mine"  # a user's own data.yaml (no index.jsonl): not overwritten either
    fs.pipe(f"{mine}/data.yaml", b"path: /data/mine\n")
    with pytest.raises(StorageError, match=r"data\.yaml is there and no index\.jsonl"):
        convert(str(tmp_path / "new.manifest"), mine, to="yolo", label_attribute="boxes")
    fs.invalidate_cache()
    assert [p.rsplit("/", 1)[-1] for p in fs.find(mine)] == ["data.yaml"]
    assert fs.cat_file(f"{mine}/data.yaml") == b"path: /data/mine\n"


def _files(fs, dst: str) -> dict[str, bytes]:
    fs.invalidate_cache()
    return {p.split("/ds/", 1)[1]: fs.cat_file(p) for p in fs.find(dst)}


def _moved_boxes(src: Path, dst: Path, *, outside_at: int | None = None) -> Path:
    """``src``'s lines with each box one pixel to the right (every label file changes); the box
    of line ``outside_at`` (0-based) far outside its image: the export stops there, exit 1."""
    out = []
    for i, raw in enumerate(src.read_bytes().splitlines()):
        record = orjson.loads(raw)
        box = record["boxes"]["annotations"][0]
        box["left"] = 10**6 if i == outside_at else box["left"] + 1
        out.append(orjson.dumps(record) + b"\n")
    dst.write_bytes(b"".join(out))
    return dst


@pytest.mark.slow
def test_a_re_export_stopped_by_a_bad_line_leaves_the_previous_export_as_it_was(s3, tmp_path: Path) -> None:
    """Before: the 7 label files written before line 8 stopped it held the new export's boxes,
    beside the previous export's other 5 and its index.jsonl, and nothing said so."""
    fs = s3.filesystem()
    dst = f"{s3.new_bucket()}/ds"
    old = boxes(tmp_path / "old.manifest", 12)
    convert(str(old), dst, to="yolo", label_attribute="boxes")
    before = _files(fs, dst)
    bad = _moved_boxes(old, tmp_path / "bad.manifest", outside_at=7)
    with pytest.raises(ManifestError, match="line 8"):
        convert(str(bad), dst, to="yolo", label_attribute="boxes")
    assert _files(fs, dst) == before  # no stage left either


@pytest.mark.slow
def test_a_re_export_stopped_while_putting_its_files_in_place_is_finished_by_the_next(
        s3, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The store fails once the label files are copied in place: the error names the folder as
    mixed and says to run the export again; the next export to the prefix first finishes the
    stopped one from its stage (even one that itself stops on a bad line), then writes its own."""
    fs = s3.filesystem()
    dst = f"{s3.new_bucket()}/ds"
    old = boxes(tmp_path / "old.manifest", 12)
    convert(str(old), dst, to="yolo", label_attribute="boxes")
    new = _moved_boxes(boxes(tmp_path / "new.manifest", 9), tmp_path / "new.manifest")
    reference = f"{s3.new_bucket()}/ds"
    convert(str(new), reference, to="yolo", label_attribute="boxes")
    wanted = _files(fs, reference)
    copy = type(fs)._cp_file  # s3fs's server-side copy of one object

    async def failing_copy(self, path1, path2, **kwargs):
        if path1.endswith("/data.yaml"):
            raise PermissionError(13, "Access Denied")
        return await copy(self, path1, path2, **kwargs)

    monkeypatch.setattr(type(fs), "_cp_file", failing_copy)
    with pytest.raises(StorageError) as failed:
        convert(str(new), dst, to="yolo", label_attribute="boxes")
    message = str(failed.value)
    assert "Access Denied" in message and f"{dst} now holds part of it and part of the previous one" in message
    assert f"run the convert to {dst} again: it first finishes this export from .yolo-stage-" in message
    mixed = _files(fs, dst)
    assert "index.jsonl" not in mixed  # no index naming files of another export
    assert mixed["labels/f0/g0/img0.txt"] == wanted["labels/f0/g0/img0.txt"]
    monkeypatch.setattr(type(fs), "_cp_file", copy)
    with pytest.raises(ManifestError, match="line 3"):  # the next export stops on its own line 3 ...
        convert(str(_moved_boxes(old, tmp_path / "bad.manifest", outside_at=2)), dst, to="yolo",
                label_attribute="boxes")
    assert _files(fs, dst) == wanted  # ... after finishing the stopped one: that export whole, no stage


@pytest.mark.slow
def test_a_re_export_interrupted_while_putting_its_files_in_place_says_the_folder_is_mixed(
        s3, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """Ctrl-C (or SIGTERM, raised as one) once the label files are copied in place: the store's
    errors named the folder as mixed, but an interrupt is no ``Exception``, so convert said
    'interrupted' alone while the folder held two exports and no index.jsonl. It now says the
    same as for a store error (then is interrupted), and the next export finishes it."""
    fs = s3.filesystem()
    dst = f"{s3.new_bucket()}/ds"
    old = boxes(tmp_path / "old.manifest", 12)
    convert(str(old), dst, to="yolo", label_attribute="boxes")
    new = _moved_boxes(boxes(tmp_path / "new.manifest", 9), tmp_path / "new.manifest")
    from totask_manifest._analytics import yolo_remote

    def interrupted(*_args: object) -> None:  # Ctrl-C reaches the main thread once the labels are in place
        raise KeyboardInterrupt

    monkeypatch.setattr(yolo_remote, "_remove_others", interrupted)
    with caplog.at_level("ERROR", logger="totask_manifest"), pytest.raises(KeyboardInterrupt):
        convert(str(new), dst, to="yolo", label_attribute="boxes")
    said = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert any(f"{dst} now holds part of it and part of the previous one" in m and "interrupted" in m
               and f"run the convert to {dst} again" in m for m in said), said
    assert "index.jsonl" not in _files(fs, dst)
    monkeypatch.undo()
    reference = f"{s3.new_bucket()}/ds"
    convert(str(new), reference, to="yolo", label_attribute="boxes")
    convert(str(new), dst, to="yolo", label_attribute="boxes")
    assert _files(fs, dst) == _files(fs, reference)
