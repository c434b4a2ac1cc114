"""A COCO box export is a ground truth pycocotools takes whole: ``annToMask``/``annToRLE`` read a
``segmentation`` on every annotation, which a box export did not write (KeyError). Each box now
carries the rectangle polygon pycocotools' own ``loadRes`` gives a box result, and the import
reads that outline back as the box it is, exactly: export then import gives the same labels,
while a real polygon is still a polygon (masks by default, refused as a box)."""

from __future__ import annotations

import contextlib
import copy
import io
import json

import numpy as np
import orjson
import pytest

from tests.support.gt import GT_MANIFESTS as GT
from tests.support.gt import real_cases, requires_gt
from totask_manifest._analytics.convert import convert
from totask_manifest._errors import ManifestError
from totask_manifest._formats.coco_regions import is_box_outline
from totask_manifest._formats.native import losses

pycoco = pytest.importorskip("pycocotools.coco")
cocoeval = pytest.importorskip("pycocotools.cocoeval")
mask_utils = pytest.importorskip("pycocotools.mask")

BOXES = {
    "object-detection__aws-amazon-sagemaker-examples__yolov5-sample_output.manifest": "category",
    "object-detection-chained-same-attribute__aws-samples-mxnet-dice-aim403-workshop__output.manifest": "dice-labeling",
    "object-detection-chained-adjustment__YeongJun-Jeon-1to100_Korean__output.manifest": "suneung-korean-layout-detection-v2-chain",
}


def _quiet(fn, *args):
    with contextlib.redirect_stdout(io.StringIO()):
        return fn(*args)


def _evaluate(gt, results, iou_type: str) -> np.ndarray:
    with contextlib.redirect_stdout(io.StringIO()):
        ev = cocoeval.COCOeval(gt, gt.loadRes(results), iou_type)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev.stats


@requires_gt
@pytest.mark.parametrize(("name", "attr"), real_cases(BOXES.items()))
def test_a_box_export_is_a_ground_truth_pycocotools_takes_whole(tmp_path, name, attr):
    out = tmp_path / "coco.json"
    convert(str(GT / name), str(out), to="coco", label_attribute=attr)
    gt = _quiet(pycoco.COCO, str(out))
    anns = gt.loadAnns(gt.getAnnIds())
    assert anns
    # the segmentation loadRes gives a box result that has none: the same numbers, the same order
    bare = [{k: a[k] for k in ("image_id", "category_id", "bbox", "score")} for a in anns]
    given = _quiet(gt.loadRes, copy.deepcopy(bare))
    for ann, res in zip(anns, given.loadAnns(given.getAnnIds()), strict=True):
        assert ann["segmentation"] == res["segmentation"]
        assert ann["area"] == res["area"] and ann["iscrowd"] == 0
        rle = gt.annToRLE(ann)  # KeyError 'segmentation' before
        mask = gt.annToMask(ann)
        assert mask.shape == (gt.imgs[ann["image_id"]]["height"], gt.imgs[ann["image_id"]]["width"])
        assert int(mask.sum()) == int(mask_utils.area(rle))
    # COCOeval of the export against itself: AP 1.0 as boxes and as the boxes' regions
    results = [{**a, "segmentation": copy.deepcopy(a["segmentation"])} for a in anns]
    for iou_type in ("bbox", "segm"):
        stats = _evaluate(gt, copy.deepcopy(results), iou_type)
        assert stats[0] == pytest.approx(1.0), iou_type  # AP@[.5:.95]
        assert stats[1] == pytest.approx(1.0), iou_type  # AP@.5


def _records(path) -> list[dict]:
    return [orjson.loads(raw) for raw in path.read_bytes().splitlines() if raw.strip()]


@requires_gt
@pytest.mark.parametrize(("name", "attr"), real_cases(BOXES.items()))
def test_export_then_import_with_no_option_gives_the_same_boxes(tmp_path, name, attr):
    """The outline is no polygon: the import reads the document as boxes by default, exactly."""
    src = GT / name
    convert(str(src), str(tmp_path / "c.json"), to="coco", label_attribute=attr)
    result = convert(str(tmp_path / "c.json"), str(tmp_path / "back.manifest"), to="manifest")
    assert "dropped" not in result.counts
    want = [r for r in _records(src) if attr in r and "failure-reason" not in r[attr + "-metadata"]]
    got = _records(tmp_path / "back.manifest")
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert g["source-ref"] == w["source-ref"]
        assert g["label"] == w[attr]
        meta = g["label-metadata"]
        assert meta["type"] == "groundtruth/object-detection" and "dropped" not in meta
        # each box keeps its COCO annotation's id (coco-id), the one the export gave it
        assert [{k: v for k, v in o.items() if k != "coco-id"} for o in meta["objects"]] == w[attr + "-metadata"]["objects"]
        used = {str(a["class_id"]) for a in w[attr]["annotations"]}
        assert meta["class-map"] == {k: v for k, v in w[attr + "-metadata"]["class-map"].items() if k in used}


