"""One category name, one id, both ways through COCO.

A COCO export wrote two categories of one name (a class map ``{"0": "car", "3": "car"}``, or
``car`` as 0 on one line and 3 on another), which a reader taking categories by name (pycocotools'
``getCatIds(catNms=...)``, trainers' class lists) merges or mislabels, with no error anywhere.
The export now refuses it as the YOLO export does (one shared rule, ``one_id_a_name``): exit 1,
one line naming the name, both ids and the lines each was met on, and nothing written. An import
of such a document keeps both ids as they are, unless classes are numbered by name
(``--class-names``), which would make the two one class: that is refused, naming both."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import orjson
import pytest
from PIL import Image

from tests.support.box_lines import box_line as _box_line
from totask_manifest._cli import main as cli_main
from totask_manifest._formats.coco import coco_to_gt
from totask_manifest._formats.model import FormatError


def _mask_line(tmp_path: Path, colors: dict[int, tuple[str, str]]) -> dict:
    mask = np.zeros((8, 9), dtype=np.uint8)
    mask[2:5, 3:7] = 1
    mask[6:8, 0:2] = 2
    rgb = np.zeros((*mask.shape, 3), dtype=np.uint8)
    for idx, (_, hx) in colors.items():
        rgb[mask == idx] = [int(hx[i : i + 2], 16) for i in (1, 3, 5)]
    Image.fromarray(rgb, "RGB").save(tmp_path / "mask.png")
    cmap = {str(i): {"class-name": name, "hex-color": hx} for i, (name, hx) in colors.items()}
    return {"source-ref": "s3://b/img.jpg", "seg-ref": str(tmp_path / "mask.png"),
            "seg-ref-metadata": {"internal-color-map": cmap, "type": "groundtruth/semantic-segmentation",
                                 "human-annotated": "yes", "creation-date": "2026-01-01T00:00:00.000000",
                                 "job-name": "labeling-job/seg"}}


def _write(path: Path, records: list[dict]) -> Path:
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))
    return path


def _refused(capsys, *args: str) -> str:
    """The one line of a command that exits 1."""
    assert cli_main(list(args)) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def _coco_doc(categories: list[dict]) -> dict:
    return {"images": [{"id": 1, "file_name": "a.jpg", "width": 100, "height": 80}],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 2, 10, 20], "area": 200,
                             "iscrowd": 0},
                            {"id": 2, "image_id": 1, "category_id": 4, "bbox": [5, 6, 10, 20], "area": 200,
                             "iscrowd": 0}],
            "categories": categories}


def test_one_name_for_two_ids_of_one_line_is_refused_and_nothing_written(tmp_path, capsys):
    src = _write(tmp_path / "in.manifest", [_box_line(0, {"0": "car", "3": "car"}, [0, 3])])
    out = tmp_path / "out.json"
    err = _refused(capsys, "convert", str(src), str(out), "--to", "coco")
    assert err.startswith("totask-manifest convert: error: line 1, key 'label-metadata.class-map': "), err
    assert "class id 3 (category 4) is named 'car', as class id 0 (category 1) is on this line" in err
    assert err.endswith("nothing was written [coco-category]"), err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.manifest"]  # no document, no temporary


def test_one_name_reached_on_two_lines_names_both_lines(tmp_path, capsys):
    src = _write(tmp_path / "in.manifest", [_box_line(0, {"0": "car"}, [0]), _box_line(1, {"1": "bus"}, [1]),
                                            _box_line(2, {"3": "car"}, [3])])
    out = tmp_path / "out.json"
    err = _refused(capsys, "convert", str(src), str(out), "--to", "coco")
    assert "line 3, key 'label-metadata.class-map': class id 3 (category 4) is named 'car', as class id 0 (category 1) is on " \
           "line 1" in err
    assert not out.exists()


def test_an_earlier_export_is_left_as_it_was(tmp_path, capsys):
    """The document is written atomically: a refused export leaves the one there before whole."""
    out = tmp_path / "out.json"
    good = _write(tmp_path / "good.manifest", [_box_line(0, {"0": "car", "3": "truck"}, [0, 3])])
    assert cli_main(["convert", str(good), str(out), "--to", "coco"]) == 0
    before = out.read_bytes()
    bad = _write(tmp_path / "bad.manifest", [_box_line(0, {"0": "car"}, [0]), _box_line(1, {"3": "car"}, [3])])
    _refused(capsys, "convert", str(bad), str(out), "--to", "coco")
    assert out.read_bytes() == before


def test_one_name_for_two_mask_classes_is_refused(tmp_path, capsys):
    src = _write(tmp_path / "seg.manifest", [_mask_line(tmp_path, {0: ("BACKGROUND", "#ffffff"),
                                                                   1: ("road", "#2acf59"), 2: ("road", "#ff0000")})])
    err = _refused(capsys, "convert", str(src), str(tmp_path / "seg.json"), "--to", "coco")
    assert "line 1, key 'seg-ref-metadata.internal-color-map': class id 2 is named 'road', as class id 1 is on this line" in err
    assert "[coco-category]" in err
    assert not (tmp_path / "seg.json").exists()


def test_the_same_name_under_the_same_id_on_many_lines_is_one_category(tmp_path):
    """What the check must let pass: each line naming the one id of a name again."""
    pycoco = pytest.importorskip("pycocotools.coco")
    src = _write(tmp_path / "in.manifest", [_box_line(n, {"0": "car", "3": "truck"}, [0, 3]) for n in range(3)])
    out = tmp_path / "out.json"
    assert cli_main(["convert", str(src), str(out), "--to", "coco"]) == 0
    assert json.loads(out.read_bytes())["categories"] == [{"id": 1, "name": "car"}, {"id": 4, "name": "truck"}]
    with contextlib.redirect_stdout(io.StringIO()):
        gt = pycoco.COCO(str(out))
    assert gt.getCatIds(catNms=["car"]) == [1] and len(gt.getAnnIds(catIds=[1])) == 3


def test_the_yolo_export_names_the_line_of_the_first_id_too(tmp_path, capsys):
    """The rule the two exports share says the same of a names file."""
    src = _write(tmp_path / "in.manifest", [_box_line(0, {"0": "car"}, [0]), _box_line(1, {"3": "car"}, [3])])
    err = _refused(capsys, "convert", str(src), str(tmp_path / "yolo"), "--to", "yolo")
    assert "line 2, key 'label-metadata.class-map': class id 3 name 'car' is also the name of class id 0 (on line 1)" in err
    assert "[yolo-class-name]" in err and not (tmp_path / "yolo").exists()


def test_an_import_keeps_both_ids_of_one_name(tmp_path):
    """Each category id is its own class (id - 1): both kept, nothing merged."""
    src = tmp_path / "c.json"
    src.write_bytes(orjson.dumps(_coco_doc([{"id": 1, "name": "car"}, {"id": 4, "name": "car"}])))
    dst = tmp_path / "m.manifest"
    assert cli_main(["convert", str(src), str(dst), "--to", "manifest"]) == 0
    line = orjson.loads(dst.read_bytes())
    assert [a["class_id"] for a in line["label"]["annotations"]] == [0, 3]
    assert line["label-metadata"]["class-map"] == {"0": "car", "3": "car"}


def test_an_import_numbering_classes_by_name_refuses_one_name_for_two_ids(tmp_path, capsys):
    """``--class-names`` made categories 1 and 4 one class 0, with nothing said."""
    src = tmp_path / "c.json"
    src.write_bytes(orjson.dumps(_coco_doc([{"id": 1, "name": "car"}, {"id": 4, "name": "car"}])))
    (tmp_path / "names.txt").write_text("car\ntruck\n")
    dst = tmp_path / "m.manifest"
    err = _refused(capsys, "convert", str(src), str(dst), "--to", "manifest", "--class-names",
                   str(tmp_path / "names.txt"))
    assert "key 'categories[1].name': category name 'car' is also categories[0]'s (id 1, here id 4)" in err
    assert "classes are numbered by name (class names given)" in err and f"(in {src})" in err
    assert not dst.exists()


def test_a_file_document_numbered_by_name_refuses_one_name_for_two_ids():
    """The file method reads a COCO file through the same reader (``coco_to_gt``)."""
    doc = _coco_doc([{"id": 1, "name": "car"}, {"id": 4, "name": "car"}])
    with pytest.raises(FormatError, match=r"category name 'car' is also categories\[0\]'s \(id 1, here id 4\)"):
        coco_to_gt(doc, class_names=["car"])
    assert [a["class_id"] for a in coco_to_gt(doc).value["annotations"]] == [0, 3]  # without names: both kept


def test_a_file_job_numbering_by_name_fails_such_a_file_as_invalid_data(tmp_path, capsys):
    """Failed as the file's fault (``format-invalid``), not as a missing ``--class-names``, which
    the job has: a chained job with the option given would fail it the same way."""
    Image.new("RGB", (100, 80)).save(tmp_path / "a.png")
    doc = _coco_doc([{"id": 1, "name": "car"}, {"id": 4, "name": "car"}])
    doc["images"][0]["file_name"] = "a.png"
    (tmp_path / "a.json").write_bytes(orjson.dumps(doc))
    (tmp_path / "names.txt").write_text("car\n")
    src = _write(tmp_path / "m.manifest", [{"source-ref": str(tmp_path / "a.png"),
                                            "annotation-ref": str(tmp_path / "a.json")}])
    cli_main(["annotate", str(src), "--job-name", "j", "--label-attribute", "boxes", "--task-type",
              "object-detection", "--method", "file", "--url-key", "annotation-ref", "--class-names",
              str(tmp_path / "names.txt"), "--allow-root", str(tmp_path), "--output", str(tmp_path / "out")])
    capsys.readouterr()
    failure = orjson.loads((tmp_path / "out" / "j" / "failures.jsonl").read_bytes())
    assert failure["rule"] == "format-invalid", failure
    assert "category name 'car' is also categories[0]'s (id 1, here id 4)" in failure["reason"]
