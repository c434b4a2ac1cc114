"""Conversions that dropped data with exit 0 and nothing said, through the real CLI (a subprocess).

Each case was read or written whole before: a COCO annotation's ``track_id`` or ``ignore: 1``
left out of the line, an ``objects`` box keeping id 3 where its line's ``class_map`` gives its
class id 0 (one class, two ids), a DM v1 ``annotationsData`` entry no annotation names left out,
and a line holding inline text (``source``) coming back from COCO, YOLO and task data with its
text as a ``source-ref``. Now each is refused in one line naming the key (exit 1, nothing
written), or carried (``--allow-drop`` counts what it leaves out; task data keeps ``source``).
"""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from tests.test_user_mistakes import cli, one_line_error

SIZE = [{"width": 100, "height": 80, "depth": 3}]
BOX = {"class_id": 0, "top": 2, "left": 1, "height": 4, "width": 3}


def _write(path: Path, *docs: dict) -> Path:
    path.write_bytes(b"".join(orjson.dumps(d) + b"\n" for d in docs))
    return path


def _refused(tmp_path: Path, src: str, *args: str) -> str:
    before = sorted(p.name for p in tmp_path.iterdir())
    r = cli("convert", src, *args, cwd=tmp_path)
    line = one_line_error(r, "convert")
    assert r.returncode == 1, r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing half-written
    return line


def _coco(**extra: object) -> dict:
    ann = {"id": 5, "image_id": 1, "category_id": 1, "bbox": [1, 2, 3, 4], "area": 12, "iscrowd": 0, **extra}
    return {"images": [{"id": 1, "file_name": "a.jpg", "width": 100, "height": 80}],
            "categories": [{"id": 1, "name": "cat"}], "annotations": [ann]}


@pytest.mark.parametrize(("extra", "key"), [({"track_id": 7}, "track_id"), ({"ignore": 1}, "ignore"),
                                            ({"ignore": 0, "track_id": 7}, "track_id")])
