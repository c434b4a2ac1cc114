"""YOLO and COCO as trainers read them: pycocotools loads the COCO output and COCOeval of the
labels against themselves gives AP 1.0; YOLO labels have Ultralytics' documented 5 columns and
sit where Ultralytics looks for them (Ultralytics itself pulls a CUDA build of torch, so its
documented rules are followed here instead)."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import orjson
import pytest
import yaml
from PIL import Image

from tests.support.gt import GT_MANIFESTS as GT
from tests.support.gt import real_cases, requires_gt
from totask_manifest._analytics.convert import convert
from totask_manifest._cli import main
from totask_manifest._errors import ManifestError, UsageError

REPO = Path(__file__).resolve().parents[1]
BOXES = {
    "object-detection__aws-amazon-sagemaker-examples__yolov5-sample_output.manifest": "category",
    "object-detection-chained-same-attribute__aws-samples-mxnet-dice-aim403-workshop__output.manifest":
        "dice-labeling",
    "object-detection-chained-adjustment__YeongJun-Jeon-1to100_Korean__output.manifest":
        "suneung-korean-layout-detection-v2-chain",
}
YOLOV5 = GT / "object-detection__aws-amazon-sagemaker-examples__yolov5-sample_output.manifest"

pytestmark = requires_gt


# ---------------------------------------------------------------- COCO through pycocotools


@pytest.mark.parametrize(("name", "attr"), real_cases(BOXES.items()))
def test_pycocotools_loads_the_output_and_scores_it_perfect(tmp_path, name, attr):
    pycoco = pytest.importorskip("pycocotools.coco")
    cocoeval = pytest.importorskip("pycocotools.cocoeval")
    out = tmp_path / "coco.json"
    convert(str(GT / name), str(out), to="coco", label_attribute=attr)
    with contextlib.redirect_stdout(io.StringIO()):
        gt = pycoco.COCO(str(out))
    doc = orjson.loads(out.read_bytes())
    # COCO's category ids start at 1: Ground Truth class 0 is category 1, names kept
    assert min(gt.getCatIds()) >= 1
    records = [orjson.loads(raw) for raw in (GT / name).read_bytes().splitlines()]
    for rec in records:
        if attr in rec:
            for ann in rec[attr]["annotations"]:
                category = gt.loadCats(ann["class_id"] + 1)[0]
                assert category["name"] == rec[attr + "-metadata"]["class-map"][str(ann["class_id"])]
    assert len(gt.getAnnIds()) == sum(len(r[attr]["annotations"]) for r in records if attr in r)
    detections = [{k: a[k] for k in ("image_id", "category_id", "bbox", "score")} for a in doc["annotations"]]
    with contextlib.redirect_stdout(io.StringIO()):
        dt = gt.loadRes(detections)
        ev = cocoeval.COCOeval(gt, dt, "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    assert ev.stats[0] == pytest.approx(1.0)  # AP@[.5:.95]
    assert ev.stats[1] == pytest.approx(1.0)  # AP@.5


def test_coco_ids_match_the_sample_datas_own_coco_files(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(REPO)
    assert main(["annotate", "sample_data/manifest.jsonl", "--job-name", "coco", "--label-attribute", "boxes",
                 "--task-type", "object-detection", "--method", "file", "--url-key", "annotation-ref",
                 "--class-names", "sample_data/class_names.txt", "--native", "convert", "--allow-root", "sample_data",
                 "--output", str(tmp_path / "out")]) == 0
    manifest = tmp_path / "out" / "coco" / "manifests" / "output" / "output.manifest"
    convert(str(manifest), str(tmp_path / "coco.json"), to="coco")
    ours = orjson.loads((tmp_path / "coco.json").read_bytes())["categories"]
    theirs = json.loads((REPO / "sample_data" / "annotations" / "img_005.json").read_text())["categories"]
    assert ours == theirs == [{"id": 1, "name": "circle"}, {"id": 2, "name": "square"}, {"id": 3, "name": "triangle"}]
    # and back: category 1 is class 0 again, without class names
    convert(str(tmp_path / "coco.json"), str(tmp_path / "back.manifest"), to="manifest")
    back = [orjson.loads(raw) for raw in (tmp_path / "back.manifest").read_bytes().splitlines()]
    want = [orjson.loads(raw) for raw in manifest.read_bytes().splitlines() if b"failure-reason" not in raw]
    for b, w in zip(back, want, strict=True):
        assert [a["class_id"] for a in b["label"]["annotations"]] == [a["class_id"] for a in w["boxes"]["annotations"]]
        assert b["label-metadata"]["class-map"] == w["boxes-metadata"]["class-map"]


def test_a_box_in_category_0_is_refused_without_class_names(tmp_path):
    doc = {"images": [{"id": 1, "width": 10, "height": 10, "file_name": "a.jpg"}],
           "annotations": [{"id": 1, "image_id": 1, "category_id": 0, "bbox": [1, 1, 2, 2]}],
           "categories": [{"id": 0, "name": "zero"}]}
    (tmp_path / "c.json").write_text(json.dumps(doc))
    with pytest.raises(ManifestError, match="COCO category ids start at 1"):
        convert(str(tmp_path / "c.json"), str(tmp_path / "m.manifest"), to="manifest")
    convert(str(tmp_path / "c.json"), str(tmp_path / "m.manifest"), to="manifest", class_names=["zero"])
    assert orjson.loads((tmp_path / "m.manifest").read_bytes())["label"]["annotations"][0]["class_id"] == 0


# ---------------------------------------------------------------- YOLO as Ultralytics documents it


def ultralytics_label_path(image_path: str) -> str:
    """Ultralytics' documented rule: the labels of ``.../images/x/y.jpg`` are in
    ``.../labels/x/y.txt`` (the last ``/images/`` becomes ``/labels/``, the suffix ``.txt``)."""
    head, sep, tail = image_path.rpartition("/images/")
    assert sep, image_path
    return head + "/labels/" + tail.rsplit(".", 1)[0] + ".txt"


def read_ultralytics_labels(path: Path, classes: int) -> list[tuple[int, float, float, float, float]]:
    """A detection label file as documented: one row per object, ``class x_center y_center width
    height``, coordinates normalised to 0..1, class ids from 0."""
    rows = []
    for raw in path.read_text().splitlines():
        fields = raw.split()
        assert len(fields) == 5, raw
        cls, *xywh = int(fields[0]), *map(float, fields[1:])
        assert 0 <= cls < classes and all(0.0 <= v <= 1.0 for v in xywh), raw
        rows.append((cls, *xywh))
    return rows


def test_yolo_labels_have_5_columns_and_pair_with_their_images(tmp_path):
    out = tmp_path / "yolo"
    convert(str(YOLOV5), str(out), to="yolo", label_attribute="category")
    data = yaml.safe_load((out / "data.yaml").read_text())
    names = (out / "classes.txt").read_text().splitlines()
    assert data["names"] == dict(enumerate(names)) and data["train"] == data["val"] == "images"
    index = [orjson.loads(raw) for raw in (out / "index.jsonl").read_bytes().splitlines()]
    records = [orjson.loads(raw) for raw in YOLOV5.read_bytes().splitlines()]
    assert len(index) == len(records) == 50
    for entry, rec in zip(index, records, strict=True):
        # the image, copied under images/ as the source's folders say, finds its own label
        image = str(out / "images" / rec["source-ref"].rsplit("/images/", 1)[1])
        assert ultralytics_label_path(image) == str(out / entry["label"])
        rows = read_ultralytics_labels(out / entry["label"], len(names))
        size = rec["category"]["image_size"][0]
        for (cls, cx, cy, w, h), ann in zip(rows, rec["category"]["annotations"], strict=True):
            assert cls == ann["class_id"]
            assert cx * size["width"] == pytest.approx(ann["left"] + ann["width"] / 2)
            assert cy * size["height"] == pytest.approx(ann["top"] + ann["height"] / 2)
            assert (w * size["width"], h * size["height"]) == pytest.approx((ann["width"], ann["height"]))
    # confidence only on request, as the 6th column
    assert main(["convert", str(YOLOV5), str(tmp_path / "conf"), "--to", "yolo", "--confidence"]) == 0
    first = (tmp_path / "conf" / index[0]["label"]).read_text().splitlines()[0].split()
    assert len(first) == 6 and float(first[5]) == records[0]["category-metadata"]["objects"][0]["confidence"]
    with pytest.raises(UsageError, match="--to yolo"):
        convert(str(YOLOV5), str(tmp_path / "c.json"), to="coco", confidence=True)


def _shared_stems(tmp_path: Path) -> Path:
    """Three real labels on images where two share a file name in different folders."""
    lines = YOLOV5.read_bytes().splitlines()[:3]
    sources = ["s3://bucket/ds/images/a/cat.jpg", "s3://bucket/ds/images/b/cat.jpg", "s3://bucket/ds/images/a/dog.png"]
    out = []
    for raw, src in zip(lines, sources, strict=True):
        rec = orjson.loads(raw)
        rec["source-ref"] = src
        out.append(orjson.dumps(rec))
    path = tmp_path / "shared.manifest"
    path.write_bytes(b"\n".join(out) + b"\n")
    return path


def test_images_sharing_a_stem_keep_their_folders(tmp_path):
    src = _shared_stems(tmp_path)
    out = tmp_path / "yolo"
    convert(str(src), str(out), to="yolo")
    labels = sorted(str(p.relative_to(out)) for p in (out / "labels").rglob("*.txt"))
    assert labels == ["labels/a/cat.txt", "labels/a/dog.txt", "labels/b/cat.txt"]
    for source in ("a/cat.jpg", "b/cat.jpg", "a/dog.png"):
        assert Path(ultralytics_label_path(str(out / "images" / source))).exists()
    # back through index.jsonl
    convert(str(out), str(tmp_path / "back.manifest"), to="manifest")
    back = [orjson.loads(raw) for raw in (tmp_path / "back.manifest").read_bytes().splitlines()]
    assert [b["source-ref"] for b in back] == [orjson.loads(raw)["source-ref"] for raw in src.read_bytes().splitlines()]
    # and as a plain YOLO folder: images copied in with the same folders, sizes read from them
    (out / "index.jsonl").unlink()
    for rec in (orjson.loads(raw) for raw in src.read_bytes().splitlines()):
        image = out / "images" / rec["source-ref"].rsplit("/images/", 1)[1]
        image.parent.mkdir(parents=True, exist_ok=True)
        size = rec["category"]["image_size"][0]
        Image.new("RGB", (size["width"], size["height"])).save(image)
    convert(str(out), str(tmp_path / "plain.manifest"), to="manifest")
    plain = [orjson.loads(raw) for raw in (tmp_path / "plain.manifest").read_bytes().splitlines()]
    assert sorted(p["source-ref"].rsplit("/images/", 1)[1] for p in plain) == ["a/cat.jpg", "a/dog.png", "b/cat.jpg"]
    by_name = {p["source-ref"].rsplit("/images/", 1)[1]: p for p in plain}
    originals = {orjson.loads(raw)["source-ref"].rsplit("/images/", 1)[1]: orjson.loads(raw)
                 for raw in src.read_bytes().splitlines()}
    for name, rec in originals.items():
        got = by_name[name]["label"]["annotations"]
        assert [a["class_id"] for a in got] == [a["class_id"] for a in rec["category"]["annotations"]]
        for g, w in zip(got, rec["category"]["annotations"], strict=True):
            assert (g["left"], g["top"]) == pytest.approx((w["left"], w["top"]), abs=1e-4)


def test_the_same_image_twice_is_refused(tmp_path):
    lines = YOLOV5.read_bytes().splitlines()[:2]
    rec = orjson.loads(lines[1])
    rec["source-ref"] = orjson.loads(lines[0])["source-ref"]
    (tmp_path / "twice.manifest").write_bytes(lines[0] + b"\n" + orjson.dumps(rec) + b"\n")
    with pytest.raises(ManifestError, match="label the same image") as exc:
        convert(str(tmp_path / "twice.manifest"), str(tmp_path / "y"), to="yolo")
    assert exc.value.rule == "yolo-duplicate-image" and exc.value.line == 2


def _refused_later(tmp_path: Path, how: str) -> Path:
    """A manifest whose second or third line is refused by a YOLO or COCO export, found only
    after the output folder is made: the same image again, or a class id under a new name."""
    lines = YOLOV5.read_bytes().splitlines()[:3]
    rec = orjson.loads(lines[2])
    if how == "same image":
        rec["source-ref"] = orjson.loads(lines[0])["source-ref"]
    else:
        rec["category-metadata"]["class-map"]["0"] = "not-the-first-name"
    path = tmp_path / f"{how.replace(' ', '-')}.manifest"
    path.write_bytes(lines[0] + b"\n" + lines[1] + b"\n" + orjson.dumps(rec) + b"\n")
    return path


@pytest.mark.parametrize(("to", "dst", "how"), [
    ("yolo", "F/yolo", "same image"), ("yolo", "F/sub/yolo", "same image"), ("yolo", "F/sub/yolo", "class renamed"),
    ("coco", "F/sub/coco.json", "class renamed"),  # COCO holds one image on two lines: no refusal there
])
def test_a_refused_export_leaves_no_empty_folder(tmp_path, capsys, to, dst, how):
    """The folders an export made for its output go with a refusal, its parents' included: a
    refused YOLO export once removed ``F/yolo`` and left ``F/`` (the README's ``_folders.py``
    promise), as a COCO export's ``AtomicWriter`` never did."""
    src = _refused_later(tmp_path, how)
    assert main(["convert", str(src), str(tmp_path / dst), "--to", to]) == 1
    assert "line 3" in capsys.readouterr().err
    assert not (tmp_path / "F").exists(), sorted(p.name for p in (tmp_path / "F").rglob("*"))


