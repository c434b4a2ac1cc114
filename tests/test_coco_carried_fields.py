"""COCO fields a round trip through a manifest lost with exit 0 and nothing said.

An image's ``license``, ``coco_url``, ``flickr_url`` and ``date_captured`` (every real COCO file
holds them) were left out of the line; an annotation's ``area`` came back as the box's width x
height (COCOeval's small/medium/large ranges read it: for a crowd or a segment it is the
region's); the document's ``info`` and ``licenses`` vanished (now they travel, on the first line:
``test_coco_licenses``); ``attributes`` given as a list was
neither counted nor refused. Now the image keys travel on the line under ``coco-image`` and the
export writes them back, a given area is kept in the box's ``objects`` entry, and a list of attributes is refused
naming its annotation.
"""

from __future__ import annotations

import contextlib
import copy
import io
from pathlib import Path

import orjson
import pytest

from tests.test_convert_silent_losses import _refused
from tests.test_user_mistakes import cli, one_line_error
from totask_manifest import validate_manifest
from totask_manifest._analytics.convert import convert
from totask_manifest._errors import ManifestError

IMAGE_KEYS = {"license": 3, "coco_url": "http://images.cocodataset.org/val2017/a.jpg",
              "flickr_url": "http://farm4.staticflickr.com/a.jpg", "date_captured": "2013-11-14 17:02:52"}


def _document() -> dict:
    """Two images as the official COCO files write them: a box whose area is its segment's (999 on
    a 3x4 box), one with no area, one whose area is the box's, and the document's own sections."""
    return {
        "info": {"description": "COCO 2017 Dataset", "version": "1.0", "year": 2017},
        "licenses": [{"id": 3, "name": "Attribution-NonCommercial", "url": "http://creativecommons.org/"}],
        "images": [{"id": 1, "file_name": "a.jpg", "width": 100, "height": 80, **IMAGE_KEYS},
                   {"id": 2, "file_name": "b.jpg", "width": 50, "height": 40, "license": 1}],
        "categories": [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}],
        "annotations": [
            {"id": 5, "image_id": 1, "category_id": 1, "bbox": [1, 2, 3, 4], "area": 999, "iscrowd": 0},
            {"id": 6, "image_id": 1, "category_id": 2, "bbox": [10, 20, 30, 40], "area": 1200, "iscrowd": 0},
            {"id": 7, "image_id": 2, "category_id": 2, "bbox": [1.5, 2, 2.5, 4], "iscrowd": 0},
        ],
    }


def _lines(path: Path) -> list[dict]:
    return [orjson.loads(x) for x in path.read_bytes().splitlines() if x.strip()]


