"""A COCO document's own sections (``coco-document``, on the first line) and what says they are gone.

An import stored ``info``, ``licenses`` and every other section as one value on line 1: 299
licenses imported with exit 0, then ``validate`` refused the manifest (``attribute-too-long``)
and so did ``annotate``. Now a document past Ground Truth's limits is not stored and the import
says so. An export of a manifest whose first line (holding them) is gone, or a YOLO or
task-data export of an unlabeled first line, left them out unsaid.
"""

from __future__ import annotations

from pathlib import Path

import orjson

from tests.test_coco_carried_fields import _document, _lines
from tests.test_user_mistakes import cli


def _many_licenses(n: int) -> list[dict]:
    return [{"id": i, "name": f"Attribution-NonCommercial-ShareAlike {i}",
             "url": f"http://creativecommons.org/licenses/by-nc-sa/2.0/{i}"} for i in range(1, n + 1)]


def test_a_document_past_the_value_limit_is_not_stored_and_said(tmp_path: Path) -> None:
    doc = _document()
    doc["licenses"] = _many_licenses(299)
    (tmp_path / "c.json").write_bytes(orjson.dumps(doc))
    r = cli("convert", "c.json", "o.manifest", "--to", "manifest", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    said = [x for x in r.stdout.splitlines() if "own sections" in x]
    assert len(said) == 1 and "'info', 'licenses'" in said[0] and "not carried" in said[0], r.stdout
    assert "over the 20,000" in said[0], said
    first = _lines(tmp_path / "o.manifest")[0]
    assert "coco-document" not in first and first["coco-image"]["licenses-entry"]["id"] == 3
    v = cli("validate", "o.manifest", cwd=tmp_path)
    assert v.returncode == 0, v.stdout + v.stderr


def test_a_document_within_the_limits_is_still_stored(tmp_path: Path) -> None:
    doc = _document()
    doc["licenses"] = _many_licenses(100)
    (tmp_path / "c.json").write_bytes(orjson.dumps(doc))
    r = cli("convert", "c.json", "o.manifest", "--to", "manifest", cwd=tmp_path)
    assert r.returncode == 0 and "own sections" not in r.stdout, r.stdout
    assert _lines(tmp_path / "o.manifest")[0]["coco-document"]["licenses"] == doc["licenses"]


def test_an_export_of_lines_without_the_first_says_the_documents_sections_are_not_there(tmp_path: Path) -> None:
    """A subset (or ``labeled``) without line 1: the export wrote its own ``info`` without a word."""
    (tmp_path / "c.json").write_bytes(orjson.dumps(_document()))
    assert cli("convert", "c.json", "o.manifest", "--to", "manifest", cwd=tmp_path).returncode == 0
    (tmp_path / "sub.manifest").write_bytes((tmp_path / "o.manifest").read_bytes().split(b"\n", 1)[1])
    r = cli("convert", "sub.manifest", "back.json", "--to", "coco", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    said = [x for x in r.stdout.splitlines() if "no line holds 'coco-document'" in x]
    assert len(said) == 1 and "line 1 holds 'coco-image'" in said[0] and "'info' is this tool's" in said[0], r.stdout
    assert "converted by totask-manifest" in orjson.loads((tmp_path / "back.json").read_bytes())["info"]["description"]


def test_an_export_of_the_whole_import_says_nothing_of_it(tmp_path: Path) -> None:
    (tmp_path / "c.json").write_bytes(orjson.dumps(_document()))
    assert cli("convert", "c.json", "o.manifest", "--to", "manifest", cwd=tmp_path).returncode == 0
    r = cli("convert", "o.manifest", "back.json", "--to", "coco", cwd=tmp_path)
    assert r.returncode == 0 and "coco-document" not in r.stdout, r.stdout
