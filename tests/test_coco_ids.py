"""COCO ids through a manifest: ``convert c.json o.manifest`` then ``convert o.manifest b.json --to
coco`` gave the images their line numbers as ids and the annotations ids from 1, with exit 0 and
nothing said. A detections file (COCO results: ``image_id``, ``category_id``, ``bbox``,
``score``) names images by the original ids, so COCOeval against the round-tripped ground truth
evaluated nothing (pycocotools' ``loadRes`` refuses ids it does not hold) or the wrong images.
The import keeps the image's id under ``coco-image`` and the annotation's in its box's
``objects`` entry (``coco-id``); the export writes them back where every line holds one and no
two are the same, and otherwise numbers them as before and says so in one line.
"""

from __future__ import annotations

import contextlib
import copy
import io
from pathlib import Path

import orjson
import pytest

from tests.test_convert_silent_losses import _refused
from tests.test_user_mistakes import boxes_manifest, cli

IMAGES = [{"id": 397133, "file_name": "a.jpg", "width": 640, "height": 427, "license": 4},
          {"id": 37777, "file_name": "b.jpg", "width": 352, "height": 230},
          {"id": 252219, "file_name": "c.jpg", "width": 640, "height": 428}]
#: COCO's own category ids, with their gaps (no 12, none between 18 and 90)
CATEGORIES = [{"id": 1, "name": "person"}, {"id": 18, "name": "dog"}, {"id": 90, "name": "toothbrush"}]


def _document() -> dict:
    anns = [(82445, 397133, 18, [100, 50, 200, 150]), (9, 397133, 1, [400, 100, 80, 200]),
            (1234, 37777, 90, [10, 10, 40, 30]), (555, 37777, 1, [200, 50, 100, 150]),
            (77, 252219, 18, [300, 200, 120, 100]), (78, 252219, 1, [20, 30, 60, 180])]
    return {"info": {"year": 2017}, "images": IMAGES, "categories": CATEGORIES,
            "annotations": [{"id": i, "image_id": im, "category_id": c, "bbox": b, "area": b[2] * b[3] - 7,
                             "iscrowd": 0} for i, im, c, b in anns]}


def _detections() -> list[dict]:
    """A model's results naming the original ids: some boxes found, one shifted, one missed, one
    false, so the AP is neither 0 nor 1 and the wrong image would change it."""
    return [{"image_id": 397133, "category_id": 18, "bbox": [102, 52, 198, 150], "score": 0.9},
            {"image_id": 397133, "category_id": 1, "bbox": [430, 150, 80, 200], "score": 0.8},
            {"image_id": 37777, "category_id": 90, "bbox": [10, 10, 40, 30], "score": 0.7},
            {"image_id": 37777, "category_id": 18, "bbox": [0, 0, 50, 50], "score": 0.95},
            {"image_id": 252219, "category_id": 18, "bbox": [300, 200, 120, 100], "score": 0.6},
            {"image_id": 252219, "category_id": 1, "bbox": [20, 30, 60, 180], "score": 0.85}]


def _lines(path: Path) -> list[dict]:
    return [orjson.loads(x) for x in path.read_bytes().splitlines() if x.strip()]


def _write_lines(path: Path, lines: list[dict]) -> None:
    path.write_bytes(b"".join(orjson.dumps(x) + b"\n" for x in lines))


def _round_trip(tmp_path: Path, manifest: str = "o.manifest") -> tuple[dict, list[str]]:
    """``manifest`` exported to COCO by the real CLI: the document and what it said."""
    r = cli("convert", manifest, "back.json", "--to", "coco", cwd=tmp_path)
    assert r.returncode == 0 and not r.stderr, r.stderr
    return orjson.loads((tmp_path / "back.json").read_bytes()), r.stdout.splitlines()


