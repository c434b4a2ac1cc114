"""COCO bookkeeping a YOLO or task-data export cannot hold: a COCO import keeps the image's keys
(``coco-image``), each box's annotation id (``coco-id``) and an area other than the box's on the
line; ``convert --to yolo`` / ``dm-schema-v1`` / ``synapse-objects`` left them all out with exit 0
and nothing said. Now the summary counts the lines and one note names the keys and the first line.
"""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from tests.test_coco_carried_fields import _document
from totask_manifest._analytics.coco_left_out import COUNT
from totask_manifest._analytics.convert import convert


@pytest.mark.parametrize(("to", "out"), [("yolo", "y"), ("dm-schema-v1", "t.dm.jsonl"),
                                         ("synapse-objects", "t.objects.jsonl")])
def test_coco_keys_an_export_cannot_hold_are_counted_and_said(tmp_path: Path, to: str, out: str) -> None:
    (tmp_path / "c.json").write_bytes(orjson.dumps(_document()))
    convert(str(tmp_path / "c.json"), str(tmp_path / "o.manifest"), to="manifest")
    result = convert(str(tmp_path / "o.manifest"), str(tmp_path / out), to=to)
    assert result.counts[COUNT] == 2, result.counts
    said = [n for n in result.notes if "COCO keys" in n]
    assert len(said) == 1 and "coco-document, coco-image, coco-id, area" in said[0] and "first on line 1" in said[0], result.notes


def test_a_manifest_no_coco_import_wrote_says_nothing(tmp_path: Path) -> None:
    line = {"source-ref": "a.jpg", "label": {"image_size": [{"width": 10, "height": 10, "depth": 3}],
                                             "annotations": [{"class_id": 0, "left": 1, "top": 1, "width": 2, "height": 2}]},
            "label-metadata": {"class-map": {"0": "cat"}, "type": "groundtruth/object-detection",
                               "human-annotated": "yes", "objects": [{"confidence": 0.9}]}}
    (tmp_path / "o.manifest").write_bytes(orjson.dumps(line) + b"\n")
    result = convert(str(tmp_path / "o.manifest"), str(tmp_path / "y"), to="yolo")
    assert COUNT not in result.counts and not any("COCO" in n for n in result.notes)


@pytest.mark.parametrize(("to", "out"), [("yolo", "y"), ("dm-schema-v1", "t.dm.jsonl"),
                                         ("synapse-objects", "t.objects.jsonl")])
def test_an_unlabeled_first_lines_coco_document_is_counted_and_said(tmp_path: Path, to: str, out: str) -> None:
    """The first line holds ``coco-document`` but no label: the export does not write it, and its
    document sections were left out without a word (only labeled lines were counted)."""
    (tmp_path / "c.json").write_bytes(orjson.dumps(_document()))
    convert(str(tmp_path / "c.json"), str(tmp_path / "o.manifest"), to="manifest")
    lines = [orjson.loads(x) for x in (tmp_path / "o.manifest").read_bytes().splitlines()]
    lines[0] = {k: v for k, v in lines[0].items() if not k.startswith("label")}
    (tmp_path / "o.manifest").write_bytes(b"".join(orjson.dumps(x) + b"\n" for x in lines))
    result = convert(str(tmp_path / "o.manifest"), str(tmp_path / out), to=to)
    assert result.counts[COUNT] == 2, result.counts
    said = [n for n in result.notes if "COCO keys" in n]
    assert len(said) == 1 and "coco-document" in said[0] and "first on line 1" in said[0], result.notes
