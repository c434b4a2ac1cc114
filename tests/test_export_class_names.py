"""An export (``convert --to coco/yolo/dm-schema-v1/synapse-objects``, ``apply``) takes its class
names from the label alone: a label that names none is said as the label's problem, never with a
``--class-names`` the export refuses; an empty name is refused for every task type."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from tests.test_user_mistakes import cli, one_line_error
from totask_manifest._synapse.apply import apply_job
from totask_manifest._synapse.apply_plan import converter
from totask_manifest._synapse.export import export_tasks
from totask_manifest.testing.builders import make_job, seed_tasks

pytest_plugins = ["totask_manifest.testing.fixtures"]

COMMON = {"human-annotated": "no", "creation-date": "2024-01-01T00:00:00.000000", "job-name": "labeling-job/j"}
BOX = {"image_size": [{"width": 10, "height": 10, "depth": 3}],
       "annotations": [{"class_id": 0, "left": 1, "top": 1, "width": 2, "height": 2}]}


def _line(attr: str, value: object, meta: dict) -> bytes:
    return orjson.dumps({"source-ref": "s3://b/a.jpg", attr: value, attr + "-metadata": {**meta, **COMMON}}) + b"\n"


UNNAMED_BOX = _line("boxes", BOX, {"type": "groundtruth/object-detection", "objects": [{"confidence": 0.9}]})


@pytest.mark.parametrize(("to", "out"), [("coco", "o.json"), ("yolo", "o"), ("dm-schema-v1", "o.dm.jsonl"),
                                         ("synapse-objects", "o.objects.jsonl")])
def test_a_box_label_with_no_class_map_is_said_without_class_names(tmp_path: Path, to: str, out: str) -> None:
    """It said "give the class names (--class-names FILE ...)", and ``convert`` then refused
    --class-names for every export. The line, the key and what to add to the label, exit 1."""
    (tmp_path / "in.manifest").write_bytes(UNNAMED_BOX)
    r = cli("convert", "in.manifest", out, "--to", to, cwd=tmp_path)
    line = one_line_error(r, "convert")
    assert r.returncode == 1
    assert "line 1" in line and "no name for class id 0" in line and "'class-map'" in line, line
    assert "--class-names" not in line and "class_names" not in line, line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.manifest"]


@pytest.mark.parametrize("data_format", ["dm-schema-v1", "synapse-objects"])
def test_apply_conversions_say_the_same(data_format: str) -> None:
    convert, _ = converter(data_format)
    with pytest.raises(ValueError, match="no name for class id 0") as caught:
        convert("object-detection", *_value_meta(UNNAMED_BOX, "boxes"))
    assert "class-names" not in str(caught.value) and "'class-map'" in str(caught.value)
    with pytest.raises(ValueError, match="no name for class id 2; the label's metadata has no 'class-name'"):
        convert("image-classification", 2, {"type": "groundtruth/image-classification"})


def _value_meta(raw: bytes, attr: str) -> tuple[object, dict]:
    record = orjson.loads(raw)
    return record[attr], record[attr + "-metadata"]


EMPTY_NAMES = [
    ("image-classification", 0, {"class-name": ""}, "class id 0 has an empty name in class-name"),
    ("image-classification-multilabel", [0, 1], {"class-map": {"0": "cat", "1": ""}, "confidence-map": {}},
     "class id 1 has an empty name in class-map"),
]


@pytest.mark.parametrize(("task_type", "value", "meta", "said"), EMPTY_NAMES)
@pytest.mark.parametrize(("to", "out"), [("dm-schema-v1", "o.dm.jsonl"), ("synapse-objects", "o.objects.jsonl")])
def test_an_empty_class_name_is_refused_as_for_boxes(tmp_path: Path, task_type: str, value: object, meta: dict,
                                                     said: str, to: str, out: str) -> None:
    """A classification with ``class-name: ""`` (or a class-map value "") went to Synapse with an
    empty class; it is refused in one line naming the line and the rule, as a box's is."""
    (tmp_path / "in.manifest").write_bytes(_line("cls", value, {"type": f"groundtruth/{task_type}", **meta}))
    r = cli("convert", "in.manifest", out, "--to", to, cwd=tmp_path)
    line = one_line_error(r, "convert")
    assert r.returncode == 1 and "line 1" in line and said in line and "[format-groundtruth]" in line, line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.manifest"]
    convert, _ = converter(to)
    with pytest.raises(ValueError, match=said):
        convert(task_type, value, {"type": f"groundtruth/{task_type}", **meta})


