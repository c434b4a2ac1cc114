"""COCO crowd annotations (``iscrowd: 1``) are never read as something else unsaid.

A crowd annotation is one region over many objects (a crowd of people), which COCO tools leave
out of training and evaluation. Read as Ground Truth boxes, a crowd box became one ordinary
object box with exit 0 and nothing said (with an RLE segmentation the refusal named only
``segmentation``, and ``--allow-drop`` kept it as an ordinary box). Now reading boxes refuses it
by name and ``--allow-drop`` leaves it out, recorded in the line's ``dropped``. Read as masks, a
crowd region is painted as its category, as pycocotools' ``annToMask`` paints it. The CLI runs
as a subprocess; the RLE is pycocotools' own.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import orjson
import pytest
from PIL import Image

from tests.jobs_helpers import run_cli
from totask_manifest._formats.detect import to_label

#: a test dependency ([test] extra); without it these checks against pycocotools are skipped
mask_utils = pytest.importorskip("pycocotools.mask")

H, W = 8, 10


def _crowd_mask() -> np.ndarray:
    m = np.zeros((H, W), dtype=np.uint8)
    m[2:5, 3:7] = 1
    return m


def _list_counts(m: np.ndarray) -> list[int]:
    """Uncompressed RLE as COCO writes it for a crowd: column-major runs, zeros first."""
    flat = m.flatten(order="F")
    bounds = np.flatnonzero(np.diff(flat)) + 1
    counts = np.diff(np.concatenate(([0], bounds, [flat.size]))).tolist()
    return [0, *counts] if flat[0] else counts


def _doc(crowd: dict) -> dict:
    """Image 1: the crowd annotation; image 2: one ordinary car; image 3: nothing. Category ids
    3 and 7 (COCO's ids need not start at 0 or 1, nor be contiguous)."""
    return {
        "images": [{"id": i, "width": W, "height": H, "file_name": f"{i}.png"} for i in (1, 2, 3)],
        "categories": [{"id": 3, "name": "person"}, {"id": 7, "name": "car"}],
        "annotations": [
            {
                "id": 1,
                "image_id": 1,
                "category_id": 3,
                "iscrowd": 1,
                "bbox": [3, 2, 4, 3],
                "area": 12,
                **crowd,
            },
            {"id": 2, "image_id": 2, "category_id": 7, "iscrowd": 0, "bbox": [0, 0, 2, 2], "area": 4},
        ],
    }


def _compressed() -> dict:
    rle = mask_utils.encode(np.asfortranarray(_crowd_mask()))
    return {"size": rle["size"], "counts": rle["counts"].decode("ascii")}


CROWDS = {
    "crowd box": {},
    "rle list": {"segmentation": {"size": [H, W], "counts": _list_counts(_crowd_mask())}},
    "rle string": {"segmentation": _compressed()},
}


@pytest.mark.parametrize("kind", sorted(CROWDS))
def test_a_crowd_read_as_boxes_is_refused_by_name_then_left_out_with_allow_drop(
    tmp_path: Path, kind: str
) -> None:
    src = tmp_path / "c.json"
    src.write_text(json.dumps(_doc(CROWDS[kind])))
    out = tmp_path / "out" / "m.manifest"
    r = run_cli("convert", str(src), str(out), "--to", "manifest", "--task-type", "object-detection")
    assert r.returncode == 1, (r.stdout, r.stderr)
    (line,) = r.stderr.strip().splitlines()
    assert (
        "image 1: reading these annotations as boxes would drop 1 crowd region (iscrowd: 1); a box is one "
        "object" in line
    ), line
    # masks can hold a crowd region with a segmentation, never a crowd box alone
    assert ("--task-type semantic-segmentation" in line) == (kind != "crowd box") and "--allow-drop" in line
    assert not (tmp_path / "out").exists()

    r = run_cli(
        "convert", str(src), str(out), "--to", "manifest", "--task-type", "object-detection", "--allow-drop"
    )
    assert r.returncode == 0, r.stderr
    assert "(images 3, annotations 2, skipped 0, dropped 1)" in r.stdout, r.stdout
    lines = [orjson.loads(x) for x in out.read_bytes().splitlines()]
    assert lines[0]["label"]["annotations"] == [] and lines[0]["label-metadata"]["dropped"] == {
        "crowd region (iscrowd: 1)": 1
    }
    assert lines[1]["label"]["annotations"] == [{"class_id": 6, "top": 0, "left": 0, "height": 2, "width": 2}]
    assert lines[2]["label"]["annotations"] == [] and "dropped" not in lines[2]["label-metadata"]


@pytest.mark.parametrize("kind", ["rle list", "rle string"])
def test_a_crowd_read_as_masks_is_painted_as_pycocotools_paints_it(tmp_path: Path, kind: str) -> None:
    doc = _doc(CROWDS[kind])
    doc["annotations"][1]["segmentation"] = {
        "size": [H, W],
        "counts": _list_counts(np.eye(H, W, dtype=np.uint8)),
    }
    src = tmp_path / "c.json"
    src.write_text(json.dumps(doc))
    out = tmp_path / "m.manifest"
    r = run_cli("convert", str(src), str(out), "--to", "manifest")
    assert r.returncode == 0, r.stderr
    assert "(images 3, annotations 2, skipped 0)" in r.stdout, r.stdout
    lines = [orjson.loads(x) for x in out.read_bytes().splitlines()]
    masks = [np.asarray(Image.open(tmp_path / line["label-ref"])) for line in lines]
    for got, ann in zip(masks, doc["annotations"], strict=False):
        seg = ann["segmentation"]
        rle = mask_utils.frPyObjects(seg, H, W) if isinstance(seg["counts"], list) else seg
        assert np.array_equal(got, mask_utils.decode(rle) * ann["category_id"]), ann["id"]
    assert masks[0].max() == 3 and masks[1].max() == 7 and not masks[2].any()  # image 3: background only
    assert not masks[2].any()  # the image with no annotation: background only
    assert all("dropped" not in line["label-ref-metadata"] for line in lines)


def test_a_crowd_in_a_one_image_label_file(tmp_path: Path) -> None:
    """The file annotator's COCO label documents go the same way: refused, or left out with
    ``--allow-drop`` and recorded."""
    doc = _doc({})
    doc["images"] = doc["images"][:1]
    doc["annotations"] = [doc["annotations"][0], {**doc["annotations"][1], "image_id": 1}]
    with pytest.raises(ValueError, match=r"would drop 1 crowd region \(iscrowd: 1\)"):
        to_label(doc, "coco", "object-detection")
    labeled = to_label(doc, "coco", "object-detection", allow_drop=True)
    assert [a["class_id"] for a in labeled.value["annotations"]] == [6]
    assert labeled.metadata["dropped"] == {"crowd region (iscrowd: 1)": 1}


def test_masks_exported_to_coco_are_ground_truth_pycocotools_evaluates(tmp_path: Path) -> None:
    """The mask export wrote every class region as a crowd (``iscrowd: 1``), which COCOeval leaves
    out: the export evaluated against itself gave AP -1 (no ground truth). Each region is now an
    ordinary annotation: ``COCO`` loads it, ``annToMask`` gives the mask back, ``loadRes`` takes
    the annotations as results and COCOeval ``segm`` gives 1.0."""
    import contextlib
    import io

    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    doc = _doc(CROWDS["rle string"])
    doc["annotations"][1]["segmentation"] = [[0, 0, 2, 0, 2, 2, 0, 2]]
    (tmp_path / "in.json").write_text(json.dumps(doc))
    assert (
        run_cli(
            "convert", str(tmp_path / "in.json"), str(tmp_path / "m.manifest"), "--to", "manifest"
        ).returncode
        == 0
    )
    r = run_cli("convert", str(tmp_path / "m.manifest"), str(tmp_path / "out.json"), "--to", "coco")
    assert r.returncode == 0, r.stderr
    lines = [orjson.loads(x) for x in (tmp_path / "m.manifest").read_bytes().splitlines()]
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(tmp_path / "out.json"))
        anns = gt.loadAnns(gt.getAnnIds())
        assert [(a["image_id"], a["category_id"], a["iscrowd"]) for a in anns] == [(1, 3, 0), (2, 7, 0)]
        for a in anns:  # the mask the import painted, class by class
            painted = np.asarray(Image.open(tmp_path / lines[a["image_id"] - 1]["label-ref"]))
            assert np.array_equal(gt.annToMask(a), painted == a["category_id"])
        results = gt.loadRes([{**a, "score": 0.9} for a in anns])
        run = COCOeval(gt, results, "segm")
        run.evaluate()
        run.accumulate()
        run.summarize()
    assert run.stats[0] == pytest.approx(1.0)
