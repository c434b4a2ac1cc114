"""A COCO document's ``licenses`` through a manifest: the import said they were not carried and
the export wrote none, so ``convert c.json o.manifest`` then ``convert o.manifest back.json --to
coco`` lost every license's name and URL (each image kept only its ``license`` id, naming nothing).
A manifest line is one image, so each image's line carries its own license entry under
``coco-image`` (``licenses-entry``), and the export writes each license once, back into
``licenses``; a license no image names is said not carried.
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import orjson
import pytest

from tests.test_coco_carried_fields import IMAGE_KEYS, _document, _lines
from tests.test_user_mistakes import cli, one_line_error

LICENSES = [{"id": 3, "name": "Attribution-NonCommercial", "url": "http://creativecommons.org/3"},
            {"id": 1, "name": "Attribution-NonCommercial-ShareAlike", "url": "http://creativecommons.org/1"}]


def _import(tmp_path: Path, doc: dict) -> list[str]:
    (tmp_path / "c.json").write_bytes(orjson.dumps(doc))
    r = cli("convert", "c.json", "o.manifest", "--to", "manifest", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    return [x for x in r.stdout.splitlines() if "not carried" in x]


def test_the_licenses_travel_with_their_images_and_come_back_whole(tmp_path: Path) -> None:
    pycoco = pytest.importorskip("pycocotools.coco")
    doc = _document()
    doc["licenses"] = LICENSES
    said = _import(tmp_path, doc)
    assert len(said) == 1 and "'info'" in said[0] and "licenses" not in said[0], said
    first, second = _lines(tmp_path / "o.manifest")
    assert first["coco-image"] == {"id": 1, **IMAGE_KEYS, "licenses-entry": LICENSES[0]}
    assert second["coco-image"] == {"id": 2, "license": 1, "licenses-entry": LICENSES[1]}

    r = cli("convert", "o.manifest", "back.json", "--to", "coco", cwd=tmp_path)
    assert r.returncode == 0 and not r.stderr, r.stderr
    back = orjson.loads((tmp_path / "back.json").read_bytes())
    assert back["licenses"] == LICENSES
    for image, original in zip(back["images"], doc["images"], strict=True):
        assert image == {**original, "human-annotated": "yes"}  # no licenses-entry on the image
    with contextlib.redirect_stdout(io.StringIO()):
        assert pycoco.COCO(str(tmp_path / "back.json")).dataset["licenses"] == LICENSES


def test_a_license_no_image_names_is_said_not_carried(tmp_path: Path) -> None:
    doc = _document()
    doc["licenses"] = [*LICENSES, {"id": 8, "name": "No known copyright restrictions"}]
    said = _import(tmp_path, doc)
    assert len(said) == 2 and "'info'" in said[0] and "license 8" in said[1], said


def test_an_export_refuses_one_license_id_named_two_ways(tmp_path: Path) -> None:
    doc = _document()
    doc["images"][1]["license"] = 3
    doc["licenses"] = LICENSES
    _import(tmp_path, doc)
    first, second = _lines(tmp_path / "o.manifest")
    second["coco-image"]["licenses-entry"]["name"] = "Public domain"
    (tmp_path / "o.manifest").write_bytes(orjson.dumps(first) + b"\n" + orjson.dumps(second) + b"\n")
    r = cli("convert", "o.manifest", "back.json", "--to", "coco", cwd=tmp_path)
    line = one_line_error(r, "convert")
    assert r.returncode == 1 and "line 2" in line and "license 3" in line and "[coco-image]" in line, line
    assert not (tmp_path / "back.json").exists()
