"""A YOLO export as Ultralytics checks a dataset before it trains on it.

Ultralytics itself is not installed (it pulls a CUDA build of torch), so its checks are applied
here as its source writes them (``ultralytics/data/utils.py``): ``check_det_dataset`` reads
``data.yaml`` (``train`` and ``val`` required, ``names`` as ids 0..n-1 by ``check_class_names``,
the dataset root ``path`` or else the YAML's own folder, a relative ``path`` taken from the
working directory), lists the images of ``train``/``val`` by suffix, and ``verify_image_label``
reads each image's label file (``img2label_paths``: the last ``/images/`` becomes ``/labels/``,
the suffix ``.txt``): 5 columns, coordinates within -0.01..1.01, class ids below ``len(names)``.

``data.yaml`` said ``path: .``, which Ultralytics takes from the working directory: trained from
anywhere but the folder itself, it looked for ``./images`` there and stopped ("Dataset images not
found"), or trained on another folder's images.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import orjson
import pytest
import yaml
from PIL import Image

from tests.support.gt import GT_MANIFESTS as GT
from tests.support.gt import real_cases, requires_gt
from totask_manifest._analytics.convert import convert

#: ``ultralytics.data.utils.IMG_FORMATS``
IMG_FORMATS = {"bmp", "dng", "jpeg", "jpg", "mpo", "png", "tif", "tiff", "webp", "pfm", "heic"}
BOXES = {
    "object-detection__aws-amazon-sagemaker-examples__yolov5-sample_output.manifest": "category",
    "object-detection-chained-same-attribute__aws-samples-mxnet-dice-aim403-workshop__output.manifest": (
        "dice-labeling"
    ),
    "object-detection-chained-adjustment__YeongJun-Jeon-1to100_Korean__output.manifest": (
        "suneung-korean-layout-detection-v2-chain"
    ),
}


def check_class_names(names: list | dict) -> dict[int, str]:
    """``ultralytics.nn.autobackend.check_class_names``: ids must be 0..n-1."""
    if isinstance(names, list):
        names = dict(enumerate(names))
    names = {int(k): str(v) for k, v in names.items()}
    if max(names) >= len(names):
        raise KeyError(f"{len(names)}-class dataset requires class indices 0-{len(names) - 1}")
    return names


def check_det_dataset(yaml_file: Path, datasets_dir: Path) -> dict:
    """``ultralytics.data.utils.check_det_dataset`` without downloads, from the working directory."""
    data = yaml.safe_load(yaml_file.read_text(encoding="utf-8"))
    for k in ("train", "val"):
        if k not in data:
            raise SyntaxError(f"'{k}:' key missing")
    if "names" not in data:
        raise SyntaxError("'names' missing")
    data["names"] = check_class_names(data["names"])
    path = Path(data.get("path") or yaml_file.parent)  # Path(".") exists: the working directory
    if not path.exists() and not path.is_absolute():
        path = (datasets_dir / path).resolve()
    for k in ("train", "val", "test"):
        if data.get(k):
            x = (path / data[k]).resolve()
            if not x.exists() and data[k].startswith("../"):
                x = (path / data[k][3:]).resolve()
            data[k] = str(x)
    if not Path(data["val"]).exists():
        raise FileNotFoundError(f"Dataset images not found, missing path '{data['val']}'")
    return data


def img2label_paths(img_paths: list[str]) -> list[str]:
    """``ultralytics.data.utils.img2label_paths``."""
    sa, sb = f"{os.sep}images{os.sep}", f"{os.sep}labels{os.sep}"
    return [sb.join(x.rsplit(sa, 1)).rsplit(".", 1)[0] + ".txt" for x in img_paths]


def image_files(folder: str) -> list[str]:
    """The images Ultralytics' dataset finds below a ``train``/``val`` folder (by suffix)."""
    return sorted(str(p) for p in Path(folder).rglob("*.*") if p.suffix[1:].lower() in IMG_FORMATS)


def verify_label(lb_file: str, num_cls: int) -> np.ndarray:
    """``ultralytics.data.utils.verify_image_label``'s label checks for a detection dataset."""
    assert os.path.isfile(lb_file), f"label missing: {lb_file}"
    with open(lb_file, encoding="utf-8") as f:
        lb = [x.split() for x in f.read().strip().splitlines() if len(x)]
    assert not any(len(x) > 6 for x in lb), "a segment label in a box export"
    lb = np.array(lb, dtype=np.float32)
    if len(lb):
        assert lb.shape[1] == 5, f"labels require 5 columns, {lb.shape[1]} columns detected"
        assert lb[:, 1:].max() <= 1.01, "non-normalized or out of bounds coordinates"
        assert lb.min() >= -0.01, "negative class labels or coordinates"
        assert lb[:, 0].max() < num_cls, (
            f"Label class {int(lb[:, 0].max())} exceeds dataset class count {num_cls}"
        )
    return lb


def _copy_images(out: Path) -> None:
    """Put each image where ``index.jsonl`` says, as a user does before training."""
    for raw in (out / "index.jsonl").read_bytes().splitlines():
        entry = orjson.loads(raw)
        image = out / entry["image"]
        image.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (entry["width"], entry["height"])).save(image)


