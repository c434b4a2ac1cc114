"""A COCO document's ``licenses`` and ``info`` through a manifest: the import said they were not
carried and the export wrote none, so ``convert c.json o.manifest`` then ``convert o.manifest
back.json --to coco`` lost every license's name and URL. Each image's line then carried its own
license entry under ``coco-image`` (``licenses-entry``), but the export wrote them in the order
the lines named them (``[3, 1, 2]`` came back ``[1, 3]``), a license no image names and the
``info`` were still lost (said). Now the first line keeps the document's own sections as they are
(``coco-document``) and the export writes them back: order and content kept.
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
    assert not said, said
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


def test_the_licenses_and_info_come_back_in_their_order_and_whole(tmp_path: Path) -> None:
    """Licenses [3, 1, 8] with images naming 3 then 1 and none naming 8: the export wrote [3, 1]
    in the order the lines named them and its own ``info``; now the document's sections as they were."""
    pycoco = pytest.importorskip("pycocotools.coco")
    doc = _document()
    doc["licenses"] = [LICENSES[1], LICENSES[0], {"id": 8, "name": "No known copyright restrictions"}]
    doc["images"][0]["license"], doc["images"][1]["license"] = 3, 1
    doc["extra"] = {"any": ["section"]}
    assert not _import(tmp_path, doc)
    r = cli("convert", "o.manifest", "back.json", "--to", "coco", cwd=tmp_path)
    assert r.returncode == 0 and not r.stderr, r.stderr
    back = orjson.loads((tmp_path / "back.json").read_bytes())
    for section in ("info", "licenses", "extra"):
        assert back[section] == doc[section], section
    with contextlib.redirect_stdout(io.StringIO()):
        assert pycoco.COCO(str(tmp_path / "back.json")).dataset["licenses"] == doc["licenses"]


def test_lines_without_the_first_still_carry_their_licenses(tmp_path: Path) -> None:
    """The first line (the document's sections) left out: each line's own license is written."""
    doc = _document()
    doc["licenses"] = LICENSES
    _import(tmp_path, doc)
    (tmp_path / "o.manifest").write_bytes((tmp_path / "o.manifest").read_bytes().split(b"\n", 1)[1])
    r = cli("convert", "o.manifest", "back.json", "--to", "coco", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    back = orjson.loads((tmp_path / "back.json").read_bytes())
    assert back["licenses"] == [LICENSES[1]] and "converted by totask-manifest" in back["info"]["description"]


def test_two_imports_in_one_manifest_write_the_first_document_and_say_the_other(tmp_path: Path) -> None:
    doc = _document()
    doc["licenses"] = LICENSES
    _import(tmp_path, doc)
    one = (tmp_path / "o.manifest").read_bytes()
    doc["info"] = {"description": "another"}
    _import(tmp_path, doc)
    (tmp_path / "o.manifest").write_bytes(one + (tmp_path / "o.manifest").read_bytes())
    r = cli("convert", "o.manifest", "back.json", "--to", "coco", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert orjson.loads((tmp_path / "back.json").read_bytes())["info"] == _document()["info"]
    said = [x for x in r.stdout.splitlines() if "coco-document" in x]
    assert len(said) == 1 and "first: line 3" in said[0] and "not carried" in said[0], r.stdout


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
