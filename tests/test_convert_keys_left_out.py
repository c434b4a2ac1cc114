"""A COCO, YOLO or task-data export writes one label attribute's boxes, classes and scores; the
rest of a line (``annotation-ref``, another attribute, an adjustment job's ``adjustment-status``,
``job-name``) was left out with exit 0 and nothing said. Each export now counts those lines and
says which keys, from which line, in one note; a line holding only what the export carries gets
none."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from totask_manifest._analytics.convert import convert
from totask_manifest._analytics.keys_left_out import COUNT

OUTPUTS = {"coco": ("out.json", "COCO"), "yolo": ("out", "YOLO"), "dm-schema-v1": ("out.dm.jsonl", "dm-schema-v1"),
           "synapse-objects": ("out.objects.jsonl", "synapse-objects")}


def line(image: str, **extra) -> dict:
    return {"source-ref": f"s3://b/{image}.jpg",
            "boxes": {"image_size": [{"width": 100, "height": 80, "depth": 3}],
                      "annotations": [{"class_id": 0, "top": 1, "left": 1, "height": 5, "width": 5}]},
            "boxes-metadata": {"objects": [{"confidence": 0.5}], "class-map": {"0": "cat"},
                               "type": "groundtruth/object-detection", "human-annotated": "no"},
            **extra}


def write(path: Path, records: list[dict]) -> Path:
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))
    return path


@pytest.mark.parametrize("to", OUTPUTS)
def test_an_export_says_which_keys_of_which_lines_it_left_out(tmp_path: Path, to: str) -> None:
    plain = line("a")
    adjusted = line("b", **{"annotation-ref": "s3://b/b.json"})
    adjusted["boxes-metadata"]["adjustment-status"] = "adjusted"
    src = write(tmp_path / "in.manifest", [plain, adjusted, line("c", **{"review": {"x": 1}})])
    out, fmt = OUTPUTS[to]
    result = convert(str(src), str(tmp_path / out), to=to)
    assert result.counts[COUNT] == 2
    [note] = [n for n in result.notes if "has no place for" in n]
    assert note == (f"2 lines hold keys a {fmt} export has no place for (annotation-ref, "
                    "boxes-metadata.adjustment-status, review; first on line 2), left out: convert --to parquet "
                    "keeps every line whole")


@pytest.mark.parametrize("to", OUTPUTS)
def test_a_line_of_what_the_export_carries_gets_no_note(tmp_path: Path, to: str) -> None:
    src = write(tmp_path / "in.manifest", [line("a"), line("b")])
    out, _ = OUTPUTS[to]
    result = convert(str(src), str(tmp_path / out), to=to)
    assert COUNT not in result.counts and not [n for n in result.notes if "has no place for" in n], result


def test_task_data_carries_the_synapse_task_id_and_coco_says_it_is_left_out(tmp_path: Path) -> None:
    src = write(tmp_path / "in.manifest", [line("a", synapse={"task_id": 7, "project": 1})])
    assert COUNT not in convert(str(src), str(tmp_path / "t.jsonl"), to="dm-schema-v1").counts
    assert orjson.loads((tmp_path / "t.jsonl").read_bytes())["task_id"] == 7
    result = convert(str(src), str(tmp_path / "c.json"), to="coco")
    assert result.counts[COUNT] == 1 and "(synapse; first on line 1)" in result.notes[-1]


@pytest.mark.parametrize("to", OUTPUTS)
def test_a_key_written_twice_is_refused_as_validate_refuses_it(tmp_path: Path, to: str, capsys) -> None:
    """A reader keeps the last copy: the COCO ``file_name`` was the second ``source-ref``, a box's
    class the second ``class_id``, with exit 0."""
    from totask_manifest._cli import main

    first = orjson.dumps(line("a"))
    twice = first[:-1] + b',"source-ref":"s3://b/second.jpg"}'
    src = tmp_path / "in.manifest"
    src.write_bytes(orjson.dumps(line("z")) + b"\n" + twice + b"\n")
    out, _ = OUTPUTS[to]
    assert main(["convert", str(src), str(tmp_path / out), "--to", to]) == 1
    err = capsys.readouterr().err
    assert err == ("totask-manifest convert: error: line 2, key 'source-ref': the key appears more than once in its "
                   "object: a reader keeps one copy, so the export would take the last, unsaid (validate names every "
                   "repeated key) [duplicate-key]\n"), err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.manifest"]


@pytest.mark.parametrize("to", OUTPUTS)
def test_keys_past_the_named_twelve_are_counted_not_dropped_from_the_note(tmp_path: Path, to: str) -> None:
    """A tester's line held 16 extra top-level keys and four of its label's own: the note named
    twelve and stopped, and the label's keys (met last) were left out unsaid."""
    first = line("a", **{f"k{n:02}": n for n in range(16)})
    first["boxes"]["extra-label"] = 1
    first["boxes-metadata"]["extra-meta"] = {"x": 1}
    second = line("b", **{"k00": 0, "late": True})
    src = write(tmp_path / "in.manifest", [first, second])
    out, fmt = OUTPUTS[to]
    [note] = [n for n in convert(str(src), str(tmp_path / out), to=to).notes if "has no place for" in n]
    named = ", ".join(f"k{n:02}" for n in range(12))
    assert note == (f"2 lines hold keys a {fmt} export has no place for ({named} and 7 more; first on line 1), "
                    "left out: convert --to parquet keeps every line whole"), note
