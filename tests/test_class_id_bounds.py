"""A box's class id that is no integer within 64 bits (``1.0``, ``"1"``, 2**63, 2**64, which orjson
reads as a float) is refused by every export in one line naming the line, the key and the rule,
as ``validate`` refuses it. Each export used to read such an id its own way: a ``KeyError``
traceback (``dm-schema-v1``), a ``TypeError`` (``coco`` on ``"1"``), ``2.0`` written as a COCO
category, ``"1"`` written as YOLO class 1, a pyarrow ``OverflowError`` (Parquet on 2**63). And a
YOLO folder numbers classes 0 to n-1, so one large id asked for that many placeholder names and
ran the system out of memory: it is refused above ``MAX_CLASS_ID``."""

from __future__ import annotations

from pathlib import Path

import orjson
import pyarrow.parquet as pq
import pytest

from totask_manifest._analytics.yolo_classes import MAX_CLASS_ID
from totask_manifest._cli import main

pytest_plugins = ["totask_manifest.testing.fixtures"]


def box_line(class_id: str, key: str, image: str = "a", name: str = "cat") -> bytes:
    """A bounding-box line of ``image`` whose one box has ``class_id`` (JSON text) and a class map naming ``key``."""
    return (b'{"source-ref":"s3://b/%s.jpg","boxes":{"image_size":[{"width":100,"height":80,"depth":3}],'
            b'"annotations":[{"class_id":%s,"top":1,"left":1,"height":5,"width":5}]},"boxes-metadata":'
            b'{"objects":[{"confidence":0.5}],"class-map":{"%s":"%s"},"type":"groundtruth/object-detection",'
            b'"human-annotated":"no","creation-date":"2024-01-01T00:00:00.000000","job-name":"labeling-job/x"}}\n'
            % (image.encode(), class_id.encode(), key.encode(), name.encode()))


BAD_IDS = {"float": ("1.0", "1"), "string": ('"1"', "1"), "over-int64": (str(2**63), str(2**63)),
           "read-as-float": (str(2**64), str(2**64))}
OUTPUTS = {"dm-schema-v1": "out.dm.jsonl", "synapse-objects": "out.objects.jsonl", "coco": "out.json", "yolo": "out"}


