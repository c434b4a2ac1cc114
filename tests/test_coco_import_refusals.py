"""A COCO document another tool wrote, read as a manifest: what it cannot say exactly is refused.

Each case was read with exit 0 before: two images with one id each got the other's boxes, two
categories with one id became the last name, and a negative box width was written into a manifest
that ``validate`` then refused. Now each is one line naming the key, exit 1, nothing written."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from tests.test_user_mistakes import cli, one_line_error

IMAGES = [{"id": 1, "file_name": "a.jpg", "width": 100, "height": 80},
          {"id": 2, "file_name": "b.jpg", "width": 100, "height": 80}]
CATS = [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}]


def _box(bbox: list, image_id: int = 1, category_id: int = 1) -> dict:
    return {"id": 1, "image_id": image_id, "category_id": category_id, "bbox": bbox, "iscrowd": 0,
            "area": bbox[2] * bbox[3]}


def _refused(tmp_path: Path, doc: dict, *args: str) -> str:
    (tmp_path / "c.json").write_bytes(orjson.dumps(doc))
    r = cli("convert", "c.json", "out.manifest", "--to", "manifest", *args, cwd=tmp_path)
    line = one_line_error(r, "convert")
    assert r.returncode == 1, r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.json"]
    return line


def test_two_images_with_one_id_are_refused_not_given_each_others_boxes(tmp_path: Path) -> None:
    """pycocotools keeps the last image of an id; the import gave the box to both lines."""
    images = [IMAGES[0], {**IMAGES[1], "id": 1}]
    line = _refused(tmp_path, {"images": images, "annotations": [_box([1, 2, 3, 4])], "categories": CATS})
    assert "images[1].id" in line and "image id 1 is also images[0]'s" in line and "[format-coco]" in line


def test_two_categories_with_one_id_are_refused_not_read_as_the_last_name(tmp_path: Path) -> None:
    cats = [{"id": 1, "name": "cat"}, {"id": 1, "name": "dog"}]
    line = _refused(tmp_path, {"images": IMAGES, "annotations": [_box([1, 2, 3, 4])], "categories": cats})
    assert "categories[1].id" in line and "category id 1 is also categories[0]'s ('cat', here 'dog')" in line


def test_one_category_listed_twice_under_one_name_is_read(tmp_path: Path) -> None:
    """The same id and name twice says nothing two ways: read as one category."""
    cats = [{"id": 1, "name": "cat"}, {"id": 1, "name": "cat"}]
    (tmp_path / "c.json").write_bytes(orjson.dumps({"images": IMAGES, "annotations": [_box([1, 2, 3, 4])],
                                                    "categories": cats}))
    r = cli("convert", "c.json", "out.manifest", "--to", "manifest", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    first = orjson.loads((tmp_path / "out.manifest").read_bytes().splitlines()[0])
    assert first["label-metadata"]["class-map"] == {"0": "cat"}


@pytest.mark.parametrize(("bbox", "key", "what"), [([10, 10, -3, 4], "bbox[2]", "width -3"),
                                                   ([10, 10, 3, -0.5], "bbox[3]", "height -0.5")])
def test_a_negative_box_size_is_refused_not_written(tmp_path: Path, bbox: list, key: str, what: str) -> None:
    """``validate`` refuses a negative width (schema minimum 0): the import wrote one, exit 0."""
    line = _refused(tmp_path, {"images": IMAGES, "annotations": [_box(bbox, image_id=2)], "categories": CATS})
    assert f"annotations[0].{key}" in line and f"{what} is negative" in line and "image 2" in line


def test_a_zero_size_box_is_read_as_it_is(tmp_path: Path) -> None:
    """A zero-width box is a valid Ground Truth box (COCOeval reads it too): kept, not refused."""
    (tmp_path / "c.json").write_bytes(orjson.dumps({"images": IMAGES, "annotations": [_box([10, 10, 0, 4])],
                                                    "categories": CATS}))
    r = cli("convert", "c.json", "out.manifest", "--to", "manifest", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    first = orjson.loads((tmp_path / "out.manifest").read_bytes().splitlines()[0])
    assert first["label"]["annotations"] == [{"class_id": 0, "top": 10, "left": 10, "height": 4, "width": 0}]
    assert cli("validate", "out.manifest", cwd=tmp_path).returncode == 0


@pytest.mark.parametrize("file_name", ["", "   ", None, ["a.jpg"]], ids=["empty", "blank", "null", "list"])
def test_an_image_whose_file_name_names_no_file_is_refused(tmp_path: Path, file_name: object) -> None:
    """An image with ``"file_name": ""`` became a line whose ``source-ref`` is ``""`` (exit 0), a
    manifest ``validate`` refuses (``line-source-value``) and every job fails; ``null`` became the
    source ``"None"``. Refused naming the image's key, as its other keys are."""
    images = [IMAGES[0], {**IMAGES[1], "file_name": file_name}]
    line = _refused(tmp_path, {"images": images, "annotations": [_box([1, 2, 3, 4])], "categories": CATS})
    assert "images[1].file_name" in line and "[format-coco]" in line, line
