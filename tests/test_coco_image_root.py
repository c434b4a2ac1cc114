"""``convert --to coco --image-root``: ``file_name`` relative to the images' folder.

COCO readers join an image folder they are given with ``file_name`` (Detectron2's
``register_coco_instances``, mmdetection's ``data_prefix``). An export wrote the whole
``source-ref`` there, which no such folder finds. With ``--image-root`` the export writes the
name below the root, the import with the same root gives back every ``source-ref`` and label,
and a line whose image is not below the root is refused, naming it, with no file written."""

from __future__ import annotations

import os
import posixpath

import orjson
import pytest

from tests.jobs_helpers import run_cli
from tests.support.gt import GT_MANIFESTS as GT
from tests.support.gt import real_cases, requires_gt
from totask_manifest._analytics.convert import convert
from totask_manifest._errors import ManifestError

BOXES = {
    "object-detection__aws-amazon-sagemaker-examples__yolov5-sample_output.manifest": "category",
    "object-detection-chained-same-attribute__aws-samples-mxnet-dice-aim403-workshop__output.manifest": "dice-labeling",
}


def _lines(path) -> list[dict]:
    return [orjson.loads(raw) for raw in path.read_bytes().splitlines() if raw.strip()]


def _folder(lines: list[dict]) -> str:
    return posixpath.commonpath([posixpath.dirname(line["source-ref"].split("://", 1)[1]) for line in lines])


@requires_gt
@pytest.mark.parametrize(("name", "attr"), real_cases(BOXES.items()))
def test_an_export_below_a_root_imports_back_to_the_same_images_and_boxes(tmp_path, name, attr):
    original = _lines(GT / name)
    scheme = original[0]["source-ref"].split("://", 1)[0]
    root = f"{scheme}://{_folder(original)}/"  # a trailing slash is the same folder
    out = tmp_path / "coco.json"
    convert(str(GT / name), str(out), to="coco", label_attribute=attr, image_root=root)
    doc = orjson.loads(out.read_bytes())
    names = [image["file_name"] for image in doc["images"]]
    assert names == [line["source-ref"][len(root):] for line in original]
    assert all("://" not in n and not n.startswith("/") for n in names)

    back = tmp_path / "back.manifest"
    convert(str(out), str(back), to="manifest", label_attribute=attr, image_root=root)
    again = _lines(back)
    assert [line["source-ref"] for line in again] == [line["source-ref"] for line in original]
    for before, after in zip(original, again, strict=True):
        boxes = [{k: a[k] for k in ("class_id", "left", "top", "width", "height")} for a in before[attr]["annotations"]]
        assert [{k: a[k] for k in ("class_id", "left", "top", "width", "height")}
                for a in after[attr]["annotations"]] == boxes


def _boxes_at(tmp_path, sources: list[str]):
    path = tmp_path / "in.manifest"
    label = {"image_size": [{"width": 64, "height": 48, "depth": 3}],
             "annotations": [{"class_id": 0, "left": 1, "top": 2, "width": 10, "height": 8}]}
    meta = {"class-map": {"0": "cat"}, "type": "groundtruth/object-detection", "human-annotated": "yes",
            "creation-date": "2026-01-01T00:00:00.000000", "job-name": "labeling-job/j", "objects": [{"confidence": 1}]}
    path.write_bytes(b"".join(orjson.dumps({"source-ref": s, "boxes": label, "boxes-metadata": meta}) + b"\n"
                              for s in sources))
    return path


def test_local_images_are_found_where_a_reader_joins_the_root_and_the_name(tmp_path):
    images = tmp_path / "images"
    (images / "train").mkdir(parents=True)
    sources = [str(images / "a.jpg"), str(images / "train" / "b.jpg")]
    for s in sources:
        open(s, "wb").close()
    out = tmp_path / "coco.json"
    convert(str(_boxes_at(tmp_path, sources)), str(out), to="coco", image_root=str(images))
    names = [image["file_name"] for image in orjson.loads(out.read_bytes())["images"]]
    assert names == ["a.jpg", "train/b.jpg"]
    assert all(os.path.isfile(os.path.join(images, n)) for n in names)  # as Detectron2 reads them


@pytest.mark.parametrize("other", ["s3://b/elsewhere/c.jpg", "s3://b/imagesX/c.jpg", "s3://b/images//c.jpg",
                                   "s3://b/images/"])
def test_an_image_outside_the_root_is_refused_naming_its_line_and_nothing_is_written(tmp_path, other):
    src = _boxes_at(tmp_path, ["s3://b/images/a.jpg", other])
    out = tmp_path / "coco.json"
    with pytest.raises(ManifestError) as caught:
        convert(str(src), str(out), to="coco", image_root="s3://b/images")
    assert (caught.value.line, caught.value.key, caught.value.rule) == (2, "source-ref", "convert-image-root")
    assert not out.exists() and list(tmp_path.iterdir()) == [src]


def test_the_cli_says_it_in_one_line_without_the_password(tmp_path):
    src = _boxes_at(tmp_path, ["https://u:secret@host/images/a.jpg", "https://u:secret@host/other/b.jpg"])
    out = tmp_path / "coco.json"
    done = run_cli("convert", str(src), str(out), "--to", "coco", "--image-root", "https://u:secret@host/images")
    assert done.returncode == 1, done.stderr
    assert len(done.stderr.splitlines()) == 1 and "line 2" in done.stderr and "convert-image-root" in done.stderr
    assert "secret" not in done.stderr + done.stdout
    assert not out.exists()
    ok = run_cli("convert", str(src), str(out), "--to", "coco", "--image-root", "https://u:secret@host")
    assert ok.returncode == 0, ok.stderr
    assert [i["file_name"] for i in orjson.loads(out.read_bytes())["images"]] == ["images/a.jpg", "other/b.jpg"]
