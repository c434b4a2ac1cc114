"""A semantic-segmentation manifest through COCO and back keeps its class colours and its
background's name.

The export wrote each category's id and name alone, and the import painted the mask in this
tool's palette with class 0 ``BACKGROUND`` ``#ffffff``: ``#123456`` came back ``#2ca02c`` and
``배경`` came back ``BACKGROUND``, exit 0, nothing said, while Ground Truth's verification and
adjustment jobs draw the mask in the map's colours. Each category now holds COCO panoptic's
``color`` and an image its ``background-class``; the import paints the mask in them. The CLI runs
as a subprocess, on masks made here with Pillow, and on the real Ground Truth map.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import orjson
import pytest
from PIL import Image

from tests.support.gt import GT_MANIFESTS, SKIP_REASON
from tests.test_convert_silent_losses import _refused
from tests.test_user_mistakes import cli
from totask_manifest._analytics.masks import read_mask

MAP = {"0": {"class-name": "배경", "hex-color": "#000000", "confidence": 0.5},
       "1": {"class-name": "road", "hex-color": "#123456", "confidence": 0.6},
       "2": {"class-name": "car", "hex-color": "#abcdef", "confidence": 0.7},
       "3": {"class-name": "sign", "hex-color": "#fedcba", "confidence": 0.4}}
REAL = GT_MANIFESTS / "semantic-segmentation__aws-samples-lookout-for-vision-image-augmentation-pipeline__output.manifest"


def _rgb_mask(path: Path, cmap: dict) -> np.ndarray:
    """An RGB PNG as Ground Truth writes one, in ``cmap``'s colours: the background, a band of
    class 1 and a block of class 2 (each class index of the map up to 2). Its pixels returned."""
    colors = [tuple(int(cmap[k]["hex-color"].lstrip("#")[i:i + 2], 16) for i in (0, 2, 4)) for k in ("0", "1", "2")]
    pixels = np.zeros((40, 60, 3), dtype=np.uint8)
    pixels[:] = colors[0]
    pixels[5:20, 5:30] = colors[1]
    pixels[25:35, 40:55] = colors[2]
    Image.fromarray(pixels, "RGB").save(path)
    return pixels


def _line(tmp_path: Path, cmap: dict, mask: str = "mask.png") -> bytes:
    """A line of one image and its RGB mask ``mask`` in ``cmap``'s colours, under ``seg-ref``."""
    Image.new("RGB", (60, 40)).save(tmp_path / "img.jpg")
    _rgb_mask(tmp_path / mask, cmap)
    meta = {"internal-color-map": cmap, "type": "groundtruth/semantic-segmentation", "human-annotated": "yes",
            "creation-date": "2022-09-09T17:25:32.047919", "job-name": "labeling-job/s"}
    return orjson.dumps({"source-ref": "img.jpg", "seg-ref": mask, "seg-ref-metadata": meta}) + b"\n"


def _manifest(tmp_path: Path, cmap: dict) -> Path:
    (tmp_path / "m.manifest").write_bytes(_line(tmp_path, cmap))
    return tmp_path / "m.manifest"


def _round_trip(tmp_path: Path, src: Path) -> tuple[dict, dict]:
    """``src`` to COCO and back through the CLI: the document and the line that came back."""
    for args in ((src.name, "d.json", "--to", "coco"), ("d.json", "back/b.manifest", "--to", "manifest")):
        r = cli("convert", *args, cwd=tmp_path)
        assert r.returncode == 0 and not r.stderr, (r.stdout, r.stderr)
    doc = orjson.loads((tmp_path / "d.json").read_bytes())
    return doc, orjson.loads((tmp_path / "back" / "b.manifest").read_bytes().splitlines()[0])


def _decoded(path: Path) -> np.ndarray:
    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"))