def test_apply_fails_the_task_of_a_label_with_no_class_map(synapse, files, client, tmp_path: Path) -> None:
    """Through ``apply`` itself: the task fails with the label's problem, the others are applied."""
    pid = seed_tasks(synapse, files, 3)
    export_tasks(pid, str(tmp_path / "e.manifest"), client=client)
    job_dir = make_job(tmp_path, tmp_path / "e.manifest")
    tasks = sorted(synapse.project_tasks(pid), key=lambda t: t["id"])
    out = job_dir / "manifests" / "output" / "output.manifest"
    lines = out.read_bytes().splitlines(keepends=True)
    record = orjson.loads(lines[0])
    del record["boxes-metadata"]["class-map"]
    lines[0] = orjson.dumps(record) + b"\n"
    out.write_bytes(b"".join(lines))
    report = apply_job(str(job_dir), client=client)
    first = next(r for r in report.results if r.task_id == tasks[0]["id"])
    assert first.status == "failed" and "no name for class id 0" in first.detail, first
    assert "class-names" not in first.detail and "'class-map'" in first.detail
    assert report.totals["applied"] == len(tasks) - 1


def test_a_file_job_line_with_an_empty_class_name_fails_as_class_name_missing() -> None:
    """A file job reading such a label fails the line with the rule a box's empty name has."""
    from totask_manifest._failure_rules import rule_of
    from totask_manifest._formats.detect import to_label
    from totask_manifest._formats.model import FormatError

    with pytest.raises(FormatError) as caught:
        to_label({"label": 0, "metadata": {"class-name": ""}}, "groundtruth", "image-classification")
    assert rule_of(f"format: {caught.value}") == "class-name-missing"


def test_validate_and_the_coco_readers_refuse_an_empty_class_name_as_the_exports_do(tmp_path: Path) -> None:
    """A COCO category named ``""`` was imported into ``class-map {"6": ""}``, which validate
    called valid and then every export refused. One rule now: validate refuses an empty name in a
    class-map (exit 1, naming the key), and a COCO document's empty category name is refused by
    the import and by a file job (``class-name-missing``, as a box's empty name is)."""
    from totask_manifest._failure_rules import rule_of
    from totask_manifest._formats.detect import to_label
    from totask_manifest._formats.model import FormatError

    meta = {"type": "groundtruth/object-detection", "objects": [{}], "class-map": {"0": ""}}
    (tmp_path / "in.manifest").write_bytes(_line("boxes", BOX, meta))
    r = cli("validate", "in.manifest", cwd=tmp_path)
    assert r.returncode == 1 and "boxes-metadata.class-map.0" in r.stdout + r.stderr, r.stdout + r.stderr
    (tmp_path / "ic.manifest").write_bytes(_line("cls", 0, {"type": "groundtruth/image-classification",
                                                            "class-name": "", "confidence": 1}))
    r = cli("validate", "ic.manifest", cwd=tmp_path)  # a classification's empty class-name: the same
    assert r.returncode == 1 and "cls-metadata.class-name" in r.stdout + r.stderr, r.stdout + r.stderr
    doc = {"images": [{"id": 1, "width": 10, "height": 10}], "categories": [{"id": 6, "name": ""}],
           "annotations": [{"id": 1, "image_id": 1, "category_id": 6, "bbox": [1, 1, 2, 2]}]}
    with pytest.raises(FormatError, match=r"category id 6 has an empty name in categories\[0\]") as caught:
        to_label(doc, "coco", "object-detection")
    assert rule_of(f"format: {caught.value}") == "class-name-missing"
    (tmp_path / "c.json").write_bytes(orjson.dumps(doc))
    r = cli("convert", "c.json", "m.manifest", "--to", "manifest", cwd=tmp_path)
    line = one_line_error(r, "convert")
    assert r.returncode == 1 and "category id 6 has an empty name" in line, line
    assert not (tmp_path / "m.manifest").exists()


@pytest.mark.parametrize(("name", "said"), [("   ", "is only spaces"), (None, "is null, not a string"),
                                            (7, "is 7, not a string")])
