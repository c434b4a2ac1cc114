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
