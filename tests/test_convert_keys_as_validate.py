"""``convert`` names a label's key as ``validate`` does (``b.annotations[0].width``,
``b-metadata.objects``): it named ``annotations[0].width``, no attribute, while the YOLO
outside-image refusal named ``b.``. A job's own output manifest, whose ``source-ref`` s are its
input's relative ones, is read where the job read them, by ``convert`` and by ``labeled``."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import orjson
import pytest

from tests.jobs_helpers import quick_start_job
from totask_manifest._cli import main

REPO = Path(__file__).resolve().parents[1]
OUTPUTS = {"coco": "o.json", "yolo": "o", "dm-schema-v1": "o.dm.jsonl", "synapse-objects": "o.objects.jsonl"}


def _line(i: int, **changes: object) -> bytes:
    value = {"image_size": [{"width": 100, "height": 80, "depth": 3}],
             "annotations": [{"class_id": 0, "left": 10, "top": 5, "width": 30, "height": 20}]}
    meta = {"objects": [{"confidence": 0.5}], "class-map": {"0": "cat"}, "type": "groundtruth/object-detection",
            "human-annotated": "no", "creation-date": "2020-01-01T00:00:00.000000", "job-name": "labeling-job/x"}
    for where, key, new in changes.get("edits", ()):  # type: ignore[attr-defined]
        target = value if where == "b" else meta
        if new is None:
            del target[key]
        else:
            target[key] = new
    return orjson.dumps({"source-ref": f"s3://b/i{i}.jpg", "b": value, "b-metadata": meta}) + b"\n"


CASES = {
    "width": ([("b", "annotations", [{"class_id": 0, "left": 10, "top": 5, "width": -5, "height": 20}])],
              "b.annotations[0].width"),
    "objects": ([("m", "objects", [])], "b-metadata.objects"),
    "image_size": ([("b", "image_size", None)], "b.image_size"),
    "confidence": ([("m", "objects", [{"confidence": 1.5}])], "b-metadata.objects[0].confidence"),
}


@pytest.mark.parametrize("to", OUTPUTS)
@pytest.mark.parametrize("case", CASES)
def test_every_export_names_the_key_with_its_attribute_as_validate_does(tmp_path: Path, capsys, case: str,
                                                                      to: str) -> None:
    edits, key = CASES[case]
    src = tmp_path / "in.manifest"
    src.write_bytes(_line(0) + _line(1, edits=edits))
    assert main(["validate", str(src)]) == 1
    assert key in capsys.readouterr().out or case == "image_size"  # validate: b: "image_size" is required
    assert main(["convert", str(src), str(tmp_path / OUTPUTS[to]), "--to", to]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"line 2, key '{key}': " in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.manifest"]


def _kept_job(tmp_path: Path, capsys, monkeypatch) -> Path:
    """The quick start's job with its documents kept as they are (no image size in the label):
    its output manifest's ``source-ref`` s are ``images/img_000.jpg``, relative to sample_data."""
    monkeypatch.chdir(tmp_path)
    output = quick_start_job(tmp_path / "out", "keep", "keep")
    capsys.readouterr()
    return output


def test_a_jobs_own_output_reads_its_relative_references_where_the_job_did(tmp_path: Path, capsys,
                                                                          monkeypatch) -> None:
    output = _kept_job(tmp_path, capsys, monkeypatch)
    assert b'"source-ref":"images/img_000.jpg"' in output.read_bytes().replace(b" ", b"")
    assert main(["convert", str(output), str(tmp_path / "o.json"), "--to", "coco"]) == 0, capsys.readouterr().err
    images = orjson.loads((tmp_path / "o.json").read_bytes())["images"]
    assert len(images) == 49 and images[0]["width"] > 0
    # a copy elsewhere reads them beside itself, as any manifest: the error says against which folder
    shutil.copy(output, tmp_path / "copy.manifest")
    assert main(["convert", str(tmp_path / "copy.manifest"), str(tmp_path / "c.json"), "--to", "coco"]) == 1
    err = capsys.readouterr().err
    assert f"cannot read {tmp_path}/images/img_000.jpg" in err, err
    assert f"(a relative source-ref resolves against {tmp_path}) [image-size]" in err, err


def test_labeled_says_the_relative_references_it_moved_away_from_their_files(tmp_path: Path, capsys,
                                                                           monkeypatch) -> None:
    """``labeled`` of a job's output into another folder copied ``images/img_000.jpg`` there,
    pointing nowhere, with no word: one line on stderr says so; beside the input, nothing."""
    output = _kept_job(tmp_path, capsys, monkeypatch)
    assert main(["labeled", str(output), "--label-attribute", "boxes", "-o", "lab/b.manifest",
                 "--format", "json"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["relative_refs_moved"] == 49
    assert err == (f"lab/b.manifest: 49 kept lines hold a relative source-ref / annotation-ref (first on line 1) written as it is, "
                   f"which resolves against the input's folder {REPO / 'sample_data'}, not beside the output: write "
                   "the output beside the input, or read it with that folder as the root\n")
    shutil.copy(output, tmp_path / "own.manifest")  # its own folder is its references' folder
    assert main(["labeled", "own.manifest", "--label-attribute", "boxes", "-o", "b.manifest"]) == 0
    out, err = capsys.readouterr()
    assert err == "" and "kept 49 of 50" in out


@pytest.mark.parametrize("to", ["coco", "yolo"])
def test_a_class_map_refusal_names_the_attributes_class_map(tmp_path: Path, capsys, to: str) -> None:
    """``category id 1 is 'dog' here`` (coco-category) and ``class id 0 is 'dog' here`` (yolo-class)
    named ``class-map``, no attribute; validate names ``b-metadata.class-map.0``."""
    src = tmp_path / "in.manifest"
    src.write_bytes(_line(0) + _line(1, edits=[("m", "class-map", {"0": "dog"})]))
    assert main(["validate", str(src), "--strict"]) == 1
    assert "b-metadata.class-map.0: 'dog' differs from 'cat'" in capsys.readouterr().out
    assert main(["convert", str(src), str(tmp_path / OUTPUTS[to]), "--to", to]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "line 2, key 'b-metadata.class-map': " in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.manifest"]


def test_a_kept_category_id_is_named_under_the_attributes_objects(tmp_path: Path, capsys) -> None:
    src = tmp_path / "in.manifest"
    src.write_bytes(_line(0, edits=[("m", "objects", [{"confidence": 0.5, "coco-category-id": -1}])]))
    assert main(["convert", str(src), str(tmp_path / "o.json"), "--to", "coco"]) == 1
    err = capsys.readouterr().err
    assert "line 1, key 'b-metadata.objects[0].coco-category-id': " in err and "[coco-category]" in err, err