def test_a_box_past_the_image_is_refused_or_clipped_on_request(tmp_path):
    """YOLO coordinates are 0..1 and trainers skip a label file with a value outside; a box
    reaching past the image stops the conversion unless --allow-drop, which clips it."""
    rec = orjson.loads(YOLOV5.read_bytes().splitlines()[0])
    size = rec["category"]["image_size"][0]
    anns = rec["category"]["annotations"]
    anns.append({"class_id": 0, "top": 10, "left": size["width"] - 20, "height": 30, "width": 50})  # past the edge
    anns.append({"class_id": 0, "top": -80, "left": 5, "height": 40, "width": 40})  # wholly outside
    rec["category-metadata"]["objects"] += [{"confidence": 0.5}, {"confidence": 0.4}]
    (tmp_path / "m.manifest").write_bytes(orjson.dumps(rec) + b"\n")
    with pytest.raises(ManifestError, match="reaches past") as exc:
        convert(str(tmp_path / "m.manifest"), str(tmp_path / "y"), to="yolo")
    assert exc.value.rule == "yolo-outside-image" and exc.value.key == f"category.annotations[{len(anns) - 2}]"
    assert not (tmp_path / "y" / "index.jsonl").exists()
    # a later line stopping the conversion takes back the label files written before it
    good = YOLOV5.read_bytes().splitlines()[1:3]
    (tmp_path / "later.manifest").write_bytes(b"\n".join([*good, orjson.dumps(rec)]) + b"\n")
    (tmp_path / "y2" / "labels").mkdir(parents=True)
    (tmp_path / "y2" / "labels" / "mine.txt").write_text("0 0.5 0.5 0.1 0.1\n")
    (tmp_path / "y2" / "index.jsonl").write_text('{"label": "labels/mine.txt"}\n')  # a previous export's, listing it
    with pytest.raises(ManifestError, match="reaches past") as exc:
        convert(str(tmp_path / "later.manifest"), str(tmp_path / "y2"), to="yolo")
    assert exc.value.line == 3
    assert sorted(p.name for p in (tmp_path / "y2").rglob("*") if p.is_file()) == ["index.jsonl", "mine.txt"]
    result = convert(str(tmp_path / "m.manifest"), str(tmp_path / "y"), to="yolo", allow_drop=True)
    assert result.counts["dropped"] == 2
    label = next((tmp_path / "y" / "labels").rglob("*.txt"))
    rows = read_ultralytics_labels(label, 1)
    assert len(rows) == len(anns) - 1
    _, cx, _, w, _ = rows[-1]
    assert (cx + w / 2) * size["width"] == pytest.approx(size["width"])  # clipped at the right edge