def test_a_coco_key_no_box_holds_is_refused_naming_it_and_the_annotation_id(
    tmp_path: Path, extra: dict, key: str
) -> None:
    (tmp_path / "c.json").write_bytes(orjson.dumps(_coco(**extra)))
    line = _refused(tmp_path, "c.json", "out.manifest", "--to", "manifest")
    assert f"key 'annotations[0].{key}'" in line and f"annotation id 5 holds '{key}'" in line, line
    assert "--allow-drop" in line and "[format-coco]" in line, line

    r = cli("convert", "c.json", "out.manifest", "--to", "manifest", "--allow-drop", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "dropped 1)" in r.stdout, r.stdout
    (rec,) = [orjson.loads(x) for x in (tmp_path / "out.manifest").read_bytes().splitlines()]
    assert rec["label"]["annotations"] == [BOX]
    assert rec["label-metadata"]["dropped"] == {f"annotation key {k}": 1 for k in extra if extra[k]}


def test_a_zero_ignore_flag_as_label_studio_writes_it_is_read(tmp_path: Path) -> None:
    """Label Studio's COCO export writes ``"ignore": 0`` on every annotation: it says nothing."""
    (tmp_path / "c.json").write_bytes(orjson.dumps(_coco(ignore=0)))
    r = cli("convert", "c.json", "out.manifest", "--to", "manifest", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    (rec,) = [orjson.loads(x) for x in (tmp_path / "out.manifest").read_bytes().splitlines()]
    assert rec["label"]["annotations"] == [BOX] and "dropped" not in rec["label-metadata"]


def _objects_line(*objects: dict) -> dict:
    return {"source-ref": "a.jpg", "task_type": "object-detection", "image_size": [100, 80, 3],
            "class_map": {"0": "cat"}, "data": {"objects": list(objects)}}


def _obj(**extra: object) -> dict:
    return {"type": "bbox", "coordinates": {"x": 1, "y": 2, "width": 3, "height": 4},
            "properties": {"label": "cat"}, **extra}


def test_an_object_numbering_its_class_otherwise_than_the_class_map_is_refused(tmp_path: Path) -> None:
    """The box kept id 3 and a second ``cat`` box got the class_map's 0: one class, two ids."""
    _write(tmp_path / "o.objects.jsonl", _objects_line(_obj(class_id=3), _obj()))
    line = _refused(tmp_path, "o.objects.jsonl", "out.manifest", "--to", "manifest")
    assert "line 1, key 'objects[0].properties.label'" in line, line
    assert "class 'cat' has id 3 here but 0 among the class names given" in line, line
    assert "[format-synapse-objects]" in line, line


def test_an_object_agreeing_with_the_class_map_is_read(tmp_path: Path) -> None:
    _write(tmp_path / "o.objects.jsonl", _objects_line(_obj(class_id=0), _obj()))
    r = cli("convert", "o.objects.jsonl", "out.manifest", "--to", "manifest", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    (rec,) = [orjson.loads(x) for x in (tmp_path / "out.manifest").read_bytes().splitlines()]
    assert rec["label"]["annotations"] == [BOX, BOX] and rec["label-metadata"]["class-map"] == {"0": "cat"}


def test_a_dm_v1_annotations_data_entry_no_annotation_names_is_refused(tmp_path: Path) -> None:
    data = {"annotations": {"image_1": [{"id": "a1", "tool": "bounding_box", "classification": {"class": "cat"}}]},
            "annotationsData": {"image_1": [{"id": "a1", "coordinate": {"x": 1, "y": 2, "width": 3, "height": 4}},
                                            {"id": "zz9", "coordinate": {"x": 5, "y": 6, "width": 7, "height": 8}}]}}
    _write(tmp_path / "d.dm.jsonl", {"source-ref": "a.jpg", "task_type": "object-detection",
                                     "image_size": [100, 80, 3], "data": data})
    line = _refused(tmp_path, "d.dm.jsonl", "out.manifest", "--to", "manifest")
    assert "line 1, key 'annotationsData.image_1[1].id'" in line, line
    assert "annotationsData entry id 'zz9' has no annotation with that id" in line, line
    assert "[format-dm-schema-v1]" in line, line


def _inline_manifest(tmp_path: Path) -> Path:
    meta = {"objects": [{}], "class-map": {"0": "cat"}, "type": "groundtruth/object-detection",
            "human-annotated": "yes", "creation-date": "2026-01-01T00:00:00.000000", "job-name": "labeling-job/j"}
    return _write(tmp_path / "t.manifest", {"source": "the quick brown fox",
                                            "label": {"image_size": SIZE, "annotations": [BOX]},
                                            "label-metadata": meta})


@pytest.mark.parametrize(("to", "out", "name"), [("coco", "c.json", "COCO"), ("yolo", "y", "YOLO")])
def test_an_inline_text_line_is_refused_by_image_formats(tmp_path: Path, to: str, out: str, name: str) -> None:
    """Its text came back from COCO's ``file_name`` / YOLO's index as a ``source-ref``."""
    _inline_manifest(tmp_path)
    line = _refused(tmp_path, "t.manifest", out, "--to", to)
    assert "line 1, key 'source'" in line and f"and {name} names an image file" in line, line
    assert "[convert-inline-source]" in line, line


@pytest.mark.parametrize(("to", "out"), [("dm-schema-v1", "t.dm.jsonl"), ("synapse-objects", "t.objects.jsonl")])
def test_an_inline_text_line_comes_back_from_task_data_as_source(tmp_path: Path, to: str, out: str) -> None:
    src = _inline_manifest(tmp_path)
    r = cli("convert", "t.manifest", out, "--to", to, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    (exported,) = [orjson.loads(x) for x in (tmp_path / out).read_bytes().splitlines()]
    assert exported["source"] == "the quick brown fox" and "source-ref" not in exported
    r = cli("convert", out, "back.manifest", "--to", "manifest", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    (back,) = [orjson.loads(x) for x in (tmp_path / "back.manifest").read_bytes().splitlines()]
    (orig,) = [orjson.loads(x) for x in src.read_bytes().splitlines()]
    assert back["source"] == orig["source"] and "source-ref" not in back
    assert back["label"] == orig["label"]