def _check_as_ultralytics(out: Path, elsewhere: Path, monkeypatch) -> list[np.ndarray]:
    """Train from another working directory, with data=<out>/data.yaml."""
    elsewhere.mkdir(exist_ok=True)
    monkeypatch.chdir(elsewhere)
    data = check_det_dataset(out / "data.yaml", elsewhere / "datasets")
    assert Path(data["train"]) == Path(data["val"]) == (out / "images").resolve()
    images = image_files(data["train"])
    index = [orjson.loads(raw) for raw in (out / "index.jsonl").read_bytes().splitlines()]
    assert len(images) == len(index)
    labels = img2label_paths(images)
    assert sorted(labels) == sorted(str((out / e["label"]).resolve()) for e in index)
    return [verify_label(lb, len(data["names"])) for lb in labels]


@requires_gt
@pytest.mark.parametrize(("name", "attr"), real_cases(BOXES.items()))
def test_the_export_passes_ultralytics_dataset_checks_from_any_working_directory(
    tmp_path, monkeypatch, name, attr
):
    out = tmp_path / "yolo"
    convert(str(GT / name), str(out), to="yolo", label_attribute=attr)
    _copy_images(out)
    rows = _check_as_ultralytics(out, tmp_path / "elsewhere", monkeypatch)
    records = [orjson.loads(raw) for raw in (GT / name).read_bytes().splitlines() if raw.strip()]
    labeled = [r for r in records if attr in r and "failure-reason" not in r[attr + "-metadata"]]
    assert sum(len(r) for r in rows) == sum(len(r[attr]["annotations"]) for r in labeled)
    # moved, it still finds its images: nothing in data.yaml names where it was written
    shutil.move(out, tmp_path / "moved")
    _check_as_ultralytics(tmp_path / "moved", tmp_path / "elsewhere", monkeypatch)


def test_class_ids_with_gaps_still_make_names_0_to_n(tmp_path, monkeypatch):
    """A class map 0 and 3: ``names`` holds 0..3 (placeholders between), as check_class_names needs."""
    line = {
        "source-ref": "s3://bucket/ds/a.jpg",
        "boxes": {
            "image_size": [{"width": 40, "height": 30, "depth": 3}],
            "annotations": [
                {"class_id": 3, "left": 0, "top": 0, "width": 40, "height": 30},
                {"class_id": 0, "left": 5, "top": 5, "width": 10, "height": 10},
            ],
        },
        "boxes-metadata": {
            "objects": [{"confidence": 0.9}, {"confidence": 0.8}],
            "class-map": {"3": "dog", "0": "cat"},
            "type": "groundtruth/object-detection",
            "human-annotated": "no",
            "creation-date": "2024-01-01T00:00:00.000000",
            "job-name": "labeling-job/x",
        },
    }
    (tmp_path / "m.manifest").write_bytes(orjson.dumps(line) + b"\n")
    out = tmp_path / "yolo"
    convert(str(tmp_path / "m.manifest"), str(out), to="yolo")
    _copy_images(out)
    (rows,) = _check_as_ultralytics(out, tmp_path / "elsewhere", monkeypatch)
    names = check_class_names(yaml.safe_load((out / "data.yaml").read_text())["names"])
    assert names == {0: "cat", 1: "class_1", 2: "class_2", 3: "dog"}
    assert np.allclose(rows, [[3, 0.5, 0.5, 1.0, 1.0], [0, 0.25, 10 / 30, 0.25, 10 / 30]])


def test_images_ultralytics_would_not_list_are_counted(tmp_path, capsys):
    """Ultralytics lists a folder's images by suffix (``IMG_FORMATS``): an image saved as
    ``images/host/files/123`` (a ``source-ref`` such as an API URL has none) or as ``.gif`` is
    never read, and its label file with it, with nothing said. The summary counts them."""
    from totask_manifest._cli import main

    line = {
        "boxes": {
            "image_size": [{"width": 40, "height": 30, "depth": 3}],
            "annotations": [{"class_id": 0, "left": 5, "top": 5, "width": 10, "height": 10}],
        },
        "boxes-metadata": {
            "objects": [{}],
            "class-map": {"0": "cat"},
            "type": "groundtruth/object-detection",
            "human-annotated": "no",
            "creation-date": "2024-01-01T00:00:00.000000",
            "job-name": "labeling-job/x",
        },
    }
    sources = [
        "https://host.example/files/123",
        "https://host.example/files/a.gif",
        "https://host.example/files/b.JPG",
    ]
    (tmp_path / "m.manifest").write_bytes(
        b"".join(orjson.dumps({"source-ref": s, **line}) + b"\n" for s in sources)
    )
    result = convert(str(tmp_path / "m.manifest"), str(tmp_path / "y"), to="yolo")
    assert result.counts["images without an image suffix"] == 2
    index = [orjson.loads(raw) for raw in (tmp_path / "y" / "index.jsonl").read_bytes().splitlines()]
    listed = [e["image"] for e in index if e["image"].rsplit(".", 1)[-1].lower() in IMG_FORMATS]
    assert listed == ["images/b.JPG"]
    assert main(["convert", str(tmp_path / "m.manifest"), str(tmp_path / "y2"), "--to", "yolo"]) == 0
    assert "images without an image suffix 2" in capsys.readouterr().out
