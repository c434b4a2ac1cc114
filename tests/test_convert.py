"""``convert`` round trips on the real manifests, masks through COCO, plain YOLO folders, S3 and errors."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import orjson
import polars as pl
import pyarrow.parquet as pq
import pytest
from PIL import Image

from tests.support.gt import GT_MANIFESTS as GT
from tests.support.gt import gt_files, real_cases, requires_gt
from tests.support.s3 import S3Endpoint
from totask_manifest._analytics.convert import convert
from totask_manifest._analytics.masks import (
    counts_to_rle_string,
    read_mask,
    rle_decode,
    rle_encode,
    rle_string_to_counts,
)
from totask_manifest._cli import main as cli_main
from totask_manifest._errors import ManifestError, UsageError
from totask_manifest._fetch import base_of, resolve_reference
from totask_manifest._formats.model import FormatError

pytestmark = requires_gt

OD = {
    "object-detection__aws-amazon-sagemaker-examples__yolov5-sample_output.manifest": "category",
    "object-detection-chained-same-attribute__aws-samples-mxnet-dice-aim403-workshop__output.manifest":
        "dice-labeling",
    "object-detection-chained-adjustment__YeongJun-Jeon-1to100_Korean__output.manifest":
        "suneung-korean-layout-detection-v2-chain",
}
IC = {
    "image-classification__aws-amazon-sagemaker-examples__ic_data-output.manifest": "birds-open-images-clone",
    "image-classification-output__kkr4353-aws-product-development__output.manifest": "banana-1",
}
REAL = [p.name for p in gt_files(".manifest", ".jsonl")]


def _records(path: Path) -> list[dict]:
    return [orjson.loads(raw) for raw in path.read_bytes().splitlines() if raw.strip()]


def _labeled(path: Path, attr: str) -> list[dict]:
    return [r for r in _records(path) if attr in r and "failure-reason" not in r[attr + "-metadata"]]


def _used(value: dict, meta: dict) -> dict:
    ids = {str(a["class_id"]) for a in value["annotations"]}
    return {k: v for k, v in meta["class-map"].items() if k in ids}


@pytest.mark.parametrize("name", real_cases(REAL))
def test_parquet_round_trip_is_byte_exact(tmp_path, name):
    src = GT / name
    convert(str(src), str(tmp_path / "m.parquet"), to="parquet")
    back = tmp_path / "back.manifest"
    result = convert(str(tmp_path / "m.parquet"), str(back), to="manifest")
    assert result.from_format == "parquet"
    assert back.read_bytes() == src.read_bytes()


def test_parquet_nested_columns_hold_the_labels(tmp_path):
    src = GT / "object-detection-chained-adjustment__YeongJun-Jeon-1to100_Korean__output.manifest"
    convert(str(src), str(tmp_path / "k.parquet"), to="parquet")
    table = pq.read_table(tmp_path / "k.parquet")
    assert table.num_rows == 50
    df = pl.from_arrow(table).explode("labels").unnest("labels")
    per_attr = df.group_by("attribute").agg(pl.col("boxes").list.len().sum().alias("boxes"))
    want: dict[str, int] = {}
    for r in _records(src):
        for a in ("suneung-korean-layout-detection-v2", "suneung-korean-layout-detection-v2-chain"):
            want[a] = want.get(a, 0) + len(r[a]["annotations"])
    assert dict(per_attr.iter_rows()) == want
    boxes = df.filter(pl.col("attribute") == "suneung-korean-layout-detection-v2").explode("boxes").unnest("boxes")
    first = _records(src)[0]["suneung-korean-layout-detection-v2"]["annotations"][0]
    row = boxes.row(0, named=True)
    assert (row["class_id"], row["left"], row["top"], row["class_name"]) == (
        first["class_id"], first["left"], first["top"], "footer")
    assert set(df["job_name"]) == {"labeling-job/suneung-korean-layout-detection-v2",
                                   "labeling-job/suneung-korean-layout-detection-v2-chain"}


def test_parquet_keeps_lines_that_are_not_json(tmp_path):
    src = tmp_path / "odd.manifest"
    src.write_bytes(b'\xef\xbb\xbf{"source-ref":"s3://b/1.jpg"}\r\nnot json\n\n{"source":"caf\\u00e9"}')
    convert(str(src), str(tmp_path / "o.parquet"), to="parquet")
    convert(str(tmp_path / "o.parquet"), str(tmp_path / "o.manifest"), to="manifest")
    assert (tmp_path / "o.manifest").read_bytes() == src.read_bytes()
    rows = pq.read_table(tmp_path / "o.parquet").to_pylist()
    assert [r["source_ref"] for r in rows] == ["s3://b/1.jpg", None, None, None]
    assert rows[3]["source"] == "café"


def test_parquet_of_a_truncated_manifest_is_written_but_exits_1_naming_the_line(tmp_path):
    """A truncated manifest is invalid data (exit 1, as validate, stats and --to coco say); the
    Parquet file keeps its bytes, but ``convert`` exited 0 and said nothing of the broken line."""
    import subprocess
    import sys

    src = tmp_path / "trunc.manifest"
    src.write_bytes(b'{"source-ref":"s3://b/1.jpg"}\n{"source-ref":"s3://b/2.jpg"}\n{"source-ref":"s3://b/3')
    r = subprocess.run([sys.executable, "-m", "totask_manifest", "convert", str(src), str(tmp_path / "t.parquet"),
                        "--to", "parquet"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 1, r.stdout + r.stderr
    assert r.stderr.strip().splitlines() == [
        f"{src}: 1 line is not a JSON object (first: line 3); kept as they are in the Parquet file's raw "
        "column; run validate to see why"]
    assert "(lines 3)" in r.stdout
    convert(str(tmp_path / "t.parquet"), str(tmp_path / "back.manifest"), to="manifest")
    assert (tmp_path / "back.manifest").read_bytes() == src.read_bytes()


@pytest.mark.parametrize(("name", "attr"), real_cases(OD.items()))
def test_coco_round_trip_on_real_boxes(tmp_path, name, attr):
    src = GT / name
    result = convert(str(src), str(tmp_path / "c.json"), to="coco", label_attribute=attr)
    doc = json.loads((tmp_path / "c.json").read_text())
    want = _labeled(src, attr)
    assert result.counts["images"] == len(doc["images"]) == len(want)
    assert len(doc["annotations"]) == sum(len(r[attr]["annotations"]) for r in want)
    assert len({a["id"] for a in doc["annotations"]}) == len(doc["annotations"])
    convert(str(tmp_path / "c.json"), str(tmp_path / "back.manifest"), to="manifest", label_attribute="boxes",
            job_name="Imported")
    got = _records(tmp_path / "back.manifest")
    assert [o["coco-id"] for g in got for o in g["boxes-metadata"]["objects"]] == [a["id"] for a in doc["annotations"]]
    assert [g["coco-image"]["id"] for g in got] == [i["id"] for i in doc["images"]]
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert g["source-ref"] == w["source-ref"]
        assert g["boxes"] == {"image_size": w[attr]["image_size"], "annotations": w[attr]["annotations"]}
        meta = g["boxes-metadata"]
        # each box keeps its COCO annotation's id (coco-id), the one the export gave it
        assert [{k: v for k, v in o.items() if k != "coco-id"} for o in meta["objects"]] == w[attr + "-metadata"]["objects"]
        assert meta["class-map"] == _used(w[attr], w[attr + "-metadata"])
        assert meta["type"] == "groundtruth/object-detection"
        assert meta["job-name"] == "labeling-job/imported"
        # kept per image by the export: a human label read back as a machine one was a silent change
        assert meta["human-annotated"] == w[attr + "-metadata"]["human-annotated"]
    # a COCO document of another tool says nothing per image: its scores mean predictions
    for image in doc["images"]:
        del image["human-annotated"]
    (tmp_path / "other.json").write_text(json.dumps(doc))
    convert(str(tmp_path / "other.json"), str(tmp_path / "other.manifest"), to="manifest", label_attribute="boxes")
    assert {g["boxes-metadata"]["human-annotated"] for g in _records(tmp_path / "other.manifest")} == {"no"}


@pytest.mark.parametrize(("name", "attr"), OD.items())
@pytest.mark.slow
def test_yolo_round_trip_on_real_boxes(tmp_path, name, attr):
    src = GT / name
    out = tmp_path / "yolo"
    convert(str(src), str(out), to="yolo", label_attribute=attr, confidence=True)  # the 6th column round-trips
    want = _labeled(src, attr)
    assert len(list((out / "labels").glob("*.txt"))) == len(want)
    names = (out / "classes.txt").read_text().splitlines()
    for r in want:
        for k, v in r[attr + "-metadata"]["class-map"].items():
            assert names[int(k)] == v
    convert(str(out), str(tmp_path / "back.manifest"), to="manifest")
    got = _records(tmp_path / "back.manifest")
    for g, w in zip(got, want, strict=True):
        assert g["source-ref"] == w["source-ref"]
        assert g["label"]["image_size"] == w[attr]["image_size"]
        assert g["label-metadata"]["objects"] == w[attr + "-metadata"]["objects"]
        assert g["label-metadata"]["human-annotated"] == w[attr + "-metadata"]["human-annotated"]
        for ga, wa in zip(g["label"]["annotations"], w[attr]["annotations"], strict=True):
            assert ga["class_id"] == wa["class_id"]
            for k in ("left", "top", "width", "height"):
                assert ga[k] == pytest.approx(wa[k], abs=1e-5)


@pytest.mark.parametrize("fmt", ["dm-schema-v1", "synapse-objects"])
@pytest.mark.parametrize(("name", "attr"), real_cases([*OD.items(), *IC.items()]))
def test_synapse_task_data_round_trip(tmp_path, fmt, name, attr):
    src = GT / name
    out = tmp_path / f"t.{'dm' if fmt == 'dm-schema-v1' else 'objects'}.jsonl"
    convert(str(src), str(out), to=fmt, label_attribute=attr)
    lines = _records(out)
    want = _labeled(src, attr)
    assert [ln["source-ref"] for ln in lines] == [w["source-ref"] for w in want]
    assert all(ln["data"] and ln["task_type"] in ("object-detection", "image-classification") for ln in lines)
    convert(str(out), str(tmp_path / "back.manifest"), to="manifest")
    got = _records(tmp_path / "back.manifest")
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert g["label"] == w[attr]
        meta, wmeta = g["label-metadata"], w[attr + "-metadata"]
        if "class-map" in wmeta:
            assert meta["class-map"] == _used(w[attr], wmeta)
            # confidences survive both: DM v1 carries them as a 'confidence' classification attribute
            assert meta["objects"] == wmeta["objects"]
        else:
            assert meta["class-name"] == wmeta["class-name"]
            assert meta["confidence"] == wmeta["confidence"]
        # kept per line by the export, as COCO keeps it per image: Ground Truth writes a confidence
        # on every human classification, which the file-wide rule read as machine labels ("no")
        assert meta["human-annotated"] == wmeta["human-annotated"]
    # task data of another tool says nothing per line: a confidence anywhere means predictions
    (tmp_path / f"other{out.suffixes[0]}.jsonl").write_bytes(
        b"".join(orjson.dumps({k: v for k, v in ln.items() if k != "human-annotated"}) + b"\n" for ln in lines))
    convert(str(tmp_path / f"other{out.suffixes[0]}.jsonl"), str(tmp_path / "other.manifest"), to="manifest")
    scored = any("confidence" in json.dumps(ln["data"]) for ln in lines)
    assert {g["label-metadata"]["human-annotated"] for g in _records(tmp_path / "other.manifest")} == {
        "no" if scored else "yes"}


def _mask_line(tmp_path: Path, n: int, mask: np.ndarray, colors: dict[int, tuple[str, str]]) -> dict:
    rgb = np.zeros((*mask.shape, 3), dtype=np.uint8)
    for idx, (_, hx) in colors.items():
        rgb[mask == idx] = [int(hx[i : i + 2], 16) for i in (1, 3, 5)]
    path = tmp_path / f"mask{n}.png"
    Image.fromarray(rgb, "RGB").save(path)
    cmap = {str(i): {"class-name": name, "hex-color": hx, "confidence": 0.8} for i, (name, hx) in colors.items()}
    return {"source-ref": f"s3://b/img{n}.jpg", "seg-ref": str(path),
            "seg-ref-metadata": {"internal-color-map": cmap, "type": "groundtruth/semantic-segmentation",
                                 "human-annotated": "yes", "creation-date": "2026-01-01T00:00:00.000000",
                                 "job-name": "labeling-job/seg"}}


def test_masks_round_trip_through_coco_rle(tmp_path):
    colors = {0: ("BACKGROUND", "#ffffff"), 1: ("road", "#2acf59"), 2: ("car", "#ff0000")}
    rng = np.random.default_rng(3)
    masks = []
    lines = []
    for n in range(3):
        m = np.zeros((37, 53), dtype=np.uint8)
        m[5:20, 3:40] = 1
        m[rng.integers(0, 37, 60), rng.integers(0, 53, 60)] = 2
        if n == 2:
            m[:] = 0  # an image with background only
        masks.append(m)
        lines.append(_mask_line(tmp_path, n, m, colors))
    src = tmp_path / "seg.manifest"
    src.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in lines))
    convert(str(src), str(tmp_path / "seg.json"), to="coco")
    doc = json.loads((tmp_path / "seg.json").read_text())
    assert {c["id"]: c["name"] for c in doc["categories"]} == {1: "road", 2: "car"}
    assert all(a["iscrowd"] == 0 and "counts" in a["segmentation"] for a in doc["annotations"])
    assert sum(a["image_id"] == 3 for a in doc["annotations"]) == 0
    convert(str(tmp_path / "seg.json"), str(tmp_path / "out" / "back.manifest"), to="manifest")
    got = _records(tmp_path / "out" / "back.manifest")
    assert [g["source-ref"] for g in got] == [r["source-ref"] for r in lines]
    for g, m in zip(got, masks, strict=True):
        meta = g["label-ref-metadata"]
        assert meta["type"] == "groundtruth/semantic-segmentation"
        names = {k: v["class-name"] for k, v in meta["internal-color-map"].items()}
        assert names == {"0": "BACKGROUND", "1": "road", "2": "car"}
        np.testing.assert_array_equal(read_mask(g["label-ref"], meta["internal-color-map"]), m)


@pytest.mark.parametrize("name", ["", "   "])
def test_a_mask_class_of_no_name_is_refused_by_the_coco_export_and_validate(tmp_path, capsys, name):
    """A mask's ``internal-color-map`` class named ``""`` or ``"   "`` was written as a COCO
    category of that name (and passed validate), where a box's is refused: the one rule of class
    names (``class_names.class_name_problem``) holds for masks too."""
    m = np.zeros((8, 9), dtype=np.uint8)
    m[2:5, 3:7] = 1
    src = tmp_path / "seg.manifest"
    src.write_bytes(orjson.dumps(_mask_line(tmp_path, 0, m, {0: ("BACKGROUND", "#ffffff"), 1: (name, "#2acf59")}))
                    + b"\n")
    assert cli_main(["convert", str(src), str(tmp_path / "seg.json"), "--to", "coco"]) == 1
    err = capsys.readouterr().err
    assert "class id 1 has an empty name in seg-ref-metadata.internal-color-map" in err, err
    assert len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "seg.json").exists()
    assert cli_main(["validate", str(src)]) == 1
    out = capsys.readouterr()
    assert "seg-ref-metadata.internal-color-map.1.class-name" in out.out + out.err, out



def test_a_mask_label_without_a_colour_map_names_its_key(tmp_path, capsys):
    """The COCO export's refusal of a mask label without a colour map names the line's key,
    ``seg-ref-metadata.internal-color-map``, as validate does: it said a bare 'internal-color-map'."""
    m = np.zeros((8, 9), dtype=np.uint8)
    line = _mask_line(tmp_path, 0, m, {0: ("BACKGROUND", "#ffffff")})
    del line["seg-ref-metadata"]["internal-color-map"]
    src = tmp_path / "seg.manifest"
    src.write_bytes(orjson.dumps(line) + b"\n")
    assert cli_main(["convert", str(src), str(tmp_path / "seg.json"), "--to", "coco"]) == 1
    err = capsys.readouterr().err
    assert "a mask label needs a URL value and a 'seg-ref-metadata.internal-color-map'" in err, err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "seg.json").exists(), err

def test_coco_polygons_and_compressed_rle_paint_masks(tmp_path):
    binary = np.zeros((10, 12), dtype=bool)
    binary[2:5, 7:11] = True
    rle = rle_encode(binary)
    assert rle_string_to_counts(counts_to_rle_string(rle["counts"])) == rle["counts"]
    doc = {
        "images": [{"id": 4, "width": 12, "height": 10, "file_name": "a.png"}],
        "categories": [{"id": 1, "name": "square"}, {"id": 3, "name": "blob"}],
        "annotations": [
            {"image_id": 4, "category_id": 1, "segmentation": [[1, 1, 5, 1, 5, 5, 1, 5]], "bbox": [1, 1, 4, 4]},
            {"image_id": 4, "category_id": 3, "segmentation": {"size": [10, 12],
                                                               "counts": counts_to_rle_string(rle["counts"])}},
        ],
    }
    (tmp_path / "p.json").write_bytes(orjson.dumps(doc))
    convert(str(tmp_path / "p.json"), str(tmp_path / "p.manifest"), to="manifest", image_root="s3://imgs")
    rec = _records(tmp_path / "p.manifest")[0]
    assert rec["source-ref"] == "s3://imgs/a.png"
    mask = read_mask(rec["label-ref"], rec["label-ref-metadata"]["internal-color-map"])
    assert mask.shape == (10, 12)
    # the square 1..5 covers the 4x4 pixels 1..4, as pycocotools paints it (its bbox [1, 1, 4, 4]); Pillow's
    # inclusive fill painted 5x5
    assert (mask == 1).sum() == 16 and mask[1:5, 1:5].all() and mask[3, 3] == 1
    np.testing.assert_array_equal(mask == 3, rle_decode(rle))


def test_plain_yolo_folder_takes_sizes_from_images(tmp_path):
    root = tmp_path / "ds"
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    Image.new("RGB", (200, 100)).save(root / "images" / "a.jpg")
    Image.new("L", (64, 32)).save(root / "images" / "b.png")
    (root / "labels" / "a.txt").write_text("0 0.5 0.5 0.5 0.5\n1 0.25 0.25 0.1 0.2\n")
    (root / "labels" / "b.txt").write_text("")
    (root / "data.yaml").write_text("names: [cat, dog]\n")
    convert(str(root), str(tmp_path / "y.manifest"), to="manifest")
    a, b = _records(tmp_path / "y.manifest")
    assert a["source-ref"].endswith("images/a.jpg")
    assert a["label"]["image_size"] == [{"width": 200, "height": 100, "depth": 3}]
    assert a["label"]["annotations"][0] == {"class_id": 0, "left": 50, "top": 25, "width": 100, "height": 50}
    assert a["label-metadata"]["class-map"] == {"0": "cat", "1": "dog"}
    assert a["label-metadata"]["human-annotated"] == "yes"
    assert b["label"] == {"image_size": [{"width": 64, "height": 32, "depth": 1}], "annotations": []}


def test_a_yolo_label_file_with_a_bom_reads_as_the_file_method_reads_it(tmp_path):
    """A label file saved by Notepad starts with a UTF-8 BOM: ``convert`` said "class '\\ufeff0'
    is not a non-negative integer" where the file method (which drops the BOM) read the same file.
    Both read it now, to the same label."""
    from totask_manifest._formats.detect import to_label

    root = tmp_path / "ds"
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    Image.new("RGB", (200, 100)).save(root / "images" / "a.jpg")
    body = b"\xef\xbb\xbf0 0.5 0.5 0.5 0.5\r\n1 0.25 0.25 0.1 0.2\r\n"
    (root / "labels" / "a.txt").write_bytes(body)
    (root / "data.yaml").write_text("names: [cat, dog]\n")
    convert(str(root), str(tmp_path / "y.manifest"), to="manifest")
    (a,) = _records(tmp_path / "y.manifest")
    assert a["label"]["annotations"][0] == {"class_id": 0, "left": 50, "top": 25, "width": 100, "height": 50}
    direct = to_label(body, "yolo", "object-detection", image_size=(200, 100, 3), class_names=["cat", "dog"])
    assert direct.value["annotations"] == a["label"]["annotations"]


@pytest.mark.slow
def test_parquet_and_coco_on_s3(tmp_path, s3: S3Endpoint):
    bucket = s3.new_bucket("convert")
    src = GT / "object-detection__aws-amazon-sagemaker-examples__yolov5-sample_output.manifest"
    s3.filesystem().put(str(src), f"{bucket}/in/out.manifest")
    convert(f"{bucket}/in/out.manifest", f"{bucket}/pq/out.parquet", to="parquet")
    convert(f"{bucket}/pq/out.parquet", str(tmp_path / "back.manifest"), to="manifest")
    assert (tmp_path / "back.manifest").read_bytes() == src.read_bytes()
    convert(f"{bucket}/in/out.manifest", f"{bucket}/coco/out.json", to="coco")
    doc = orjson.loads(s3.filesystem().cat(f"{bucket}/coco/out.json"))
    assert len(doc["annotations"]) == 129


def test_errors_are_clear(tmp_path):
    korean = GT / "object-detection-chained-adjustment__YeongJun-Jeon-1to100_Korean__output.manifest"
    with pytest.raises(UsageError, match="several label attributes"):
        convert(str(korean), str(tmp_path / "x.json"), to="coco")
    with pytest.raises(UsageError, match="one side must be 'manifest'"):
        convert(str(tmp_path / "a.json"), str(tmp_path / "b.parquet"), to="parquet", from_format="coco")
    with pytest.raises(UsageError, match="unknown format"):
        convert(str(korean), str(tmp_path / "x"), to="pascal")
    ic = GT / "image-classification__aws-amazon-sagemaker-examples__ic_data-output.manifest"
    with pytest.raises(ManifestError, match="COCO holds boxes and masks") as no_labels:  # nothing to convert: exit 1
        convert(str(ic), str(tmp_path / "x.json"), to="coco")
    assert no_labels.value.rule == "convert-no-labels" and no_labels.value.exit_code == 1
    (tmp_path / "bad.json").write_bytes(orjson.dumps({"images": [{"id": 1, "width": 5, "height": 5}],
                                                       "categories": [{"id": 1, "name": "a"}],
                                                       "annotations": [{"image_id": 1, "category_id": 9,
                                                                        "bbox": [0, 0, 1, 1]}]}))
    with pytest.raises(FormatError, match="category_id 9") as exc:
        convert(str(tmp_path / "bad.json"), str(tmp_path / "bad.manifest"), to="manifest")
    assert not (tmp_path / "bad.manifest").exists()  # never a half-written file
    assert isinstance(exc.value, ManifestError)
    (tmp_path / "nonames").mkdir()
    with pytest.raises(UsageError, match="pass --class-names"):
        convert(str(tmp_path / "nonames"), str(tmp_path / "n.manifest"), to="manifest")


@pytest.mark.parametrize(("to", "out", "options", "said"), [
    ("parquet", "x.parquet", {"label_attribute": "typo"}, "--label-attribute does not apply to manifest -> parquet"),
    ("coco", "x.json", {"job_name": "j", "human_annotated": "yes"},
     "--job-name, --human-annotated do not apply to manifest -> coco"),
    ("yolo", "yolo", {"image_root": "s3://b/"}, "--image-root does not apply to manifest -> yolo"),
    # refused before the names file is read: not 'no such file', which sends the user after the file
    ("parquet", "x.parquet", {"class_names": "missing-names.txt"}, "--class-names does not apply to manifest -> parquet"),
])
def test_an_option_the_conversion_would_ignore_is_refused(tmp_path, to, out, options, said):
    """A flag the chosen conversion does not take (a misspelt ``--label-attribute`` on a Parquet
    export) read as applied when it was ignored: refused before anything is written."""
    yolo = GT / "object-detection__aws-amazon-sagemaker-examples__yolov5-sample_output.manifest"
    with pytest.raises(UsageError, match="^" + re.escape(said)):
        convert(str(yolo), str(tmp_path / out), to=to, **options)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("index_line", "said"), [
    (b'{"label": "labels/a.txt", broken', "index.jsonl line 2: not JSON"),
    (b"[1, 2]", "index.jsonl line 2: not a JSON object"),
    (b'{"label": "labels/a.txt", "source-ref": "a.jpg"}', "index.jsonl line 2: 'width' must be a positive integer"),
    (b'{"source-ref": "a.jpg", "width": 4, "height": 4}', "index.jsonl line 2: 'label' must be a file name"),
    # the label file's own path was taken for its image: "source-ref": "labels/a.txt", exit 0
    (b'{"label": "labels/a.txt", "source-ref": "", "width": 4, "height": 4}',
     "index.jsonl line 2: 'source-ref' must name the label file's image"),
    (b'{"label": "labels/a.txt", "width": 4, "height": 4}', "index.jsonl line 2: 'source-ref' must name"),
])
def test_a_damaged_yolo_index_is_one_line_naming_its_line(tmp_path, capsys, index_line, said):
    """Before: a line of ``index.jsonl`` that is not JSON, not an object or lacks a key ended the
    import with a traceback (orjson.JSONDecodeError, TypeError, KeyError)."""
    ds = tmp_path / "ds"
    (ds / "labels").mkdir(parents=True)
    (ds / "classes.txt").write_text("cat\n")
    (ds / "labels" / "a.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    good = b'{"label": "labels/a.txt", "source-ref": "a.jpg", "width": 4, "height": 4}'
    (ds / "index.jsonl").write_bytes(good + b"\n" + index_line + b"\n")
    assert cli_main(["convert", str(ds), str(tmp_path / "m.manifest"), "--to", "manifest"]) == 1
    err = capsys.readouterr().err
    assert said in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "m.manifest").exists()


def test_a_missing_yolo_folder_is_a_missing_input(tmp_path, capsys):
    """Before: 'holds no images' (exit 1, invalid data), or 'no classes.txt ...' without
    --class-names, for a folder that is not there: the README gives a missing input exit 2."""
    for extra in ([], ["--class-names", str(tmp_path / "names.txt")]):
        (tmp_path / "names.txt").write_text("cat\n")
        code = cli_main(["convert", str(tmp_path / "nope"), str(tmp_path / "m.manifest"), "--to", "manifest",
                         "--from", "yolo", *extra])
        err = capsys.readouterr().err
        assert code == 2 and "no such folder" in err and "nope" in err, err


@pytest.mark.parametrize(("doc", "said"), [
    ({"images": [{"id": [1]}], "annotations": [], "categories": []}, "images[0].id"),
    ({"images": [{"id": 1, "width": 10, "height": 10}], "categories": [{"id": 1, "name": "a"}],
      "annotations": [{"image_id": {"a": 1}, "category_id": 1, "bbox": [1, 1, 2, 2]}]}, "annotations[0].image_id"),
    ({"images": [{"id": 1, "width": 10, "height": 10}], "categories": [{"id": 1, "name": "a"}],
      "annotations": [{"image_id": 1, "category_id": 1, "segmentation": [[1, "a", 3]]}]}, "segmentation"),
    ({"images": [{"id": 1, "width": 10, "height": 10}], "categories": [{"id": 1, "name": "a"}],
      "annotations": [{"image_id": 1, "category_id": 1, "segmentation": [[1, 1, 8, 1, 8, 8, 4]]}]}, "segmentation"),
    ({"images": [{"id": 1, "width": 10, "height": 10}], "categories": [{"id": 6, "name": ""}],
      "annotations": [{"image_id": 1, "category_id": 6, "bbox": [1, 1, 2, 2]}]},
     "'categories[0].name': category id 6 has an empty name"),
    ({"images": [{"id": 1, "width": 10, "height": 10}, {"id": 2, "width": 10, "height": 10}],
      "categories": [{"id": 1, "name": "a"}],
      "annotations": [{"id": 7, "image_id": 1, "category_id": 1, "bbox": [1, 1, 2, 2]},
                      {"id": 7, "image_id": 2, "category_id": 1, "bbox": [1, 1, 2, 2]}]},
     "'annotations[1].id': annotation id 7 is also annotations[0]'s"),
    ({"images": [{"id": 1, "width": 10, "height": 10}], "categories": [{"id": 1, "name": "a"}, {"id": 2, "name": None}],
      "annotations": [{"id": 1, "image_id": 1, "category_id": 2, "bbox": [1, 1, 2, 2]}]},
     "'categories[1].name': category id 2 has no name in categories[1]: its name is null, not a string"),
    ({"images": [{"id": 1, "width": 10, "height": 10}], "categories": [{"id": 2, "name": "   "}],
      "annotations": [{"id": 1, "image_id": 1, "category_id": 2, "bbox": [1, 1, 2, 2]}]},
     "'categories[0].name': category id 2 has an empty name in categories[0]: its name is only spaces"),
    ({"images": [{"id": 1, "width": 10, "height": 10}, {"id": 2, "width": 10, "height": 10}],
      "categories": [{"id": 1, "name": "a"}],
      "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 2, 2]},
                      {"id": "1", "image_id": 2, "category_id": 1, "bbox": [1, 1, 2, 2]}]},
     "'annotations[1].id': annotation id \"1\" is not an integer"),
    ({"images": [{"id": 1, "width": 10, "height": 10}], "categories": [{"id": 1, "name": "a"}],
      "annotations": [{"id": 2.5, "image_id": 1, "category_id": 1, "bbox": [1, 1, 2, 2]}]},
     "'annotations[0].id': annotation id 2.5 is not an integer"),
])
def test_a_malformed_coco_id_or_polygon_is_one_error_naming_its_key(tmp_path, capsys, doc, said):
    """Before: an image id or image_id that is a list or object ended the import with a traceback
    (unhashable type), and a polygon with a value that is not a number, or an odd count of
    values, was skipped or cut short: the image got an empty mask, nothing said. A category named
    ``""`` was imported into a class-map that validate and every export refuse, and an annotation
    id listed twice was taken without a word (pycocotools keeps the last), while an image or
    category id listed twice is refused: each is refused now, naming its key. A category named
    ``null`` became the class ``"None"``, one of spaces passed import, validate and ``--to coco``
    (only ``--to yolo`` refused it), and annotation ids ``1`` and ``"1"`` were two ids: a class
    name is a string with a character other than spaces and an annotation id an integer
    (pycocotools'), each refusal naming the file too."""
    (tmp_path / "c.json").write_text(json.dumps(doc))
    assert cli_main(["convert", str(tmp_path / "c.json"), str(tmp_path / "o" / "m.manifest"), "--to", "manifest"]) == 1
    err = capsys.readouterr().err
    assert said in err and len(err.strip().splitlines()) == 1, err
    assert "c.json" in err, err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(("prefix", "encoding", "said"), [
    (b"\xef\xbb\xbf", "utf-8", None),
    (b"\xff\xfe", "utf-16-le", "is UTF-16 text (it starts with the byte order mark FF FE)"),
    (b"\xfe\xff", "utf-16-be", "is UTF-16 text (it starts with the byte order mark FE FF)"),
    (b"\xff\xfe\x00\x00", "utf-32-le", "is UTF-32 text (it starts with the byte order mark FF FE 00 00)"),
    (b"", "latin-1", "is not UTF-8 text (invalid continuation byte at byte"),
], ids=["utf-8-bom", "utf-16", "utf-16-be", "utf-32", "latin-1"])
def test_a_coco_file_is_read_as_every_json_reader_reads_one(tmp_path, capsys, prefix, encoding, said):
    """A UTF-8 byte order mark was refused ("UTF-8 byte order mark (BOM) is not supported") where
    validate, the file method and a YOLO import drop it: dropped here too. A UTF-16 or UTF-32 file
    got orjson's "str is not valid UTF-8: surrogates not allowed": named by its encoding, as a
    manifest is (``file_kind.other_encoding``), with the command that converts it."""
    doc = {"images": [{"id": 1, "width": 10, "height": 10}], "categories": [{"id": 1, "name": "café"}],
           "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 2, 2]}]}
    (tmp_path / "c.json").write_bytes(prefix + json.dumps(doc, ensure_ascii=False).encode(encoding))
    code = cli_main(["convert", str(tmp_path / "c.json"), str(tmp_path / "m.manifest"), "--to", "manifest"])
    err = capsys.readouterr().err
    if said is None:
        assert code == 0, err
        assert _records(tmp_path / "m.manifest")[0]["label-metadata"]["class-map"] == {"0": "café"}
        return
    assert code == 1 and said in err and "c.json" in err and len(err.strip().splitlines()) == 1, err
    assert "surrogates" not in err and not (tmp_path / "m.manifest").exists()


@pytest.mark.parametrize("in_the_way", ["data.yaml/", "index.jsonl/", "labels/a", "data.yaml", "classes.txt",
                                        "images.txt"])
def test_a_yolo_export_blocked_by_a_users_file_changes_nothing(tmp_path, capsys, in_the_way):
    """A folder where a file goes (or a file where a folder goes) stopped the moves part way: the
    new labels/ was in, ``data.yaml`` was not, and the error named only the folder. Now the
    export checks every name first, names the one in the way, and the folder is as it was (a
    user's file in a ``labels/`` with no ``index.jsonl``: the export replaces ``labels/`` whole).
    A user's own ``data.yaml``, ``classes.txt`` or ``images.txt`` (no ``index.jsonl`` beside it,
    so no export of this tool's) was overwritten, exit 0: refused the same way."""
    src = tmp_path / "in.manifest"
    src.write_bytes(orjson.dumps({"source-ref": "s3://b/ds/a/x.jpg", "boxes": {
        "image_size": [{"width": 10, "height": 10, "depth": 3}],
        "annotations": [{"class_id": 0, "left": 1, "top": 1, "width": 3, "height": 3}]},
        "boxes-metadata": {"class-map": {"0": "cat"}, "type": "groundtruth/object-detection",
                           "human-annotated": "yes", "creation-date": "2024-01-01T00:00:00.000000",
                           "job-name": "labeling-job/j"}}) + b"\n" + orjson.dumps(
        {"source-ref": "s3://b/ds/b/y.jpg", "boxes": {"image_size": [{"width": 10, "height": 10, "depth": 3}],
                                                       "annotations": []},
         "boxes-metadata": {"class-map": {}, "type": "groundtruth/object-detection", "human-annotated": "yes",
                            "creation-date": "2024-01-01T00:00:00.000000", "job-name": "labeling-job/j"}}) + b"\n")
    dst = tmp_path / "ds"
    blocker = dst / in_the_way.rstrip("/")
    if in_the_way.endswith("/"):
        blocker.mkdir(parents=True)
    else:
        blocker.parent.mkdir(parents=True)
        blocker.write_text("mine")
    before = sorted(str(p.relative_to(dst)) for p in dst.rglob("*"))
    assert cli_main(["convert", str(src), str(dst), "--to", "yolo"]) == 2
    err = capsys.readouterr().err
    assert in_the_way.rstrip("/") in err and len(err.strip().splitlines()) == 1, err
    assert sorted(str(p.relative_to(dst)) for p in dst.rglob("*")) == before
    if not in_the_way.endswith("/"):
        assert blocker.read_text() == "mine"


def test_cli(tmp_path, capsys):
    src = GT / "object-detection__aws-amazon-sagemaker-examples__yolov5-sample_output.manifest"
    names = tmp_path / "names.txt"
    names.write_text("Bird\n")
    assert cli_main(["convert", str(src), str(tmp_path / "y"), "--to", "yolo"]) == 0
    assert "manifest -> yolo" in capsys.readouterr().out
    assert cli_main(["convert", str(tmp_path / "y"), str(tmp_path / "y.manifest"), "--to", "manifest",
                     "--class-names", str(names), "--label-attribute", "birds", "--job-name", "Again"]) == 0
    rec = _records(tmp_path / "y.manifest")[0]
    assert rec["birds-metadata"]["job-name"] == "labeling-job/again"
    # a misspelt attribute: an empty COCO document would pass for a dataset, so nothing is written
    assert cli_main(["convert", str(src), str(tmp_path / "z.json"), "--to", "coco", "--label-attribute", "nope"]) == 1
    assert "no line holds a label under 'nope'" in capsys.readouterr().err
    assert not (tmp_path / "z.json").exists()
    # into folders that are not there: they are not left behind, empty (before: z/a/ stayed)
    assert cli_main(["convert", str(src), str(tmp_path / "z" / "a" / "b.json"), "--to", "coco",
                     "--label-attribute", "nope"]) == 1
    assert "nothing was written" in capsys.readouterr().err and not (tmp_path / "z").exists()
    assert cli_main(["convert", str(tmp_path / "missing.json"), str(tmp_path / "m.manifest"), "--to", "manifest"]) == 2
    assert "no such file" in capsys.readouterr().err


def test_attribute_detection_reads_past_lines_that_are_not_json_objects(tmp_path):
    from totask_manifest._analytics.labels import pick_attribute

    src = GT / "object-detection__aws-amazon-sagemaker-examples__yolov5-sample_output.manifest"
    path = tmp_path / "odd.manifest"
    path.write_bytes(b'[1, 2]\n\n{"source-ref": \n' + src.read_bytes())
    assert pick_attribute(str(path), ["object-detection"], None) == "category"
    with pytest.raises(ManifestError, match=r"line 1: .*not an object"):
        convert(str(path), str(tmp_path / "x.json"), to="coco")
    assert not (tmp_path / "x.json").exists()


def _square_coco(image_id: object = 1) -> dict:
    """A COCO document of one 10x10 image with one square 'cat' polygon (4x4 pixels)."""
    return {"images": [{"id": image_id, "file_name": "a.jpg", "width": 10, "height": 10}],
            "categories": [{"id": 1, "name": "cat"}],
            "annotations": [{"image_id": image_id, "category_id": 1, "segmentation": [[1, 1, 5, 1, 5, 5, 1, 5]]}]}


def test_a_coco_import_stopped_by_a_bad_image_leaves_no_mask(tmp_path):
    """Masks are painted image by image before the manifest is written: a bad segmentation on the
    second image stopped the import with no manifest, and the first image's mask (and the folders
    made for it) stayed, named by no line. A mask file there before stays (rewritten, as a
    finished import rewrites it)."""
    doc = {"images": [{"id": i, "file_name": f"{i}.jpg", "width": 10, "height": 10} for i in (1, 2, 3)],
           "categories": [{"id": 1, "name": "cat"}],
           "annotations": [{"image_id": 1, "category_id": 1, "segmentation": [[1, 1, 5, 1, 5, 5, 1, 5]]},
                           {"image_id": 2, "category_id": 1, "segmentation": [[1, 1, 5, 1, 5, 5, 1, 5]]},
                           {"image_id": 3, "category_id": 1, "segmentation": "bad"}]}
    src = tmp_path / "c.json"
    src.write_text(json.dumps(doc))
    with pytest.raises(FormatError, match="image 3: bad segmentation"):
        convert(str(src), str(tmp_path / "out" / "m.manifest"), to="manifest")
    assert not (tmp_path / "out").exists()
    (tmp_path / "kept" / "masks").mkdir(parents=True)
    (tmp_path / "kept" / "masks" / "2.png").write_bytes(b"mine")
    with pytest.raises(FormatError):
        convert(str(src), str(tmp_path / "kept" / "m.manifest"), to="manifest")
    assert sorted(p.name for p in (tmp_path / "kept").rglob("*")) == ["2.png", "masks"]


def test_mask_references_resolve_against_the_manifests_folder_both_ways(tmp_path, monkeypatch):
    """Every reader (jobs, evaluate, report) resolves a relative reference against the manifest's
    folder. Before: a COCO import to ``out/m.manifest`` from the working directory wrote
    ``out/masks/1.png`` (relative to the working directory), which they read as
    ``out/out/masks/1.png``; and a COCO export read a relative mask reference against the working
    directory, not the manifest's folder."""
    (tmp_path / "c.json").write_text(json.dumps(_square_coco()))
    monkeypatch.chdir(tmp_path)
    convert("c.json", "out/m.manifest", to="manifest")
    rec = _records(tmp_path / "out" / "m.manifest")[0]
    mask_file = resolve_reference(rec["label-ref"], base_of(str(tmp_path / "out" / "m.manifest")))
    assert Path(mask_file) == tmp_path / "out" / "masks" / "1.png"
    # a manifest naming its mask relative to its own folder, exported from another folder
    rec["label-ref"] = "masks/1.png"
    (tmp_path / "out" / "rel.manifest").write_bytes(orjson.dumps(rec) + b"\n")
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    convert(str(tmp_path / "out" / "rel.manifest"), str(tmp_path / "back.json"), to="coco")
    back = json.loads((tmp_path / "back.json").read_text())
    assert [a["area"] for a in back["annotations"]] == [16]  # the 4x4 pixels of the square 1..5, as pycocotools paints it


def test_a_bad_coco_annotation_is_named_by_its_place_in_the_document(tmp_path):
    """The key named the annotation's place among its image's annotations (``annotations[0]``
    for the document's third), so the user looked at the wrong one."""
    doc = {"images": [{"id": 1, "file_name": "a.jpg", "width": 10, "height": 10},
                      {"id": 2, "file_name": "b.jpg", "width": 10, "height": 10}],
           "categories": [{"id": 1, "name": "cat"}],
           "annotations": [{"image_id": 1, "category_id": 1, "segmentation": [[1, 1, 5, 1, 5, 5, 1, 5]]},
                           {"image_id": 1, "category_id": 1, "segmentation": [[1, 1, 5, 1, 5, 5, 1, 5]]},
                           {"image_id": 2, "category_id": 1, "segmentation": "bad"}]}
    src = tmp_path / "c.json"
    src.write_text(json.dumps(doc))
    with pytest.raises(FormatError) as err:
        convert(str(src), str(tmp_path / "m.manifest"), to="manifest")
    assert err.value.key == "annotations[2].segmentation" and "image 2: bad segmentation" in str(err.value)
    for ann in doc["annotations"][:2]:
        ann["bbox"] = [1, 1, 4, 4]
    doc["annotations"][2] = {"image_id": 2, "category_id": 1, "bbox": [0, 0, 1]}
    src.write_text(json.dumps(doc))
    with pytest.raises(FormatError) as err:
        convert(str(src), str(tmp_path / "m.manifest"), to="manifest", task_type="object-detection",
                allow_drop=True)
    assert err.value.key == "annotations[2].bbox"


@pytest.mark.parametrize(("where", "key"), [("image", "images[0].id"), ("annotation", "annotations[0].image_id")])
def test_a_coco_id_that_is_a_list_or_an_object_is_one_error_line(tmp_path, capsys, where, key):
    """An id JSON writes as a list or an object cannot key anything: the import ended in a
    ``TypeError: unhashable type`` traceback."""
    doc = {"images": [{"id": 1, "file_name": "a.jpg", "width": 10, "height": 10}],
           "categories": [{"id": 1, "name": "cat"}],
           "annotations": [{"image_id": 1, "category_id": 1, "bbox": [1, 1, 4, 4]}]}
    if where == "image":
        doc["images"][0]["id"] = [1]
    else:
        doc["annotations"][0]["image_id"] = {"n": 1}
    src = tmp_path / "c.json"
    src.write_text(json.dumps(doc))
    with pytest.raises(FormatError) as err:
        convert(str(src), str(tmp_path / "m.manifest"), to="manifest")
    assert err.value.key == key and "is not an integer" in str(err.value)
    capsys.readouterr()
    assert cli_main(["convert", str(src), str(tmp_path / "m.manifest"), "--to", "manifest"]) == 1
    err_lines = capsys.readouterr().err.strip().splitlines()
    assert len(err_lines) == 1 and err_lines[0].startswith("totask-manifest convert: ") and key in err_lines[0]


def test_a_coco_image_id_is_no_path_for_its_mask(tmp_path):
    """A mask is written at ``masks/<image id>.png``: an id such as ``../../x`` wrote it outside
    the output's folder."""
    doc = _square_coco("../../x")
    src = tmp_path / "c.json"
    src.write_text(json.dumps(doc))
    (tmp_path / "a" / "b" / "masks").mkdir(parents=True)
    try:
        convert(str(src), str(tmp_path / "a" / "b" / "m.manifest"), to="manifest")
    except FormatError as exc:
        assert exc.key == "images[0].id"
    assert not (tmp_path / "a" / "x.png").exists()
    assert not (tmp_path / "a" / "b" / "m.manifest").exists()


@pytest.mark.parametrize("image_id", ["img 1", "été-7", "a.b_c", "7"])
def test_a_coco_image_id_that_is_a_file_name_is_refused_as_no_integer(tmp_path, image_id):
    """A string image id named its mask file (``masks/img 1.png``) and was kept as a string,
    which pycocotools' results match against no image: COCO ids are integers
    (``test_coco_id_integers``), so it is refused, and no mask is painted."""
    doc = _square_coco(image_id)
    src = tmp_path / "c.json"
    src.write_text(json.dumps(doc), encoding="utf-8")
    with pytest.raises(FormatError) as err:
        convert(str(src), str(tmp_path / "m.manifest"), to="manifest")
    assert err.value.key == "images[0].id" and "COCO ids are integers" in str(err.value)
    assert not (tmp_path / "masks").exists() and not (tmp_path / "m.manifest").exists()


@pytest.mark.parametrize(("name", "body", "to"), [("a.json", b"not json", "coco-in"), ("b.json", b'{"x":1}', "coco-in"),
                                                  ("c.parquet", b"not parquet", "parquet-in")])
def test_an_import_refused_names_its_url_without_the_token(tmp_path, capsys, name, body, to):
    """An import read through a URL with a token (a presigned link): COCO's 'is not a JSON/COCO
    document' and Parquet's 'is not a Parquet file' named the URL whole, token included, where
    the export's errors already left it out."""
    from totask_manifest.testing.file_server import FileServer

    with FileServer() as server:
        server.add(name, body)
        url = server.url_for(name) + "?X-Amz-Signature=SIGSECRET"
        fmt = to.split("-")[0]
        code = cli_main(["convert", url, str(tmp_path / "out.manifest"), "--from", fmt, "--to", "manifest"])
    err = capsys.readouterr().err
    assert code in (1, 2) and f"{name}?…" in err, err
    assert "SIGSECRET" not in err, err


@pytest.mark.parametrize("fmt", ["dm-schema-v1", "synapse-objects"])
def test_task_data_import_keeps_human_annotated_by_the_documented_rule(tmp_path, fmt):
    """``human-annotated`` of imported labels: 'no' when they carry scores, else 'yes' (as COCO
    and YOLO imports do). Synapse task data was always 'no': people's boxes, exported and read
    back, became a machine's, and ``evaluate`` then took them for the prediction."""
    meta = {"class-map": {"0": "cat"}, "type": "groundtruth/object-detection", "human-annotated": "yes",
            "creation-date": "2026-01-01T00:00:00.000000", "job-name": "labeling-job/people"}
    value = {"image_size": [{"width": 20, "height": 10, "depth": 3}],
             "annotations": [{"class_id": 0, "left": 1, "top": 1, "width": 3, "height": 3}]}
    people = tmp_path / "people.manifest"
    people.write_bytes(orjson.dumps({"source-ref": "s3://b/a.jpg", "box": value,
                                     "box-metadata": {**meta, "objects": [{}]}}) + b"\n")
    model = tmp_path / "model.manifest"
    model.write_bytes(orjson.dumps({"source-ref": "s3://b/a.jpg", "box": value,
                                    "box-metadata": {**meta, "human-annotated": "no",
                                                     "objects": [{"confidence": 0.8}]}}) + b"\n")
    suffix = "dm" if fmt == "dm-schema-v1" else "objects"
    for src, want in ((people, "yes"), (model, "no")):
        data = tmp_path / f"{src.stem}.{suffix}.jsonl"
        convert(str(src), str(data), to=fmt, label_attribute="box")
        for task_type in (None, "object-detection"):  # kept as the document, or converted back
            back = tmp_path / f"{src.stem}-{task_type}.manifest"
            convert(str(data), str(back), to="manifest", task_type=task_type)
            assert _records(back)[0]["label-metadata"]["human-annotated"] == want, (src.stem, task_type)


@requires_gt
def test_image_root_never_prefixes_a_file_name_that_is_a_url(tmp_path, capsys):
    """The docs' pair `convert out.manifest coco.json --to coco` then `convert coco.json ...
    --image-root s3://bucket/images` made every source-ref `s3://bucket/images/s3://...` (a URL
    inside a URL, exit 0). A file_name that is a URL or an absolute path is refused with the
    option, naming it, and nothing is written; without --image-root it reads back as it was."""
    src = GT / "object-detection__aws-amazon-sagemaker-examples__yolov5-sample_output.manifest"
    coco = tmp_path / "coco.json"
    convert(str(src), str(coco), to="coco")
    out = tmp_path / "in.manifest"
    code = cli_main(["convert", str(coco), str(out), "--to", "manifest", "--image-root", "s3://bucket/images"])
    said = capsys.readouterr().err
    assert code == 2 and not out.exists()
    assert "images[0].file_name" in said and "s3://rns-groundtruth-bucket/" in said and "--image-root" in said
    assert cli_main(["convert", str(coco), str(out), "--to", "manifest"]) == 0
    want = [r["source-ref"] for r in _records(src)]
    assert [r["source-ref"] for r in _records(out)] == want


@requires_gt
def test_no_fitting_attribute_names_what_the_lines_hold(tmp_path, capsys):
    """`convert text-classification.manifest c.json --to coco` said only 'no label attribute of
    type custom or object-detection or semantic-segmentation': a new user could not tell what
    the file holds. The error names the attributes there and their types (exit 1: nothing to
    convert is a data problem, ``convert-no-labels``; no output)."""
    src = GT / "text-classification-multilabel__aws-samples-amazon-comprehend-examples__DocumentClassifier-output.manifest"
    code = cli_main(["convert", str(src), str(tmp_path / "c.json"), "--to", "coco"])
    said = capsys.readouterr().err
    assert code == 1 and not (tmp_path / "c.json").exists()
    assert "lines hold only cutomDocClassification (text-classification-multilabel)" in said