def _stats(pycoco, cocoeval, gt_path: Path) -> list[float]:
    with contextlib.redirect_stdout(io.StringIO()):
        gt = pycoco.COCO(str(gt_path))
        ev = cocoeval.COCOeval(gt, gt.loadRes(copy.deepcopy(_detections())), "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return list(ev.stats)


def test_a_detections_file_naming_the_original_ids_scores_the_same_against_the_round_trip(tmp_path: Path) -> None:
    pycoco = pytest.importorskip("pycocotools.coco")
    cocoeval = pytest.importorskip("pycocotools.cocoeval")
    (tmp_path / "c.json").write_bytes(orjson.dumps(_document()))
    r = cli("convert", "c.json", "o.manifest", "--to", "manifest", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    first = _lines(tmp_path / "o.manifest")[0]
    assert first["coco-image"] == {"id": 397133, "license": 4}
    assert [o["coco-id"] for o in first["label-metadata"]["objects"]] == [82445, 9]

    back, said = _round_trip(tmp_path)
    assert not [x for x in said if "ids" in x], said  # every id kept: nothing to say
    original = _document()
    assert [i["id"] for i in back["images"]] == [i["id"] for i in original["images"]]
    assert sorted((a["id"], a["image_id"], a["category_id"]) for a in back["annotations"]) == sorted(
        (a["id"], a["image_id"], a["category_id"]) for a in original["annotations"])
    assert back["categories"] == CATEGORIES  # category ids kept as they were, gaps and all

    want = _stats(pycoco, cocoeval, tmp_path / "c.json")
    assert 0 < want[0] < 1, want  # a score the wrong images would change
    assert _stats(pycoco, cocoeval, tmp_path / "back.json") == pytest.approx(want)


def test_ids_some_lines_lack_are_numbered_for_the_whole_document_and_said(tmp_path: Path) -> None:
    (tmp_path / "c.json").write_bytes(orjson.dumps(_document()))
    r = cli("convert", "c.json", "o.manifest", "--to", "manifest", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    lines = _lines(tmp_path / "o.manifest")
    # a box a job added (or a person drew) has no COCO id: annotation ids are numbered, image ids kept
    del lines[2]["label-metadata"]["objects"][1]["coco-id"]
    _write_lines(tmp_path / "o.manifest", lines)
    back, said = _round_trip(tmp_path)
    assert [i["id"] for i in back["images"]] == [397133, 37777, 252219]
    assert [a["id"] for a in back["annotations"]] == [1, 2, 3, 4, 5, 6]
    (note,) = [x for x in said if "ids" in x]
    assert note.startswith("o.manifest: annotation ids are numbered from 1") and "line 3's objects[1].coco-id" in note

    # two imports in one manifest: the same image ids twice, each kind numbered, each said once
    _write_lines(tmp_path / "two.manifest", _lines(tmp_path / "o.manifest") * 2)
    r = cli("convert", "two.manifest", "back.json", "--to", "coco", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    back = orjson.loads((tmp_path / "back.json").read_bytes())
    assert [i["id"] for i in back["images"]] == [1, 2, 3, 4, 5, 6]
    assert {a["image_id"] for a in back["annotations"]} == {1, 2, 3, 4, 5, 6}
    notes = [x for x in r.stdout.splitlines() if "ids" in x]
    assert len(notes) == 2 and "line 4's coco-image.id holds 397133, as an earlier one does" in notes[0], notes
    assert "detections file that names the original image ids does not match" in notes[0], notes


def test_a_manifest_no_coco_import_wrote_is_numbered_as_before_and_nothing_said(tmp_path: Path) -> None:
    boxes_manifest(tmp_path / "o.manifest")
    back, said = _round_trip(tmp_path)
    assert [i["id"] for i in back["images"]] == list(range(1, len(back["images"]) + 1))
    assert [a["id"] for a in back["annotations"]] == list(range(1, len(back["annotations"]) + 1))
    assert not [x for x in said if "ids" in x], said


@pytest.mark.parametrize(("where", "value", "said"), [
    ("image", [397133], "'coco-image.id': coco-image.id must be a number or a string"),
    ("object", {"id": 9}, "'label-metadata.objects[0].coco-id': label-metadata.objects[0].coco-id must be a number or a string"),
])
def test_an_id_that_is_no_id_is_refused_naming_the_line(tmp_path: Path, where: str, value, said: str) -> None:
    (tmp_path / "c.json").write_bytes(orjson.dumps(_document()))
    assert cli("convert", "c.json", "o.manifest", "--to", "manifest", cwd=tmp_path).returncode == 0
    lines = _lines(tmp_path / "o.manifest")
    if where == "image":
        lines[1]["coco-image"]["id"] = value
    else:
        lines[1]["label-metadata"]["objects"][0]["coco-id"] = value
    _write_lines(tmp_path / "o.manifest", lines)
    line = _refused(tmp_path, "o.manifest", "back.json", "--to", "coco")
    assert "line 2" in line and said in line and "[coco-image]" in line, line


def test_a_masks_image_keeps_its_id(tmp_path: Path) -> None:
    doc = _document()
    doc["images"], doc["annotations"] = doc["images"][:1], doc["annotations"][:1]
    doc["annotations"][0]["segmentation"] = [[100, 50, 300, 50, 200, 200]]  # a region: read as masks
    (tmp_path / "c.json").write_bytes(orjson.dumps(doc))
    assert cli("convert", "c.json", "o.manifest", "--to", "manifest", cwd=tmp_path).returncode == 0
    back, said = _round_trip(tmp_path)
    assert [i["id"] for i in back["images"]] == [397133] and back["annotations"][0]["image_id"] == 397133
    assert not [x for x in said if "ids" in x], said


def test_class_names_keep_the_original_category_ids_for_a_detections_file(tmp_path: Path) -> None:
    """``--class-names`` numbers classes by name (dog 0, person 1, toothbrush 2), and the export
    wrote category ids as class id + 1: a detections file naming COCO's own category ids (person
    1, dog 18) no longer matched; COCOeval scored the wrong classes. The import keeps each box's
    original category id (``coco-category-id``, where it is not class id + 1), the export writes it
    back."""
    pycoco = pytest.importorskip("pycocotools.coco")
    cocoeval = pytest.importorskip("pycocotools.cocoeval")
    (tmp_path / "c.json").write_bytes(orjson.dumps(_document()))
    (tmp_path / "names.txt").write_text("dog\nperson\ntoothbrush\n")
    r = cli("convert", "c.json", "o.manifest", "--to", "manifest", "--class-names", "names.txt", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    first = _lines(tmp_path / "o.manifest")[0]["label-metadata"]
    assert first["class-map"] == {"0": "dog", "1": "person"}
    assert [o.get("coco-category-id") for o in first["objects"]] == [18, 1]  # neither is class id + 1

    back, said = _round_trip(tmp_path)
    assert not [x for x in said if "ids" in x], said
    assert back["categories"] == CATEGORIES
    original = _document()
    assert sorted((a["id"], a["category_id"]) for a in back["annotations"]) == sorted(
        (a["id"], a["category_id"]) for a in original["annotations"])
    assert _stats(pycoco, cocoeval, tmp_path / "back.json") == pytest.approx(
        _stats(pycoco, cocoeval, tmp_path / "c.json"))


def test_a_class_whose_kept_category_ids_disagree_is_numbered_and_said(tmp_path: Path) -> None:
    """A box a job added (no kept category id) of a class whose imported boxes keep another id:
    one class would be two categories; every category id is class id + 1, said in one line."""
    (tmp_path / "c.json").write_bytes(orjson.dumps(_document()))
    (tmp_path / "names.txt").write_text("dog\nperson\ntoothbrush\n")
    r = cli("convert", "c.json", "o.manifest", "--to", "manifest", "--class-names", "names.txt", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    lines = _lines(tmp_path / "o.manifest")
    del lines[2]["label-metadata"]["objects"][0]["coco-category-id"]  # a dog box with no kept id
    _write_lines(tmp_path / "o.manifest", lines)
    back, said = _round_trip(tmp_path)
    assert back["categories"] == [{"id": 1, "name": "dog"}, {"id": 2, "name": "person"},
                                  {"id": 3, "name": "toothbrush"}]
    (note,) = [x for x in said if "category ids" in x]
    assert "line 3's objects[0]" in note and "original category ids does not match" in note, note


def _class_map_manifest(path: Path, class_map: dict[str, str], box_class: int) -> None:
    """One line of boxes: a box of ``box_class``, its class map ``class_map``."""
    lines = _lines(boxes_manifest(path))[:1]
    lines[0]["boxes"]["annotations"][0]["class_id"] = box_class
    lines[0]["boxes-metadata"]["class-map"] = class_map
    _write_lines(path, lines)


@pytest.mark.parametrize(("box_class", "class_map", "key"), [
    (2**63 - 1, {str(2**63 - 1): "car"}, "boxes.annotations[0].class_id"),  # the box's class
    (0, {"0": "cat", str(2**63 - 1): "car"}, "boxes-metadata.class-map"),  # a class no box is of, listed
])
def test_a_class_id_with_no_64_bit_category_id_is_refused_up_front(tmp_path: Path, box_class: int,
                                                                   class_map: dict, key: str) -> None:
    """Class id 2**63-1 (validate takes it) was written as category id 2**63, exit 0, which the
    import refuses (``class id must be a non-negative integer within 64 bits``): the export refuses
    it naming the line and key, and writes nothing."""
    _class_map_manifest(tmp_path / "o.manifest", class_map, box_class)
    assert cli("validate", "o.manifest", cwd=tmp_path).returncode == 0
    line = _refused(tmp_path, "o.manifest", "--to", "coco", "b.json")
    assert f"line 1, key '{key}': class id {2**63 - 1} has no COCO category id" in line, line
    assert line.endswith(f"renumber the class below {2**63 - 1} first [format-coco]"), line


def test_the_largest_class_id_a_category_id_holds_goes_there_and_back(tmp_path: Path) -> None:
    """Class id 2**63-2 is category id 2**63-1, the largest the import reads: kept both ways."""
    _class_map_manifest(tmp_path / "o.manifest", {str(2**63 - 2): "car"}, 2**63 - 2)
    doc, _said = _round_trip(tmp_path)
    assert doc["categories"] == [{"id": 2**63 - 1, "name": "car"}]
    r = cli("convert", "back.json", "back.manifest", "--to", "manifest", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    [back] = _lines(tmp_path / "back.manifest")
    label = next(v for k, v in back.items() if isinstance(v, dict) and "annotations" in v)
    assert [a["class_id"] for a in label["annotations"]] == [2**63 - 2]


@pytest.mark.parametrize(("where", "key", "rule"), [
    ("image", "coco-image.id", "coco-image"),
    ("object", "label-metadata.objects[0].coco-id", "coco-image"),
    ("category", "label-metadata.objects[0].coco-category-id", "coco-category"),
])
def test_a_kept_id_over_64_bits_is_refused_naming_the_line(tmp_path: Path, where: str, key: str, rule: str) -> None:
    """A kept id of 2**63 (a manifest line holds it, orjson reads it) was written, exit 0: the import
    refused the category id (``class id must be a non-negative integer within 64 bits``), and
    64-bit COCO readers any such id. The export refuses it naming the line and key, nothing written."""
    (tmp_path / "c.json").write_bytes(orjson.dumps(_document()))
    assert cli("convert", "c.json", "o.manifest", "--to", "manifest", cwd=tmp_path).returncode == 0
    lines = _lines(tmp_path / "o.manifest")
    if where == "image":
        lines[1]["coco-image"]["id"] = 2**63
    else:
        lines[1]["label-metadata"]["objects"][0]["coco-id" if where == "object" else "coco-category-id"] = 2**63
    _write_lines(tmp_path / "o.manifest", lines)
    line = _refused(tmp_path, "o.manifest", "back.json", "--to", "coco")
    assert f"line 2, key '{key}': {key} is {2**63}, over {2**63 - 1}" in line, line
    assert line.endswith(f"renumber it to {2**63 - 1} or below first [{rule}]"), line


def test_a_kept_image_id_of_2_63_minus_1_is_written_as_it_is(tmp_path: Path) -> None:
    """The largest id a signed 64-bit reader holds is kept, not refused."""
    (tmp_path / "c.json").write_bytes(orjson.dumps(_document()))
    assert cli("convert", "c.json", "o.manifest", "--to", "manifest", cwd=tmp_path).returncode == 0
    lines = _lines(tmp_path / "o.manifest")
    lines[1]["coco-image"]["id"] = 2**63 - 1
    _write_lines(tmp_path / "o.manifest", lines)
    back, _said = _round_trip(tmp_path)
    assert 2**63 - 1 in [i["id"] for i in back["images"]]


def _with_id(where: str, value: int) -> dict:
    """``_document()`` with image 37777, category 18 (and the annotations naming either) or
    annotation 1234 given ``value`` as its id (a copy: ``_document()`` shares ``IMAGES``)."""
    doc = copy.deepcopy(_document())
    if where == "annotation":
        doc["annotations"][2]["id"] = value
        return doc
    section, old, named_by = {"image": ("images", 37777, "image_id"), "category": ("categories", 18, "category_id")}[where]
    next(x for x in doc[section] if x["id"] == old)["id"] = value
    for ann in doc["annotations"]:
        ann[named_by] = value if ann[named_by] == old else ann[named_by]
    return doc


@pytest.mark.parametrize(("where", "key", "what"), [("image", "images[1].id", "image id"),
                                                    ("annotation", "annotations[2].id", "annotation id"),
                                                    ("category", "annotations[0].category_id", "category_id")])
@pytest.mark.parametrize("value", [2**63, 2**63 + 5, 2**64 - 1])
def test_an_imported_id_over_64_bits_is_refused_naming_its_place(tmp_path: Path, where: str, key: str, what: str,
                                                                 value: int) -> None:
    """orjson reads an integer up to 2**64-1: an image or annotation id from 2**63 up was imported,
    exit 0, and the export of that manifest refused it (``coco-image``): the round trip broke. The
    import refuses it as the export does, naming its place in the document, nothing written; a
    category id (refused before as ``class id must be ... within 64 bits``) is said the same way."""
    (tmp_path / "c.json").write_bytes(orjson.dumps(_with_id(where, value)))
    line = _refused(tmp_path, "c.json", "o.manifest", "--to", "manifest")
    assert f"key '{key}': {what} {value} is over {2**63 - 1}; COCO ids are signed 64-bit integers" in line, line
    assert "[format-coco]" in line and "(in c.json)" in line, line


@pytest.mark.parametrize("where", ["image", "annotation"])
def test_an_id_of_2_63_minus_1_goes_there_and_back(tmp_path: Path, where: str) -> None:
    """The largest id a signed 64-bit reader holds is imported and exported as it is, and the
    export's output imports again."""
    (tmp_path / "c.json").write_bytes(orjson.dumps(_with_id(where, 2**63 - 1)))
    assert cli("convert", "c.json", "o.manifest", "--to", "manifest", cwd=tmp_path).returncode == 0
    back, said = _round_trip(tmp_path)
    assert not [x for x in said if "ids" in x], said  # kept, not numbered
    original = _with_id(where, 2**63 - 1)
    assert [i["id"] for i in back["images"]] == [i["id"] for i in original["images"]]
    assert sorted((a["id"], a["image_id"]) for a in back["annotations"]) == sorted(
        (a["id"], a["image_id"]) for a in original["annotations"])
    assert cli("convert", "back.json", "again.manifest", "--to", "manifest", cwd=tmp_path).returncode == 0
    assert [_ids(x) for x in _lines(tmp_path / "again.manifest")] == [_ids(x) for x in _lines(tmp_path / "o.manifest")]


def _ids(line: dict) -> tuple:
    """The COCO ids a line keeps: its image's and its boxes'."""
    return line["coco-image"]["id"], [o.get("coco-id") for o in line["label-metadata"]["objects"]]