def test_colours_and_the_background_name_come_back(tmp_path: Path) -> None:
    original = _rgb_mask(tmp_path / "unused.png", MAP)
    doc, line = _round_trip(tmp_path, _manifest(tmp_path, MAP))
    assert doc["categories"] == [{"id": 1, "name": "road", "color": [0x12, 0x34, 0x56]},
                                 {"id": 2, "name": "car", "color": [0xab, 0xcd, 0xef]},
                                 {"id": 3, "name": "sign", "color": [0xfe, 0xdc, 0xba]}]
    assert doc["images"][0]["background-class"] == {"name": "배경", "color": [0, 0, 0]}
    assert line["label-ref-metadata"]["internal-color-map"] == MAP
    # the mask: a palette PNG (not the RGB file's bytes), its pixels the original's colours
    assert np.array_equal(_decoded(tmp_path / "back" / line["label-ref"]), original)


def test_a_default_background_writes_no_key_and_the_real_map_comes_back(tmp_path: Path) -> None:
    """Ground Truth's own map (BACKGROUND #ffffff; its class 3 #ff7f0e, which this tool's palette
    gives class 4, came back #d62728): read from ../shared/gt-manifests, never copied."""
    if not REAL.is_file():
        pytest.skip(SKIP_REASON)
    real = orjson.loads(REAL.read_bytes().splitlines()[0])
    cmap = real["S10-label3-ref-metadata"]["internal-color-map"]
    original = _rgb_mask(tmp_path / "unused.png", cmap)
    doc, line = _round_trip(tmp_path, _manifest(tmp_path, cmap))
    assert "background-class" not in doc["images"][0]
    assert line["label-ref-metadata"]["internal-color-map"] == cmap
    assert np.array_equal(_decoded(tmp_path / "back" / line["label-ref"]), original)


def test_an_uppercase_colour_comes_back_lowercase(tmp_path: Path) -> None:
    """COCO's ``color`` is [r, g, b]: the case of ``#ABCDEF`` is not carried (documented)."""
    cmap = {**MAP, "2": {**MAP["2"], "hex-color": "#ABCDEF"}}
    _doc, line = _round_trip(tmp_path, _manifest(tmp_path, cmap))
    assert line["label-ref-metadata"]["internal-color-map"]["2"]["hex-color"] == "#abcdef"


def test_a_document_with_colours_on_some_categories_gets_distinct_colours(tmp_path: Path) -> None:
    """A COCO file of another tool: the colours it gives are kept, the others this tool's palette
    less those (a category of white moves the background off white), each class its own colour."""
    doc = {"images": [{"id": 7, "file_name": "a.jpg", "width": 10, "height": 10}],
           "categories": [{"id": 1, "name": "cat", "color": [255, 255, 255]}, {"id": 2, "name": "dog"},
                          {"id": 3, "name": "owl", "color": [44, 160, 44]}],
           "annotations": [{"id": c, "image_id": 7, "category_id": c, "segmentation": [[x, 1, x + 2, 1, x, 5]]}
                           for c, x in ((1, 1), (2, 4), (3, 7))]}
    (tmp_path / "c.json").write_bytes(orjson.dumps(doc))
    r = cli("convert", "c.json", "o.manifest", "--to", "manifest", cwd=tmp_path)
    assert r.returncode == 0 and "not carried" not in r.stdout, (r.stdout, r.stderr)
    line = orjson.loads((tmp_path / "o.manifest").read_bytes())
    cmap = line["label-ref-metadata"]["internal-color-map"]
    assert cmap["1"]["hex-color"] == "#ffffff" and cmap["3"]["hex-color"] == "#2ca02c"
    assert len({e["hex-color"] for e in cmap.values()}) == 4 and cmap["0"]["class-name"] == "BACKGROUND"
    mask = read_mask(str(tmp_path / line["label-ref"]), cmap)
    assert set(np.unique(mask)) == {0, 1, 2, 3}


