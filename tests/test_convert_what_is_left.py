"""What an export used to leave out or let through without a word: a second label attribute first
met past the lines read to choose one, and a secret of the input's URL in the COCO document."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from totask_manifest._analytics.labels import SCAN_LINES
from totask_manifest._cli import main

pytest_plugins = ["totask_manifest.testing.fixtures"]

OUTPUTS = {"coco": "out.json", "yolo": "out", "dm-schema-v1": "out.dm.jsonl", "synapse-objects": "out.objects.jsonl"}


def box_line(i: int, attribute: str) -> bytes:
    return orjson.dumps({
        "source-ref": f"s3://b/{i}.jpg",
        attribute: {"image_size": [{"width": 160, "height": 120, "depth": 3}],
                    "annotations": [{"class_id": 0, "top": 1, "left": 1, "height": 5, "width": 5}]},
        f"{attribute}-metadata": {"objects": [{"confidence": 0.5}], "class-map": {"0": "cat"},
                                  "type": "groundtruth/object-detection", "human-annotated": "no",
                                  "creation-date": "2020-01-01T00:00:00.000000", "job-name": "labeling-job/j"},
    }) + b"\n"


@pytest.mark.parametrize("to", OUTPUTS)
def test_a_second_attribute_first_met_past_the_lines_read_to_choose_is_refused(tmp_path: Path, capsys, to: str) -> None:
    """``boxes`` on the first lines, ``other`` (also boxes) from line 2001: the export chose
    ``boxes`` from the first 2000 lines and counted ``other``'s lines as "skipped", its 100 boxes
    left out unsaid. A short file holding both was refused (exit 2): so is this one, naming the line."""
    src = tmp_path / "late.manifest"
    src.write_bytes(b"".join(box_line(i, "boxes" if i < SCAN_LINES else "other") for i in range(SCAN_LINES + 100)))
    assert main(["convert", str(src), str(tmp_path / OUTPUTS[to]), "--to", to]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert (f"holds several label attributes (boxes, other) (other first on line {SCAN_LINES + 1}, past the first "
            f"{SCAN_LINES} lines read to choose); choose one with --label-attribute") in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["late.manifest"]  # nothing written
    # named, the attribute is what the user chose: the other's lines are skipped, as they were
    assert main(["convert", str(src), str(tmp_path / OUTPUTS[to]), "--to", to, "--label-attribute", "boxes"]) == 0
    assert "skipped 100" in capsys.readouterr().out


def test_the_coco_document_names_its_input_without_the_urls_secret(tmp_path: Path, files, capsys) -> None:
    """``info.description`` said ``converted by totask-manifest from http://alice:pa55word99@...``
    (and a presigned URL's signature) while every message on the console hid them."""
    body = b"".join(box_line(i, "boxes") for i in range(3))
    signed = files.require_query("signed.manifest", **{"X-Amz-Signature": "SECRETSIG123456"})
    files.add("signed.manifest", body)
    login = files.require_login("login.manifest", "alice", "pa55word99")
    files.add("login.manifest", body)
    for url, secret in ((signed, "SECRETSIG123456"), (login, "pa55word99")):
        out = tmp_path / "out.json"
        assert main(["convert", url, str(out), "--to", "coco"]) == 0, capsys.readouterr()
        written = out.read_bytes()
        assert secret.encode() not in written and b"converted by totask-manifest from http://" in written
        assert len(orjson.loads(written)["annotations"]) == 3
        assert secret not in "".join(capsys.readouterr())


@pytest.mark.parametrize("to", OUTPUTS)
@pytest.mark.parametrize("field", ["width", "height"])
def test_every_export_refuses_a_box_of_negative_size(tmp_path: Path, capsys, to: str, field: str) -> None:
    """``validate`` refuses a negative width or height (``schema-minimum``); every export wrote it
    as it was (a COCO ``area`` of -190, a YOLO width of -0.03), and no import read it back."""
    line = orjson.loads(box_line(0, "boxes"))
    line["boxes"]["annotations"][0][field] = -5
    src = tmp_path / "neg.manifest"
    src.write_bytes(box_line(1, "boxes") + orjson.dumps(line) + b"\n")
    assert main(["validate", str(src)]) == 1
    capsys.readouterr()
    assert main(["convert", str(src), str(tmp_path / OUTPUTS[to]), "--to", to]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert f"line 2, key 'boxes.annotations[0].{field}': {field} -5 is negative [format-groundtruth]" in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["neg.manifest"]


@pytest.mark.parametrize("to", OUTPUTS)
def test_keys_of_a_box_label_no_export_writes_are_said(tmp_path: Path, capsys, to: str) -> None:
    """A box's ``rotation`` and ``occluded``, a key of the label value, an ``objects`` entry's
    ``note``: every export wrote the box and left them out with nothing said, where the same
    export names a metadata key it has no place for. Now they are named with it, once each."""
    line = orjson.loads(box_line(0, "boxes"))
    line["boxes"]["extra-field"] = 1
    line["boxes"]["annotations"] *= 2
    line["boxes"]["annotations"][0] = {**line["boxes"]["annotations"][0], "rotation": 30, "occluded": True}
    line["boxes-metadata"]["objects"] = [{"confidence": 0.5, "note": "check"}, {"confidence": 0.5, "note": "again"}]
    line["boxes-metadata"]["review"] = "x"
    src = tmp_path / "extra.manifest"
    src.write_bytes(box_line(1, "boxes") + orjson.dumps(line) + b"\n")
    assert main(["convert", str(src), str(tmp_path / OUTPUTS[to]), "--to", to]) == 0
    out = capsys.readouterr().out
    assert "lines with other keys left out 1" in out, out
    fmt = {"coco": "COCO", "yolo": "YOLO"}.get(to, to)
    assert (f"1 line holds keys a {fmt} export has no place for (boxes-metadata.review, boxes.extra-field, "
            "boxes.annotations[].rotation, boxes.annotations[].occluded, boxes-metadata.objects[].note; first on "
            "line 2), left out: convert --to parquet keeps every line whole") in out, out


def test_a_mistyped_folder_is_said_missing_not_a_manifest_to_a_manifest(tmp_path: Path, capsys) -> None:
    """``convert dataset_yolo_typo out.manifest --to manifest``: a name that is no folder is taken for
    a manifest, which said "both sides are manifests; nothing to convert"."""
    missing = tmp_path / "no-such-dataset"
    assert main(["convert", str(missing), str(tmp_path / "out.manifest"), "--to", "manifest"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == f"totask-manifest convert: error: no such file or folder: {missing}", err
    there = tmp_path / "in.manifest"
    there.write_bytes(box_line(0, "boxes"))
    assert main(["convert", str(there), str(tmp_path / "out.manifest"), "--to", "manifest"]) == 2
    assert "both sides are manifests" in capsys.readouterr().err


@pytest.mark.parametrize("to", OUTPUTS)
def test_a_routed_line_with_a_value_is_left_out_and_counted(tmp_path: Path, capsys, to: str) -> None:
    """A value beside ``review-status: routed`` (a model was not confident enough; ``stats`` counts
    the line routed) was exported as a label: a COCO annotation, a YOLO label file. It is left out
    and counted with the lines without a label ("skipped"), as a failed line is."""
    routed = orjson.loads(box_line(1, "boxes"))
    routed["boxes-metadata"]["review-status"] = "routed"
    src = tmp_path / "routed.manifest"
    src.write_bytes(box_line(0, "boxes") + orjson.dumps(routed) + b"\n")
    assert main(["convert", str(src), str(tmp_path / OUTPUTS[to]), "--to", to]) == 0
    assert "skipped 1" in capsys.readouterr().out
    written = tmp_path / OUTPUTS[to]
    text = b"".join(p.read_bytes() for p in written.rglob("*") if p.is_file()) if written.is_dir() else written.read_bytes()
    assert b"0.jpg" in text and b"1.jpg" not in text