@pytest.mark.parametrize("bad", [{"width": None}, {"width": True}, {"width": "x"}, {"width": [1]},
                                 {"class_id": None}])
@pytest.mark.parametrize("to", ["yolo", "coco", "dm-schema-v1", "synapse-objects"])
def test_a_label_no_converter_can_read_names_its_line_in_jsons_words(tmp_path, capsys, to, bad):
    """No traceback (YOLO's box check once compared null with a number), and the line is named."""
    records = [orjson.loads(raw) for raw in YOLOV5.read_bytes().splitlines()[:2]]
    label = records[1]["category"]
    if "class_id" in bad:
        label["annotations"][0].update(bad)
    else:
        label["image_size"][0].update(bad)
    (tmp_path / "m.manifest").write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))
    out = {"yolo": "y", "coco": "c.json", "dm-schema-v1": "d.dm.jsonl", "synapse-objects": "o.objects.jsonl"}[to]
    assert main(["convert", str(tmp_path / "m.manifest"), str(tmp_path / out), "--to", to]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "line 2, key '" in err and "[format-groundtruth]" in err, err
    assert f"got {json.dumps(next(iter(bad.values())))}" in err and "None" not in err and "True" not in err, err
    assert not (tmp_path / out).is_file() and not (tmp_path / out / "index.jsonl").exists()


def test_images_folders_below_the_shared_one_still_pair_as_ultralytics_looks(tmp_path):
    """``train/images/x.jpg`` is a common layout; Ultralytics replaces the *last* ``/images/`` of an
    image's path, so that folder is written ``images_`` and ``index.jsonl`` says where each image goes."""
    lines = YOLOV5.read_bytes().splitlines()[:3]
    sources = ["s3://bucket/ds/train/images/cat.jpg", "s3://bucket/ds/val/images/cat.jpg",
               "https://host.example/ds/val/images/dog.png?X-Amz-Signature=abc"]
    records = []
    for raw, src in zip(lines, sources, strict=True):
        rec = orjson.loads(raw)
        rec["source-ref"] = src
        records.append(rec)
    (tmp_path / "m.manifest").write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))
    out = tmp_path / "yolo"
    convert(str(tmp_path / "m.manifest"), str(out), to="yolo")
    index = [orjson.loads(raw) for raw in (out / "index.jsonl").read_bytes().splitlines()]
    assert [(e["image"], e["label"]) for e in index] == [
        ("images/bucket/ds/train/images_/cat.jpg", "labels/bucket/ds/train/images_/cat.txt"),
        ("images/bucket/ds/val/images_/cat.jpg", "labels/bucket/ds/val/images_/cat.txt"),
        ("images/host.example/ds/val/images_/dog.png", "labels/host.example/ds/val/images_/dog.txt")]
    for entry, rec in zip(index, records, strict=True):
        image = str(out / entry["image"])
        assert ultralytics_label_path(image) == str(out / entry["label"])  # the last /images/
        assert image.replace("/images/", "/labels/", 1).rsplit(".", 1)[0] + ".txt" == str(out / entry["label"])  # Darknet: the first
        size = rec["category"]["image_size"][0]
        Path(image).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (size["width"], size["height"])).save(image)
    # a plain folder (no index.jsonl) reads back through the same pairing
    (out / "index.jsonl").unlink()
    convert(str(out), str(tmp_path / "back.manifest"), to="manifest")
    back = [orjson.loads(raw) for raw in (tmp_path / "back.manifest").read_bytes().splitlines()]
    assert len(back) == 3 and all(b["label"]["annotations"] for b in back)


@pytest.mark.parametrize(("value", "words"), [(None, "type: null"), (5, "type: 5"), ("box", 'type: "box"')])
def test_metadata_without_a_type_is_named_in_jsons_words(tmp_path, value, words):
    rec = orjson.loads(YOLOV5.read_bytes().splitlines()[0])
    rec["category-metadata"]["type"] = value
    (tmp_path / "m.manifest").write_bytes(orjson.dumps(rec) + b"\n")
    with pytest.raises(ManifestError, match="declares no Ground Truth type") as exc:
        convert(str(tmp_path / "m.manifest"), str(tmp_path / "c.json"), to="coco", label_attribute="category")
    assert words in str(exc.value) and "None" not in str(exc.value) and exc.value.line == 1
