"""A DM v1 document kept as it is names its classes only; exported as boxes it takes the ids the
file's other lines give those names.

The quick start's job without ``--native convert`` keeps ``objects`` documents (``class_id`` 0
circle, 2 triangle) and DM v1 documents (names only) under one attribute. A COCO or YOLO export
numbered the DM names by first sight among the DM documents alone, so a DM 'triangle' got id 0,
and the export stopped with ``category id 1 is 'triangle' here but 'circle' on an earlier line``:
the job's own output could not be exported. A DM name now takes the id an earlier line gave it.
"""

from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest

from totask_manifest._analytics.convert import convert
from totask_manifest._errors import ManifestError

META = {"job-name": "labeling-job/j", "human-annotated": "no", "creation-date": "2026-01-01T00:00:00.000000"}
SIZE = {"image_size": [160, 120, 3]}


def _objects_line(n: int) -> dict:
    objects = [{"id": "o1", "class_id": 0, "type": "bbox", "coordinates": {"x": 1, "y": 2, "width": 10, "height": 10},
                "properties": {"confidence": 0.9, "label": "circle"}},
               {"id": "o2", "class_id": 2, "type": "bbox", "coordinates": {"x": 20, "y": 20, "width": 5, "height": 5},
                "properties": {"confidence": 0.8, "label": "triangle"}}]
    return {"source-ref": f"s3://b/{n}.jpg", **SIZE, "boxes": {"objects": objects},
            "boxes-metadata": {"type": "groundtruth/custom", **META, "format": "synapse-objects"}}


def _dm_line(n: int, *names: str) -> dict:
    ids = [f"bbox{i:06d}" for i in range(len(names))]
    return {"source-ref": f"s3://b/{n}.jpg", **SIZE, "boxes": {
        "extra": {}, "relations": {}, "annotationGroups": {},
        "annotations": {"image_1": [{"id": i, "tool": "bounding_box", "isLocked": False, "isVisible": True,
                                     "classification": {"class": name}} for i, name in zip(ids, names, strict=True)]},
        "annotationsData": {"image_1": [{"id": i, "coordinate": {"x": 3, "y": 4, "width": 6, "height": 7}}
                                        for i in ids]}},
        "boxes-metadata": {"type": "groundtruth/custom", **META, "format": "dm-schema-v1"}}


def _write(path: Path, lines: list[dict]) -> Path:
    path.write_bytes(b"".join(orjson.dumps(x) + b"\n" for x in lines))
    return path


@pytest.mark.parametrize("to", ["coco", "yolo"])
def test_a_dm_name_takes_the_id_an_earlier_line_gave_it(tmp_path: Path, to: str) -> None:
    src = _write(tmp_path / "o.manifest", [_objects_line(1), _dm_line(2, "triangle", "star"), _dm_line(3, "circle")])
    out = tmp_path / ("c.json" if to == "coco" else "yolo")
    convert(str(src), str(out), to=to)
    if to == "coco":
        doc = json.loads(out.read_text())
        assert {c["id"]: c["name"] for c in doc["categories"]} == {1: "circle", 2: "star", 3: "triangle"}
        by_image = {}
        for a in doc["annotations"]:
            by_image.setdefault(a["image_id"], []).append(a["category_id"])
        assert by_image == {1: [1, 3], 2: [3, 2], 3: [1]}  # a new name takes the lowest id no name has
    else:
        assert (out / "classes.txt").read_text().splitlines() == ["circle", "star", "triangle"]
        rows = [(out / "labels" / f"{n}.txt").read_text().split("\n")[:-1] for n in (1, 2, 3)]
        assert [[r.split()[0] for r in f] for f in rows] == [["0", "2"], ["2", "1"], ["0"]]


def test_a_relative_image_is_read_beside_the_manifest_not_in_the_working_directory(tmp_path: Path,
                                                                                   monkeypatch) -> None:
    """A kept document carries no image size, so an export reads the image's header. A relative
    ``source-ref`` was read from the working directory: the same command worked in one folder and
    failed in another (``cannot read images/a.png: no such file``). It is read against the
    manifest's folder, as every reader of this tool resolves a relative reference (masks too)."""
    from PIL import Image

    (tmp_path / "data" / "images").mkdir(parents=True)
    Image.new("RGB", (40, 30)).save(tmp_path / "data" / "images" / "a.png")
    line = _dm_line(1, "cat")
    del line["image_size"]
    line["source-ref"] = "images/a.png"
    src = _write(tmp_path / "data" / "o.manifest", [line])
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    convert(str(src), str(tmp_path / "c.json"), to="coco")
    (image,) = json.loads((tmp_path / "c.json").read_text())["images"]
    assert (image["width"], image["height"], image["file_name"]) == (40, 30, "images/a.png")
    line["source-ref"] = "images/gone.png"
    _write(src, [line])
    with pytest.raises(ManifestError) as caught:
        convert(str(src), str(tmp_path / "c.json"), to="coco")
    assert str(tmp_path / "data" / "images" / "gone.png") in str(caught.value)  # where it looked, said


@pytest.mark.parametrize("to", ["coco", "yolo"])
def test_a_dm_name_does_not_take_an_id_a_later_line_gives_another_name(tmp_path: Path, to: str) -> None:
    """A DM v1 name took the lowest id no *earlier* line gave: with the DM line first, 'triangle'
    took 0, which the later ``objects`` line gives 'circle', and the export was refused
    (``category id 1 is 'circle' here but 'triangle' on an earlier line``). The ids the whole file
    fixes are read first."""
    src = _write(tmp_path / "o.manifest", [_dm_line(1, "triangle", "star"), _objects_line(2)])
    out = tmp_path / ("c.json" if to == "coco" else "yolo")
    convert(str(src), str(out), to=to)
    if to == "coco":
        doc = json.loads(out.read_text())
        assert {c["id"]: c["name"] for c in doc["categories"]} == {1: "circle", 2: "star", 3: "triangle"}
    else:
        assert (out / "classes.txt").read_text().splitlines() == ["circle", "star", "triangle"]