def test_image_keys_and_a_given_area_travel_through_the_manifest_and_back(tmp_path: Path) -> None:
    (tmp_path / "c.json").write_bytes(orjson.dumps(_document()))
    r = cli("convert", "c.json", "o.manifest", "--to", "manifest", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    said = [x for x in r.stdout.splitlines() if "not carried" in x]
    assert not said, r.stdout  # info and licenses travel on the first line: test_coco_licenses
    first, second = _lines(tmp_path / "o.manifest")
    license_3 = {"coco-image": {"id": 1, **IMAGE_KEYS, "licenses-entry": _document()["licenses"][0]}}
    assert first["coco-image"] == license_3["coco-image"] and second["coco-image"] == {"id": 2, "license": 1}
    # the segment's area is kept where it is not the box's; the box's own is computed again
    assert first["label-metadata"]["objects"] == [{"coco-id": 5, "area": 999}, {"coco-id": 6}]
    assert second["label-metadata"]["objects"] == [{"coco-id": 7}]
    assert validate_manifest(str(tmp_path / "o.manifest")).ok

    r = cli("convert", "o.manifest", "back.json", "--to", "coco", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    back = orjson.loads((tmp_path / "back.json").read_bytes())
    for image, original in zip(back["images"], _document()["images"], strict=True):
        assert {k: image[k] for k in original} == original  # the id too (test_coco_ids)
    assert [a["area"] for a in back["annotations"]] == [999, 1200, 10.0]


def test_the_round_trip_is_the_same_ground_truth_to_cocoeval(tmp_path: Path) -> None:
    pycoco = pytest.importorskip("pycocotools.coco")
    cocoeval = pytest.importorskip("pycocotools.cocoeval")
    doc = _document()
    doc["annotations"][2]["area"] = 10.0  # COCOeval reads every ground truth's area
    (tmp_path / "c.json").write_bytes(orjson.dumps(doc))
    convert(str(tmp_path / "c.json"), str(tmp_path / "o.manifest"), to="manifest")
    convert(str(tmp_path / "o.manifest"), str(tmp_path / "back.json"), to="coco")
    with contextlib.redirect_stdout(io.StringIO()):
        original, back = pycoco.COCO(str(tmp_path / "c.json")), pycoco.COCO(str(tmp_path / "back.json"))
    assert sorted(a["area"] for a in back.loadAnns(back.getAnnIds())) == sorted(
        a["area"] for a in original.loadAnns(original.getAnnIds())
    )
    # the round trip as results against the original (its image ids kept: 1 and 2)
    results = [{k: a[k] for k in ("image_id", "category_id", "bbox")} | {"score": 1.0}
               for a in back.loadAnns(back.getAnnIds())]
    with contextlib.redirect_stdout(io.StringIO()):
        ev = cocoeval.COCOeval(original, original.loadRes(copy.deepcopy(results)), "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    assert ev.stats[0] == pytest.approx(1.0) and ev.stats[1] == pytest.approx(1.0)
    # the 999 box is small by its area: the per-size figures see the same ground truth
    assert ev.stats[3] == pytest.approx(1.0)


def test_a_negative_area_is_refused_naming_the_annotation(tmp_path: Path) -> None:
    doc = _document()
    doc["annotations"][1]["area"] = -4
    (tmp_path / "c.json").write_bytes(orjson.dumps(doc))
    line = _refused(tmp_path, "c.json", "out.manifest", "--to", "manifest")
    assert "key 'annotations[1].area'" in line and "area -4 is negative" in line, line


@pytest.mark.parametrize("attributes", [["occluded", "truncated"], "occluded"])
def test_attributes_that_are_no_object_are_refused_naming_the_annotation_id(tmp_path: Path, attributes) -> None:
    doc = _document()
    doc["annotations"][2]["attributes"] = attributes
    (tmp_path / "c.json").write_bytes(orjson.dumps(doc))
    line = _refused(tmp_path, "c.json", "out.manifest", "--to", "manifest")
    assert "key 'annotations[2].attributes'" in line and "annotation id 7 holds 'attributes' as" in line, line
    assert "--allow-drop" in line and "[format-coco]" in line, line

    r = cli("convert", "c.json", "out.manifest", "--to", "manifest", "--allow-drop", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    second = _lines(tmp_path / "out.manifest")[1]
    assert second["label-metadata"]["dropped"] == {"attribute": len(attributes) if isinstance(attributes, list) else 1}


@pytest.mark.parametrize(("carried", "said"), [
    ([3], "'coco-image' must be an object"),
    ({"width": 7}, "'coco-image' holds 'width', which the export writes itself"),
])
def test_an_export_refuses_a_coco_image_it_cannot_write_back(tmp_path: Path, carried, said: str) -> None:
    (tmp_path / "c.json").write_bytes(orjson.dumps(_document()))
    convert(str(tmp_path / "c.json"), str(tmp_path / "o.manifest"), to="manifest")
    first, second = _lines(tmp_path / "o.manifest")
    second["coco-image"] = carried
    (tmp_path / "o.manifest").write_bytes(orjson.dumps(first) + b"\n" + orjson.dumps(second) + b"\n")
    with pytest.raises(ManifestError) as err:
        convert(str(tmp_path / "o.manifest"), str(tmp_path / "back.json"), to="coco")
    assert err.value.line == 2 and err.value.rule == "coco-image" and said in str(err.value), str(err.value)
    assert not (tmp_path / "back.json").exists()
    r = cli("convert", "o.manifest", "back.json", "--to", "coco", cwd=tmp_path)
    assert said in one_line_error(r, "convert") and r.returncode == 1


def test_validate_refuses_an_area_that_is_no_area(tmp_path: Path) -> None:
    (tmp_path / "c.json").write_bytes(orjson.dumps(_document()))
    convert(str(tmp_path / "c.json"), str(tmp_path / "o.manifest"), to="manifest")
    first, second = _lines(tmp_path / "o.manifest")
    first["label-metadata"]["objects"][0]["area"] = -1
    (tmp_path / "o.manifest").write_bytes(orjson.dumps(first) + b"\n" + orjson.dumps(second) + b"\n")
    assert not validate_manifest(str(tmp_path / "o.manifest")).ok


def test_image_keys_travel_with_masks_too(tmp_path: Path) -> None:
    doc = _document()
    del doc["annotations"][1:]
    doc["images"] = doc["images"][:1]
    doc["annotations"][0]["segmentation"] = [[1, 2, 4, 2, 4, 6]]  # a triangle: a region, read as masks
    (tmp_path / "c.json").write_bytes(orjson.dumps(doc))
    result = convert(str(tmp_path / "c.json"), str(tmp_path / "o.manifest"), to="manifest")
    assert result.to_format == "manifest" and not result.notes
    (line,) = _lines(tmp_path / "o.manifest")
    assert line["coco-image"] == {"id": 1, **IMAGE_KEYS, "licenses-entry": doc["licenses"][0]} and line["label-ref-metadata"]["type"] == "groundtruth/semantic-segmentation"
    convert(str(tmp_path / "o.manifest"), str(tmp_path / "back.json"), to="coco")
    (image,) = orjson.loads((tmp_path / "back.json").read_bytes())["images"]
    assert {k: image[k] for k in IMAGE_KEYS} == IMAGE_KEYS


def test_a_category_no_box_names_is_said_not_carried(tmp_path: Path) -> None:
    """A line's class-map names the classes of its boxes, so a category no annotation names left
    the round trip's 'categories' unsaid; read as boxes the import says so in one line."""
    doc = _document()
    doc["categories"].append({"id": 7, "name": "bird"})
    (tmp_path / "c.json").write_bytes(orjson.dumps(doc))
    result = convert(str(tmp_path / "c.json"), str(tmp_path / "o.manifest"), to="manifest")
    (said,) = [x for x in result.notes if "bird" in x]
    assert said.startswith("the document's category 7 ('bird') is not carried: no annotation names it"), said
    del doc["categories"][-1]
    (tmp_path / "c.json").write_bytes(orjson.dumps(doc))
    result = convert(str(tmp_path / "c.json"), str(tmp_path / "o.manifest"), to="manifest")
    assert not [x for x in result.notes if "categor" in x], result.notes


@pytest.mark.parametrize("segmentation", [None, [[1, 2, 4, 2, 4, 6]]], ids=["boxes", "masks"])
def test_a_category_key_besides_id_and_name_is_said_not_carried(tmp_path: Path, segmentation) -> None:
    """Every category of the official COCO files holds a ``supercategory`` (the keypoint files a
    ``keypoints`` list and a ``skeleton`` too): a line's class-map holds a class's name alone, so the
    import left them out and the round trip's categories came back without them, exit 0, nothing
    said. The import says so in one line, naming the keys and how many categories held them."""
    doc = _document()
    doc["categories"] = [{"supercategory": "animal", "id": 1, "name": "cat"},
                         {"supercategory": "animal", "id": 2, "name": "dog", "skeleton": [[1, 2]]}]
    if segmentation:
        for annotation in doc["annotations"]:
            annotation["segmentation"] = segmentation
    (tmp_path / "c.json").write_bytes(orjson.dumps(doc))
    result = convert(str(tmp_path / "c.json"), str(tmp_path / "o.manifest"), to="manifest")
    said = [x for x in result.notes if "supercategory" in x]
    assert said == ["the categories' 'supercategory' (2 categories), 'skeleton' (1 category) are not carried "
                    "(a line's class-map holds a class's name alone; a COCO export writes each category's id and "
                    "name)"], result.notes
    for category in doc["categories"]:
        category.pop("supercategory")
        category.pop("skeleton", None)
    (tmp_path / "c.json").write_bytes(orjson.dumps(doc))
    result = convert(str(tmp_path / "c.json"), str(tmp_path / "o.manifest"), to="manifest")
    assert not [x for x in result.notes if "categories'" in x], result.notes