def test_read_as_boxes_a_colour_is_said_not_carried(tmp_path: Path) -> None:
    doc = {"images": [{"id": 1, "file_name": "a.jpg", "width": 10, "height": 10}],
           "categories": [{"id": 1, "name": "cat", "color": [1, 2, 3]}],
           "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 3, 3]}]}
    (tmp_path / "c.json").write_bytes(orjson.dumps(doc))
    r = cli("convert", "c.json", "o.manifest", "--to", "manifest", cwd=tmp_path)
    assert r.returncode == 0 and "the categories' 'color' (1 category) is not carried" in r.stdout, r.stdout


@pytest.mark.parametrize(("change", "key", "said"), [
    (lambda d: d["categories"][1].update(color=[1, 2, 3]), "categories[1].color",
     "category 2's color #010203 is also category 1's; a mask tells its classes apart by colour"),
    (lambda d: d["categories"][0].update(color=[300, 0, 0]), "categories[0].color",
     "a color must be [r, g, b], three whole numbers 0..255, got [300, 0, 0]"),
    (lambda d: d["images"][0].update({"background-class": {"name": "sky", "color": [1, 2, 3]}}),
     "images[0].background-class.color", "image 1: the background's color #010203 is also category 1's"),
    (lambda d: d["images"][0].update({"background-class": {"name": " "}}), "images[0].background-class.name",
     "image 1: the background's name is only spaces"),
], ids=["two-categories-one-colour", "not-a-colour", "background-of-a-category-colour", "background-unnamed"])
def test_an_import_refuses_colours_a_mask_cannot_tell_apart(tmp_path: Path, change, key: str, said: str) -> None:
    doc = {"images": [{"id": 1, "file_name": "a.jpg", "width": 10, "height": 10}],
           "categories": [{"id": 1, "name": "cat", "color": [1, 2, 3]}, {"id": 2, "name": "dog"}],
           "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "segmentation": [[1, 1, 5, 1, 1, 5]]}]}
    change(doc)
    (tmp_path / "c.json").write_bytes(orjson.dumps(doc))
    line = _refused(tmp_path, "c.json", "o.manifest", "--to", "manifest")
    assert f"key {key!r}" in line and said in line, line


def test_an_export_refuses_one_class_of_two_colours(tmp_path: Path) -> None:
    """Line 2 draws 'road' otherwise than line 1: a category holds one colour."""
    other = {**MAP, "1": {**MAP["1"], "hex-color": "#654321"}}
    (tmp_path / "m.manifest").write_bytes(_line(tmp_path, MAP, "a.png") + _line(tmp_path, other, "b.png"))
    line = _refused(tmp_path, "m.manifest", "d.json", "--to", "coco")
    assert line.startswith("totask-manifest convert: error: line 2, key 'seg-ref-metadata.internal-color-map.1.hex-color': class 1 "
                           "is #654321 here but #123456 on an earlier line; a COCO category holds one color"), line


def test_a_map_of_one_colour_for_two_classes_is_refused(tmp_path: Path) -> None:
    """Its pixels were read as the last class of that colour, the other lost unsaid."""
    cmap = {**MAP, "3": {**MAP["3"], "hex-color": "#123456"}}
    src = _manifest(tmp_path, cmap)
    line = _refused(tmp_path, src.name, "d.json", "--to", "coco")
    assert "line 1, key 'seg-ref-metadata.internal-color-map.3.hex-color': classes 1 and 3 are both #123456" in line, line


def test_a_class_in_an_earlier_background_colour_is_refused_at_its_key(tmp_path: Path) -> None:
    """Line 2 draws class 3 in line 1's background colour: the refusal names the key of the colour
    on line 2 (it named ``on line 1.3.hex-color``, the words of its message)."""
    other = {**MAP, "0": {**MAP["0"], "hex-color": "#ffffff"}, "3": {**MAP["3"], "hex-color": "#000000"}}
    (tmp_path / "m.manifest").write_bytes(_line(tmp_path, MAP, "a.png") + _line(tmp_path, other, "b.png"))
    line = _refused(tmp_path, "m.manifest", "d.json", "--to", "coco")
    assert line.startswith("totask-manifest convert: error: line 2, key 'seg-ref-metadata.internal-color-map.3.hex-color': "
                           "class 3 is #000000, as class 0 is on line 1; a mask tells its classes apart by colour"), line