def _doc(segmentation, bbox=(10, 20, 30, 40)) -> dict:
    ann = {
        "id": 1,
        "image_id": 1,
        "category_id": 1,
        "bbox": list(bbox),
        "area": bbox[2] * bbox[3],
        "iscrowd": 0,
    }
    if segmentation is not None:
        ann["segmentation"] = segmentation
    return {
        "images": [{"id": 1, "width": 100, "height": 100, "file_name": "a.jpg"}],
        "annotations": [ann],
        "categories": [{"id": 1, "name": "cat"}],
    }


OUTLINES = {
    "loadRes' order": [[10, 20, 10, 60, 40, 60, 40, 20]],
    "clockwise from the top left": [[10, 20, 40, 20, 40, 60, 10, 60]],
    "from another corner": [[40, 60, 10, 60, 10, 20, 40, 20]],
    "floats": [[10.0, 20.0, 10.0, 60.0, 40.0, 60.0, 40.0, 20.0]],
}
POLYGONS = {
    "a triangle": [[10, 20, 40, 20, 25, 60]],
    "a rectangle that is not the box": [[10, 20, 10, 50, 40, 50, 40, 20]],
    "the corners crossed (a bow tie)": [[10, 20, 40, 60, 10, 60, 40, 20]],
    "two polygons": [[10, 20, 10, 60, 40, 60, 40, 20], [50, 50, 50, 60, 60, 60, 60, 50]],
    "five points": [[10, 20, 10, 60, 40, 60, 40, 20, 10, 20]],
    "an RLE": {"size": [100, 100], "counts": [2000, 10, 7990]},
}


@pytest.mark.parametrize("outline", OUTLINES.values(), ids=OUTLINES.keys())
def test_a_box_outline_reads_as_the_box_it_is(tmp_path, outline):
    doc = _doc(outline)
    assert is_box_outline(doc["annotations"][0])
    assert not losses(doc, "coco", "object-detection")  # a file job's COCO file: nothing lost either
    (tmp_path / "c.json").write_text(json.dumps(doc))
    result = convert(str(tmp_path / "c.json"), str(tmp_path / "m.manifest"), to="manifest")
    assert "dropped" not in result.counts
    (line,) = _records(tmp_path / "m.manifest")
    assert line["label"]["annotations"] == [{"class_id": 0, "left": 10, "top": 20, "width": 30, "height": 40}]
    assert "dropped" not in line["label-metadata"]


@pytest.mark.parametrize("polygon", POLYGONS.values(), ids=POLYGONS.keys())
def test_a_real_polygon_stays_a_polygon(tmp_path, polygon):
    doc = _doc(polygon)
    assert not is_box_outline(doc["annotations"][0])
    assert losses(doc, "coco", "object-detection") == {"segmentation": 1}
    (tmp_path / "c.json").write_text(json.dumps(doc))
    convert(str(tmp_path / "c.json"), str(tmp_path / "m.manifest"), to="manifest")  # masks by default
    (line,) = _records(tmp_path / "m.manifest")
    assert line["label-ref-metadata"]["type"] == "groundtruth/semantic-segmentation"
    with pytest.raises(ManifestError, match="would drop 1 segmentation"):
        convert(
            str(tmp_path / "c.json"),
            str(tmp_path / "b.manifest"),
            to="manifest",
            task_type="object-detection",
        )


@pytest.mark.parametrize(
    "bad",
    [
        [[10, 20, 10, 60, 40, 60, 40, True]],
        [[10, 20, 10, 60, 40, 60, 40, "20"]],
        [[10, 20, 10, 60, 40, 60, 40]],
        [10, 20, 10, 60, 40, 60, 40, 20],
    ],
)
def test_an_outline_of_other_json_is_no_box_outline(bad):
    assert not is_box_outline(_doc(bad)["annotations"][0])
    assert not is_box_outline(
        {"segmentation": [[10, 20, 10, 60, 40, 60, 40, 20]], "bbox": [10, 20, 30, True]}
    )
    assert not is_box_outline({"segmentation": [[10, 20, 10, 60, 40, 60, 40, 20]]})


def test_a_mixed_document_is_read_as_masks_its_outlines_painted_as_boxes(tmp_path):
    doc = _doc(POLYGONS["a triangle"])
    doc["annotations"].append(
        {**_doc(OUTLINES["loadRes' order"])["annotations"][0], "id": 2, "category_id": 1}
    )
    (tmp_path / "c.json").write_text(json.dumps(doc))
    convert(str(tmp_path / "c.json"), str(tmp_path / "m.manifest"), to="manifest")
    (line,) = _records(tmp_path / "m.manifest")
    assert line["label-ref-metadata"]["type"] == "groundtruth/semantic-segmentation"
