"""A COCO document read as masks keeps every annotation or says what it cannot keep.

A COCO file that mixes box-only annotations (``"segmentation": []``, as CVAT writes a box, or no
``segmentation`` at all) with polygons is read as semantic segmentation; a box has nothing to
paint, so it vanished from the mask with ``skipped 0`` and exit 0. Keypoints and attributes went
the same way. Reading boxes refuses what it would drop (``coco_losses``); reading masks now does
too, and ``--allow-drop`` drops them with a count. The CLI runs as a subprocess: what the user sees.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import orjson
import pytest

from tests.jobs_helpers import run_cli
from totask_manifest._analytics.masks import read_mask

SQUARE = [[1, 1, 5, 1, 5, 5, 1, 5]]
#: a polygon that is no box's outline (a square traced around its bbox reads as that box)
TRIANGLE = [[1, 1, 5, 1, 1, 5]]


def _doc(extra: dict) -> dict:
    """Two 10x10 images: image 1 holds ``extra`` (an annotation a mask cannot hold whole), image 2
    a 'dog' polygon (a triangle: a square around its bbox is that box's outline, read as a box),
    which makes the document read as masks."""
    return {
        "images": [
            {"id": 1, "file_name": "a.jpg", "width": 10, "height": 10},
            {"id": 2, "file_name": "b.jpg", "width": 10, "height": 10},
        ],
        "categories": [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}],
        "annotations": [
            {"id": 10, "image_id": 1, "category_id": 1, "bbox": [1, 1, 4, 4], **extra},
            {"id": 11, "image_id": 2, "category_id": 2, "bbox": [1, 1, 4, 4], "segmentation": TRIANGLE},
        ],
    }


@pytest.mark.parametrize(
    ("extra", "lost", "boxes_keep_it"),
    [
        ({"segmentation": []}, "1 box without segmentation", True),  # CVAT's box in a polygon file
        ({}, "1 box without segmentation", True),  # no segmentation key at all
        # boxes would drop these too: the way out offered is --allow-drop alone
        ({"segmentation": SQUARE, "keypoints": [2, 2, 2], "num_keypoints": 1}, "1 keypoints", False),
        ({"segmentation": SQUARE, "attributes": {"occluded": True}}, "1 attribute", False),
    ],
)
def test_what_a_mask_cannot_hold_is_refused_naming_it(
    tmp_path: Path, extra: dict, lost: str, boxes_keep_it: bool
) -> None:
    src = tmp_path / "c.json"
    src.write_text(json.dumps(_doc(extra)))
    out = tmp_path / "out" / "m.manifest"
    r = run_cli("convert", str(src), str(out), "--to", "manifest")
    assert r.returncode == 1, (r.stdout, r.stderr)
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert "image 1: reading these annotations as masks would drop " + lost in lines[0], lines[0]
    assert ("--task-type object-detection" in lines[0]) == boxes_keep_it and "--allow-drop" in lines[0]
    assert not (tmp_path / "out").exists()  # no manifest, no mask painted


def test_allow_drop_paints_the_rest_and_counts_what_it_dropped(tmp_path: Path) -> None:
    src = tmp_path / "c.json"
    doc = _doc({"segmentation": []})
    doc["annotations"].append({"id": 12, "image_id": 1, "category_id": 2, "segmentation": SQUARE})
    src.write_text(json.dumps(doc))
    out = tmp_path / "m.manifest"
    r = run_cli("convert", str(src), str(out), "--to", "manifest", "--allow-drop")
    assert r.returncode == 0, r.stderr
    assert "dropped 1" in r.stdout, r.stdout
    first = orjson.loads(out.read_bytes().splitlines()[0])
    assert first["label-ref-metadata"]["dropped"] == {"box without segmentation": 1}
    mask = read_mask(str(tmp_path / first["label-ref"]), first["label-ref-metadata"]["internal-color-map"])
    assert sorted(np.unique(mask).tolist()) == [0, 2]  # the dog's polygon; the cat box had nothing to paint


def test_instances_merged_into_one_class_region_are_said(tmp_path: Path) -> None:
    """Two cats on one image read as masks are one 'cat' region: the instances, their ids and
    areas are gone, with exit 0 and nothing said. Said now, in one line; one instance a class
    (what this tool's own mask export writes) says nothing."""
    doc = _doc({"segmentation": SQUARE})
    doc["annotations"].append({"id": 12, "image_id": 1, "category_id": 1, "bbox": [6, 6, 3, 3], "area": 4.5,
                               "segmentation": [[6, 6, 9, 6, 6, 9]]})
    src = tmp_path / "c.json"
    src.write_text(json.dumps(doc))
    r = run_cli("convert", str(src), str(tmp_path / "m.manifest"), "--to", "manifest")
    assert r.returncode == 0, r.stderr
    said = [x for x in r.stdout.splitlines() if "one region of their class" in x]
    assert len(said) == 1 and "2 annotations of 1 image" in said[0] and "--task-type object-detection" in said[0], r.stdout
    doc["annotations"].pop()
    src.write_text(json.dumps(doc))
    r = run_cli("convert", str(src), str(tmp_path / "m.manifest"), "--to", "manifest")
    assert r.returncode == 0 and "one region of their class" not in r.stdout, r.stdout


def test_each_mask_class_keeps_its_own_score_and_no_score_is_no_confidence(tmp_path: Path) -> None:
    """Read as masks, every class of an image got one confidence, the lowest score of the image
    (a class scored 0.8 came back 0.7, the background and the classes not on the image too), and
    a document without scores gave every class 0.0: a missing score read as a low one. Each class
    now keeps its own annotation's score (the lowest of its instances, when they are painted into
    one region), and a class no annotation scores has no confidence."""
    doc = _doc({"segmentation": SQUARE, "score": 0.8})
    doc["categories"].append({"id": 3, "name": "bird"})
    doc["annotations"][1]["score"] = 0.7
    doc["annotations"].append({"id": 12, "image_id": 2, "category_id": 1, "bbox": [6, 6, 3, 3],
                               "segmentation": [[6, 6, 9, 6, 6, 9]], "score": 0.9})
    doc["annotations"].append({"id": 13, "image_id": 2, "category_id": 1, "bbox": [6, 0, 3, 3],
                               "segmentation": [[6, 0, 9, 0, 6, 3]], "score": 0.6})
    src = tmp_path / "c.json"
    src.write_text(json.dumps(doc))
    out = tmp_path / "m.manifest"
    r = run_cli("convert", str(src), str(out), "--to", "manifest")
    assert r.returncode == 0, r.stderr
    maps = [orjson.loads(line)["label-ref-metadata"]["internal-color-map"] for line in out.read_bytes().splitlines()]
    confidences = [{k: v.get("confidence") for k, v in m.items()} for m in maps]
    assert confidences == [{"0": None, "1": 0.8, "2": None, "3": None},
                           {"0": None, "1": 0.6, "2": 0.7, "3": None}]
    for annotation in doc["annotations"]:
        annotation.pop("score")
    src.write_text(json.dumps(doc))
    r = run_cli("convert", str(src), str(out), "--to", "manifest")
    assert r.returncode == 0, r.stderr
    for line in out.read_bytes().splitlines():
        meta = orjson.loads(line)["label-ref-metadata"]
        assert meta["human-annotated"] == "yes"
        assert all("confidence" not in entry for entry in meta["internal-color-map"].values()), meta


def test_the_confidences_no_annotation_carries_go_to_coco_and_come_back(tmp_path: Path) -> None:
    """A mask's class confidences of the background and of a class with no pixel on the image have
    no COCO annotation to be the score of: the export left them out, and ``--to manifest`` brought
    the color map back without them, exit 0, nothing said. The image holds them
    (``class-confidences``, which pycocotools ignores) and the way back reads them."""
    pycocotools = pytest.importorskip("pycocotools.coco")
    doc = _doc({"segmentation": SQUARE, "score": 0.8})
    doc["categories"].append({"id": 3, "name": "bird"})
    src, first = tmp_path / "c.json", tmp_path / "m.manifest"
    src.write_text(json.dumps(doc))
    assert run_cli("convert", str(src), str(first), "--to", "manifest").returncode == 0
    lines = [orjson.loads(line) for line in first.read_bytes().splitlines()]
    color_map = lines[0]["label-ref-metadata"]["internal-color-map"]
    color_map["0"]["confidence"], color_map["3"]["confidence"] = 0.95, 0.1  # 'bird' has no pixel on image 1
    first.write_bytes(b"".join(orjson.dumps(line) + b"\n" for line in lines))
    coco = tmp_path / "again.json"
    r = run_cli("convert", str(first), str(coco), "--to", "coco")
    assert r.returncode == 0, r.stderr
    exported = json.loads(coco.read_text())
    assert exported["images"][0]["class-confidences"] == {"0": 0.95, "3": 0.1}
    assert "class-confidences" not in exported["images"][1]
    assert len(pycocotools.COCO(str(coco)).getAnnIds()) == len(exported["annotations"])
    back = tmp_path / "back.manifest"
    r = run_cli("convert", str(coco), str(back), "--to", "manifest")
    assert r.returncode == 0, r.stderr
    came_back = orjson.loads(back.read_bytes().splitlines()[0])
    assert "coco-image" not in came_back or "class-confidences" not in came_back["coco-image"]
    scores = {k: v.get("confidence") for k, v in came_back["label-ref-metadata"]["internal-color-map"].items()}
    assert scores == {"0": 0.95, "1": 0.8, "2": None, "3": 0.1}