@pytest.mark.parametrize("to", OUTPUTS)
@pytest.mark.parametrize("case", BAD_IDS)
def test_every_export_refuses_a_class_id_that_is_no_64_bit_integer(tmp_path: Path, capsys, case: str, to: str) -> None:
    src = tmp_path / "in.manifest"
    src.write_bytes(box_line(*BAD_IDS[case]))
    assert main(["convert", str(src), str(tmp_path / OUTPUTS[to]), "--to", to]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    if case in ("over-int64", "read-as-float") and to == "yolo":  # the class map is met first: too many classes
        assert f"line 1, key 'boxes-metadata.class-map': class id {BAD_IDS[case][1]} is over {MAX_CLASS_ID:,}: " in err, err
    else:
        assert "line 1, key 'boxes.annotations[0].class_id': class id must be a non-negative integer within 64 bits, " \
               f"got {BAD_IDS[case][0] if case != 'read-as-float' else '1.8446744073709552e+19'} [format-groundtruth]" \
               in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.manifest"]  # nothing written, no temporary left


@pytest.mark.parametrize(("class_id", "said"), [
    ("1.0", "class_id 1.0 is written as a fraction or with an exponent; a class id is an integer written as one "
            "(1, not 1.0) [schema-type]"),
    (str(2**63), f"{2**63} is greater than the maximum of {2**63 - 1} [schema-maximum]"),
])
def test_validate_names_what_is_wrong_with_the_id(tmp_path: Path, capsys, class_id: str, said: str) -> None:
    """It said ``class_id 1.0 is not a key of the class-map`` of a map holding ``"1"``, and took 2**63."""
    src = tmp_path / "in.manifest"
    src.write_bytes(box_line(class_id, class_id.removesuffix(".0")) * 3)  # the typed path reads runs of lines
    assert main(["validate", str(src), "--workers", "1"]) == 1
    out = capsys.readouterr().out
    assert f"line 1: error: boxes.annotations[0].class_id: {said}" in out, out
    assert "class-map-missing-class" not in out


def test_parquet_keeps_an_id_its_column_cannot_hold_in_raw_only(tmp_path: Path) -> None:
    src = tmp_path / "in.manifest"
    src.write_bytes(box_line(str(2**63), str(2**63)) + box_line("2", "2", "b"))
    assert main(["convert", str(src), str(tmp_path / "out.parquet"), "--to", "parquet"]) == 0
    rows = pq.read_table(tmp_path / "out.parquet").to_pylist()
    assert [row["labels"][0]["boxes"][0]["class_id"] for row in rows] == [None, 2]
    assert main(["convert", str(tmp_path / "out.parquet"), str(tmp_path / "back.manifest"), "--to", "manifest"]) == 0
    assert (tmp_path / "back.manifest").read_bytes() == src.read_bytes()


def test_yolo_refuses_a_class_id_that_would_need_too_many_names(tmp_path: Path, capsys) -> None:
    src = tmp_path / "in.manifest"
    big = MAX_CLASS_ID + 1
    src.write_bytes(box_line("2", "2") + box_line(str(big), str(big), "b"))
    assert main(["convert", str(src), str(tmp_path / "out"), "--to", "yolo"]) == 1
    err = capsys.readouterr().err
    assert err == (f"totask-manifest convert: error: line 2, key 'boxes-metadata.class-map': class id {big} is over {MAX_CLASS_ID:,}: "
                   f"YOLO numbers the classes 0 to n-1, a line of classes.txt each, so it would take {big + 1:,} names; "
                   f"renumber the classes below {big:,} first; nothing was written [yolo-class]\n")
    assert not (tmp_path / "out").exists()


def test_yolo_takes_gaps_below_the_cap(tmp_path: Path) -> None:
    src = tmp_path / "in.manifest"
    src.write_bytes(box_line("2", "2") + box_line("90", "90", "b", "dog"))
    assert main(["convert", str(src), str(tmp_path / "out"), "--to", "yolo"]) == 0
    names = (tmp_path / "out" / "classes.txt").read_text().splitlines()
    assert len(names) == 91 and (names[2], names[90]) == ("cat", "dog") and names[3] == "class_3"
    index = [orjson.loads(line) for line in (tmp_path / "out" / "index.jsonl").read_bytes().splitlines()]
    assert [row["line"] for row in index] == [1, 2]


def test_yolo_reads_the_cap_on_the_id_as_read(tmp_path: Path, capsys) -> None:
    """A class-map key with spaces (" 99999999999") is read as that id: it passed the cap and ran out of memory."""
    src = tmp_path / "in.manifest"
    src.write_bytes(box_line("99999999999", " 99999999999"))
    assert main(["convert", str(src), str(tmp_path / "out"), "--to", "yolo"]) == 1
    err = capsys.readouterr().err
    assert "class id 99999999999 is over 99,999" in err and "[yolo-class]" in err, err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("written", [1.0, "1"])
def test_a_label_file_a_job_reads_takes_1_0_as_1_and_writes_it_so_where_an_export_refuses_it(written) -> None:
    """A Ground Truth label file made with pandas holds 1.0: the file annotator reads it as 1 and
    writes 1 (a label ``validate`` takes); an export of a manifest line holding it refuses it."""
    from totask_manifest._formats.groundtruth import exported_label, from_groundtruth
    from totask_manifest._formats.model import FormatError

    value = {"image_size": [{"width": 100, "height": 80, "depth": 3}],
             "annotations": [{"class_id": written, "top": 1, "left": 1, "height": 5, "width": 5}]}
    meta = {"objects": [{"confidence": 0.5}], "class-map": {"1": "cat"}, "type": "groundtruth/object-detection"}
    read = from_groundtruth({"label": value, "metadata": meta}, "object-detection")
    assert read.value["annotations"][0]["class_id"] == 1 and type(read.value["annotations"][0]["class_id"]) is int
    assert value["annotations"][0]["class_id"] == written  # the caller's document is left as it was
    multi = from_groundtruth({"label": [written], "metadata": {"class-map": {"1": "cat"}}}, "image-classification-multilabel")
    assert multi.value == [1] and type(multi.value[0]) is int
    with pytest.raises(FormatError, match="class id must be a non-negative integer within 64 bits"):
        exported_label("object-detection", value, meta)


def _classification_line(label: str) -> bytes:
    return (b'{"source-ref":"s3://b/a.jpg","cls":%s,"cls-metadata":{"class-name":"x","confidence":0.9,'
            b'"type":"groundtruth/image-classification","job-name":"labeling-job/j","human-annotated":"no",'
            b'"creation-date":"2020-01-01T00:00:00.000000"}}\n' % label.encode())


@pytest.mark.parametrize("many", [1, 400], ids=["alone", "after-400-good-lines"])  # the per-line and the typed path
@pytest.mark.parametrize(("label", "valid"), [
    ('"3"', True), (f'"{2**63 - 1}"', True), (f'"{2**63}"', False), (f'"{10**19 + 7}"', False),
    ('"99999999999999999999"', False), ('"03"', False),
])
def test_a_classification_label_of_digits_is_a_class_index_within_64_bits(
        tmp_path: Path, capsys, label: str, valid: bool, many: int) -> None:
    """A label written as a string of digits above 2**63 - 1 passed ``validate``, and every export
    refused it: validate holds it to the bound an integer label has (``class-index-digits``)."""
    src = tmp_path / "in.manifest"
    src.write_bytes(_classification_line('"1"') * (many - 1) + _classification_line(label))
    code = main(["validate", str(src), "--label-attribute", "cls"])
    out = capsys.readouterr()
    assert code == (0 if valid else 1), out
    if not valid:
        assert f"line {many}: error: cls: {label} is not valid under any of the schemas" in out.out + out.err
    else:
        assert main(["convert", str(src), str(tmp_path / "out.dm.jsonl"), "--to", "dm-schema-v1",
                     "--label-attribute", "cls"]) == 0, capsys.readouterr()


@pytest.mark.parametrize("many", [1, 400], ids=["alone", "after-400-good-lines"])  # the per-line and the typed path
@pytest.mark.parametrize(("key", "valid"), [(str(2**63 - 1), True), (str(2**63), False), ("99999999999999999999", False)])
def test_a_class_map_key_is_a_class_index_within_64_bits(tmp_path: Path, capsys, key: str, valid: bool, many: int) -> None:
    """A class map naming class 2**63 passed ``validate`` (its keys were any digits), and every export
    refused it; the typed path, whose keys decode as 64-bit ints, sent such a line to the per-line
    path, which took it. Both refuse it now, as ``class-index-digits`` bounds a label's digits."""
    good = box_line("0", "0")
    line = good.replace(b'"class-map":{"0":"cat"}', b'"class-map":{"0":"cat","%s":"dog"}' % key.encode())
    src = tmp_path / "in.manifest"
    src.write_bytes(good * (many - 1) + line)
    code = main(["validate", str(src), "--label-attribute", "boxes"])
    out = capsys.readouterr()
    assert code == (0 if valid else 1), out
    if not valid:
        assert (f'line {many}: error: boxes-metadata.class-map: "{key}" is not a class index: the digits of an integer '
                'from 0 to 2**63 - 1 [schema-pattern]') in out.out + out.err, out
    coco = main(["convert", str(src), str(tmp_path / "out.json"), "--to", "coco"])
    if not valid:
        assert coco == 1
        return
    # COCO's category id is the class id + 1, which 2**63 - 1 has not within 64 bits (docs/analytics.md)
    assert coco == 1 and "has no COCO category id" in capsys.readouterr().err
    assert main(["convert", str(src), str(tmp_path / "out.dm.jsonl"), "--to", "dm-schema-v1",
                 "--label-attribute", "boxes"]) == 0, capsys.readouterr()


@pytest.mark.parametrize("engine", ["jsonschema", "jsonschema_rs"])
def test_both_schema_engines_say_the_class_index_bound_as_a_rule_not_its_pattern(engine: str, monkeypatch) -> None:
    """The bound's pattern is 600 characters of alternatives; each engine quotes it its own way
    (jsonschema: single quotes, jsonschema-rs: double), and the message says the rule instead."""
    import importlib

    from totask_manifest._manifest import schemas

    digits = schemas.ref("_defs", "/$defs/class-index-digits")
    module = importlib.import_module(engine)
    if engine == "jsonschema":  # the engine where jsonschema-rs is not installed
        monkeypatch.setattr(schemas, "_rs", None)
        check = module.Draft202012Validator({"$ref": digits}, registry=schemas._py_registry())
    else:
        check = module.validator_for({"$ref": digits}, registry=schemas._rs_registry())
    [error] = list(check.iter_errors("99999999999999999999"))
    converted = schemas._convert(error, "99999999999999999999")
    assert converted.keyword == "pattern"
    assert converted.message.endswith("99999999999999999999\" is not a class index: the digits of an integer "
                                      "from 0 to 2**63 - 1".replace('"', "'" if engine == "jsonschema" else '"'))