def test_a_class_name_of_spaces_or_no_string_is_refused_by_import_validate_and_every_export(
        tmp_path: Path, name: object, said: str) -> None:
    """One rule of what a class name may be (``class_names.class_name_problem``), read the same
    by the COCO readers, ``validate`` and the exports: a COCO category named ``null`` became the
    class ``"None"``, and one named ``"   "`` passed the import, ``validate`` and ``--to coco``
    while ``--to yolo`` refused it as empty."""
    from totask_manifest._failure_rules import rule_of
    from totask_manifest._formats.detect import to_label
    from totask_manifest._formats.model import FormatError

    doc = {"images": [{"id": 1, "width": 10, "height": 10}], "categories": [{"id": 6, "name": name}],
           "annotations": [{"id": 1, "image_id": 1, "category_id": 6, "bbox": [1, 1, 2, 2]}]}
    with pytest.raises(FormatError, match=rf"category id 6 has (?:an empty|no) name in categories\[0\]: its name {said}"
                       ) as caught:  # the file method
        to_label(doc, "coco", "object-detection")
    assert rule_of(f"format: {caught.value}") == "class-name-missing"
    (tmp_path / "c.json").write_bytes(orjson.dumps(doc))
    r = cli("convert", "c.json", "m.manifest", "--to", "manifest", cwd=tmp_path)
    assert r.returncode == 1 and said in one_line_error(r, "convert") and not (tmp_path / "m.manifest").exists()
    if not isinstance(name, str):
        return
    meta = {"type": "groundtruth/object-detection", "objects": [{}], "class-map": {"0": name}}
    (tmp_path / "in.manifest").write_bytes(_line("boxes", BOX, meta))
    r = cli("validate", "in.manifest", cwd=tmp_path)
    assert r.returncode == 1 and "boxes-metadata.class-map.0" in r.stdout + r.stderr, r.stdout + r.stderr
    (tmp_path / "ic.manifest").write_bytes(_line("cls", 0, {"type": "groundtruth/image-classification",
                                                            "class-name": name, "confidence": 1}))
    r = cli("validate", "ic.manifest", cwd=tmp_path)
    assert r.returncode == 1 and "cls-metadata.class-name" in r.stdout + r.stderr, r.stdout + r.stderr
    for to, out in (("coco", "o.json"), ("yolo", "o"), ("dm-schema-v1", "o.dm.jsonl")):
        r = cli("convert", "in.manifest", out, "--to", to, cwd=tmp_path)
        line = one_line_error(r, "convert")
        assert r.returncode == 1 and "class id 0" in line and said in line, (to, line)
        assert not (tmp_path / out).exists()


def test_the_class_name_rule_and_validates_schema_agree_on_every_character() -> None:
    """``class_name_problem`` and the schemas' ``"pattern": "\\S"`` (what validate reads) call the
    same one-character names blank: Python's ``str.strip`` and the schema engine's ``\\s`` differ
    on U+001C-U+001F, U+0085 and U+FEFF, which would make validate pass a name an export refuses."""
    import json

    import jsonschema_rs

    from totask_manifest._formats.class_names import class_name_problem

    defs = json.loads((Path(__file__).parent.parent / "schemas" / "_defs.json").read_text())["$defs"]
    schema = defs["class-map"]["additionalProperties"]
    check = jsonschema_rs.validator_for(schema)
    differ = [hex(c) for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF
              and check.is_valid(chr(c)) != (class_name_problem(chr(c)) is None)]
    assert differ == []
    assert check.is_valid("a ") and class_name_problem(" \u3000\ufeff") == "is only spaces"


def test_validate_says_a_blank_class_name_is_blank(tmp_path: Path) -> None:
    """``validate`` named a blank class name by the schema engine's words, ``"  " does not match
    "\\S"``: a regular expression, not the rule. It says the name is blank, with either engine."""
    import jsonschema

    from totask_manifest._manifest.schemas import _NOT_BLANK_PATTERN

    line = {"source-ref": "s3://b/a.jpg",
            "b": {"image_size": [{"width": 10, "height": 10, "depth": 3}],
                  "annotations": [{"class_id": 0, "left": 1, "top": 1, "width": 2, "height": 2}]},
            "b-metadata": {"objects": [{"confidence": 0.5}], "class-map": {"0": " \u3000"},
                           "type": "groundtruth/object-detection", "human-annotated": "no",
                           "creation-date": "2026-01-01T00:00:00.000000", "job-name": "labeling-job/x"}}
    (tmp_path / "in.manifest").write_bytes(orjson.dumps(line) + b"\n")
    r = cli("validate", "in.manifest", cwd=tmp_path)
    assert r.returncode == 1
    assert "b-metadata.class-map.0: \" \u3000\" is blank: it needs a character other than white space " \
           "[schema-pattern]" in r.stdout, r.stdout
    [fallback] = jsonschema.Draft202012Validator({"pattern": "\\S"}).iter_errors("  ")
    assert _NOT_BLANK_PATTERN.search(fallback.message), fallback.message  # the fallback engine's words too
