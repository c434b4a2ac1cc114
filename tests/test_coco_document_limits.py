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
from totask_manifest._analytics.convert import convert
from totask_manifest._cli import main


def _many_licenses(n: int) -> list[dict]:
    return [{"id": i, "name": f"Attribution-NonCommercial-ShareAlike {i}",
             "url": f"http://creativecommons.org/licenses/by-nc-sa/2.0/{i}"} for i in range(1, n + 1)]


def _import(tmp_path: Path, doc: dict) -> list[str]:
    """``doc`` imported to ``o.manifest``: what the import said."""
    (tmp_path / "c.json").write_bytes(orjson.dumps(doc))
    return convert(str(tmp_path / "c.json"), str(tmp_path / "o.manifest"), to="manifest").notes


def test_a_document_past_the_value_limit_is_not_stored_and_said(tmp_path: Path) -> None:
    doc = _document()
    doc["licenses"] = _many_licenses(299)
    notes = _import(tmp_path, doc)
    said = [x for x in notes if "own sections" in x]
    assert len(said) == 1 and "'info', 'licenses'" in said[0] and "not carried" in said[0], notes
    assert "over the 20,000" in said[0], said
    first = _lines(tmp_path / "o.manifest")[0]
    assert "coco-document" not in first and first["coco-image"]["licenses-entry"]["id"] == 3
    assert main(["validate", str(tmp_path / "o.manifest")]) == 0


def test_a_document_within_the_limits_is_still_stored(tmp_path: Path) -> None:
    doc = _document()
    doc["licenses"] = _many_licenses(100)
    notes = _import(tmp_path, doc)
    assert not [x for x in notes if "own sections" in x], notes
    assert _lines(tmp_path / "o.manifest")[0]["coco-document"]["licenses"] == doc["licenses"]


def test_an_export_of_lines_without_the_first_says_the_documents_sections_are_not_there(tmp_path: Path) -> None:
    """A subset (or ``labeled``) without line 1: the export wrote its own ``info`` without a word."""
    _import(tmp_path, _document())
    (tmp_path / "sub.manifest").write_bytes((tmp_path / "o.manifest").read_bytes().split(b"\n", 1)[1])
    notes = convert(str(tmp_path / "sub.manifest"), str(tmp_path / "back.json"), to="coco").notes
    said = [x for x in notes if "no line holds 'coco-document'" in x]
    assert len(said) == 1 and "line 1 holds 'coco-image'" in said[0] and "'info' is this tool's" in said[0], notes
    assert "converted by totask-manifest" in orjson.loads((tmp_path / "back.json").read_bytes())["info"]["description"]


def test_an_export_of_the_whole_import_says_nothing_of_it(tmp_path: Path) -> None:
    _import(tmp_path, _document())
    notes = convert(str(tmp_path / "o.manifest"), str(tmp_path / "back.json"), to="coco").notes
    assert not [x for x in notes if "coco-document" in x], notes


def _bare_document() -> dict:
    """``_document`` without sections of its own: no ``info``, no ``licenses`` (valid COCO)."""
    doc = _document()
    del doc["info"], doc["licenses"]
    return doc


def test_a_round_trip_of_a_document_without_sections_of_its_own_says_nothing_was_lost(tmp_path: Path) -> None:
    """No ``info``, no ``licenses``: the import had nothing to store and stored nothing, so the
    export said "no line holds 'coco-document' ... its sections were not stored", though nothing
    was lost. The import now keeps ``{}`` there: the export tells the two apart."""
    notes = _import(tmp_path, _bare_document())
    assert not [x for x in notes if "not carried" in x], notes
    assert _lines(tmp_path / "o.manifest")[0]["coco-document"] == {}
    notes = convert(str(tmp_path / "o.manifest"), str(tmp_path / "back.json"), to="coco").notes
    assert not [x for x in notes if "coco-document" in x], notes
    back = orjson.loads((tmp_path / "back.json").read_bytes())
    assert [i["id"] for i in back["images"]] == [1, 2] and len(back["annotations"]) == 3
    assert "licenses" not in back and "info" not in back, back.keys()  # none there, none made up (an info was)
    assert set(back) == set(_bare_document()), back.keys()  # the document's own keys, no other
    # its lines without the first are still said: the {} is not there, and an import of a document
    # with sections may have been
    (tmp_path / "sub.manifest").write_bytes((tmp_path / "o.manifest").read_bytes().split(b"\n", 1)[1])
    notes = convert(str(tmp_path / "sub.manifest"), str(tmp_path / "back.json"), to="coco").notes
    assert len([x for x in notes if "no line holds 'coco-document'" in x]) == 1, notes


def test_an_empty_coco_document_is_not_counted_as_left_out_by_a_yolo_export(tmp_path: Path) -> None:
    """An unlabeled first line holding ``coco-document: {}`` leaves no section out."""
    from totask_manifest._analytics.coco_left_out import COUNT

    _import(tmp_path, _bare_document())
    lines = _lines(tmp_path / "o.manifest")
    lines[0] = {k: v for k, v in lines[0].items() if not k.startswith("label")}
    (tmp_path / "o.manifest").write_bytes(b"".join(orjson.dumps(x) + b"\n" for x in lines))
    result = convert(str(tmp_path / "o.manifest"), str(tmp_path / "y"), to="yolo")
    assert result.counts[COUNT] == 1, result.counts  # line 2's coco-image and coco-id only
    said = [n for n in result.notes if "COCO keys" in n]
    assert len(said) == 1 and "coco-document" not in said[0] and "first on line 2" in said[0], result.notes
