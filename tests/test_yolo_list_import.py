"""A YOLO folder that lists its images in text files, imported as a manifest (``yolo_list``):
Darknet's layout (CVAT's "YOLO 1.1" export: ``obj.data``, ``obj.names``, ``train.txt`` naming
``data/obj_train_data/x.jpg``, each label file beside its image) and a VOC-style one
(``JPEGImages/`` and ``labels/``). Before, such a folder (no ``images/``) was read as a plain one
and refused, naming a label file whose image lay right beside it: "no image for
obj_train_data/img0.txt under images"."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from PIL import Image

from tests.jobs_helpers import REPO


def _convert(src: Path, dst: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "totask_manifest", "convert", str(src), str(dst), "--to", "manifest"],
                          capture_output=True, text=True, timeout=120, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})


def _image(path: Path, size: tuple[int, int] = (40, 30)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size).save(path)


def _cvat(root: Path, n: int = 3) -> Path:
    for i in range(n):
        _image(root / "obj_train_data" / f"img{i}.jpg", (40 + i, 30))
        if i != 1:  # img1: a background image, no label file
            (root / "obj_train_data" / f"img{i}.txt").write_text(f"0 0.5 0.5 0.{i + 2} 0.2\n")
    (root / "obj.names").write_text("cat\n")
    (root / "obj.data").write_text("classes = 1\ntrain = data/train.txt\nnames = data/obj.names\nbackup = backup/\n")
    (root / "train.txt").write_text("".join(f"data/obj_train_data/img{i}.jpg\n" for i in range(n)))
    return root


def _lines(path: Path) -> list[dict]:
    return [orjson.loads(x) for x in path.read_bytes().splitlines()]


@pytest.mark.slow
def test_a_darknet_folder_is_read_from_its_image_list(tmp_path: Path) -> None:
    src = _cvat(tmp_path / "cvat")
    r = _convert(src, tmp_path / "out.manifest")
    assert r.returncode == 0, r.stderr
    assert "images 3" in r.stdout and "background 1" in r.stdout, r.stdout
    lines = _lines(tmp_path / "out.manifest")
    assert [x["source-ref"] for x in lines] == [str(src / "obj_train_data" / f"img{i}.jpg") for i in range(3)]
    assert [len(x["label"]["annotations"]) for x in lines] == [1, 0, 1]
    assert [x["label"]["image_size"][0]["width"] for x in lines] == [40, 41, 42]
    assert lines[2]["label"]["annotations"][0]["width"] == pytest.approx(0.4 * 42, abs=0.5)
    assert lines[0]["label-metadata"]["class-map"] == {"0": "cat"}


def test_an_image_list_with_a_bom_is_read_as_one_without(tmp_path: Path) -> None:
    """An image list saved by Notepad starts with a UTF-8 BOM: its first path was read with it
    (``\\ufeffa.jpg``) and refused as not in the folder (exit 2), where a label file with a BOM
    is read (``yolo_to_gt`` drops it). A list drops it the same way."""
    from totask_manifest._analytics.convert import convert

    src = tmp_path / "ds"
    _image(src / "a.jpg")
    (src / "a.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    (src / "obj.names").write_text("cat\n")
    (src / "train.txt").write_bytes(b"\xef\xbb\xbfa.jpg\n")
    convert(str(src), str(tmp_path / "out.manifest"), to="manifest")
    (line,) = _lines(tmp_path / "out.manifest")
    assert line["source-ref"] == str(src / "a.jpg") and len(line["label"]["annotations"]) == 1


@pytest.mark.slow
def test_a_voc_style_list_finds_labels_as_darknet_does(tmp_path: Path) -> None:
    src = tmp_path / "voc"
    for i in range(2):
        _image(src / "VOC2007" / "JPEGImages" / f"{i}.jpg")
        (src / "VOC2007" / "labels").mkdir(parents=True, exist_ok=True)
        (src / "VOC2007" / "labels" / f"{i}.txt").write_text("0 0.5 0.5 0.5 0.5\n")
    (src / "classes.txt").write_text("dog\n")
    # an absolute path from the machine that made the list, and an image listed twice (train and valid)
    (src / "train.txt").write_text("/home/someone/voc/VOC2007/JPEGImages/0.jpg\nVOC2007/JPEGImages/1.jpg\n")
    (src / "valid.txt").write_text("VOC2007/JPEGImages/1.jpg\n")
    r = _convert(src, tmp_path / "out.manifest")
    assert r.returncode == 0, r.stderr
    lines = _lines(tmp_path / "out.manifest")
    assert [Path(x["source-ref"]).name for x in lines] == ["0.jpg", "1.jpg"]
    assert all(len(x["label"]["annotations"]) == 1 for x in lines)


@pytest.mark.slow
@pytest.mark.parametrize("stray", ["extra", "gone"], ids=["its-image-unlisted", "its-image-gone"])
def test_a_label_file_no_listed_image_claims_is_refused_not_dropped(tmp_path: Path, stray: str) -> None:
    """A label file whose image is in no list, or among the listed images with no image of its
    own (deleted, never copied): its boxes were left out with nothing said."""
    src = _cvat(tmp_path / "cvat")
    if stray == "extra":
        _image(src / "obj_train_data" / "extra.jpg")
    (src / "obj_train_data" / f"{stray}.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    r = _convert(src, tmp_path / "out.manifest")
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip() == (f"totask-manifest convert: error: {src}: label file obj_train_data/{stray}.txt belongs "
                                "to no image of train.txt; add its image to a list or move it away")
    assert not (tmp_path / "out.manifest").exists()


@pytest.mark.slow
def test_a_listed_image_that_is_not_there_is_named(tmp_path: Path) -> None:
    src = _cvat(tmp_path / "cvat")
    with (src / "train.txt").open("a") as f:
        f.write("data/obj_train_data/gone.jpg\n")
    r = _convert(src, tmp_path / "out.manifest")
    assert r.returncode == 2, r.stderr
    assert "train.txt line 4 names data/obj_train_data/gone.jpg, which is not in the folder" in r.stderr, r.stderr
