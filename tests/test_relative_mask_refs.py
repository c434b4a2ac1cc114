"""A mask label's relative reference (``seg-ref: mask0.png``) follows the rules of a relative
``source-ref``: a job's own output manifest reads it where the job read its input (``convert``
from another folder looked for ``<job>/manifests/output/mask0.png``), ``labeled`` counts it among
the references it moved (it said ``relative_refs_moved: 0``), and a mask that cannot be read names
the line, the key and the folder a relative reference was read against (it said only
``no such file: PATH``)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import orjson
import pytest
from PIL import Image

from totask_manifest._cli import main

COLOR_MAP = {"0": {"class-name": "BACKGROUND", "hex-color": "#000000"},
             "1": {"class-name": "car", "hex-color": "#123456", "confidence": 0.8}}


def _mask(path: Path) -> None:
    pixels = np.zeros((6, 8, 3), dtype=np.uint8)
    pixels[1:4, 2:5] = (0x12, 0x34, 0x56)
    Image.fromarray(pixels).save(path)


def _seg_document(i: int) -> dict:
    return {"source-ref": f"s3://b/img{i}.png", "seg-ref": f"mask{i}.png",
            "seg-ref-metadata": {"internal-color-map": COLOR_MAP, "type": "groundtruth/semantic-segmentation",
                                 "human-annotated": "yes", "creation-date": "2022-09-09T17:25:32.047919",
                                 "job-name": "labeling-job/s"}}


@pytest.fixture
def data(tmp_path: Path) -> Path:
    """``data/``: two masks and a manifest of their labels beside them (absolute source-refs)."""
    folder = tmp_path / "data"
    folder.mkdir()
    for i in range(2):
        _mask(folder / f"mask{i}.png")
    (folder / "seg.manifest").write_bytes(b"".join(orjson.dumps(_seg_document(i)) + b"\n" for i in range(2)))
    return folder


def test_labeled_counts_moved_mask_refs_and_convert_names_the_line_key_and_folder(data: Path, tmp_path: Path,
                                                                                  capsys) -> None:
    lab = tmp_path / "lab" / "seg.manifest"
    assert main(["labeled", str(data / "seg.manifest"), "--label-attribute", "seg-ref", "-o", str(lab),
                 "--format", "json"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["relative_refs_moved"] == 2
    assert "2 kept lines hold a relative seg-ref (first on line 1)" in err, err
    assert main(["convert", str(lab), str(tmp_path / "o.json"), "--to", "coco"]) == 1
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert "line 1, key 'seg-ref': no such file: " + str(lab.parent / "mask0.png") in lines[0]
    assert f"(a relative seg-ref resolves against {lab.parent})" in lines[0]
    assert not (tmp_path / "o.json").exists()


def test_a_jobs_output_reads_its_mask_refs_where_the_job_did(data: Path, tmp_path: Path, capsys,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    rows = []
    for i in range(2):  # each line names its label file; the label's seg-ref is relative to the input's folder
        (data / f"ann{i}.json").write_bytes(orjson.dumps(_seg_document(i)))
        rows.append(orjson.dumps({"source-ref": f"s3://b/img{i}.png", "a": f"ann{i}.json"}))
    (data / "in.manifest").write_bytes(b"\n".join(rows) + b"\n")
    assert main(["annotate", str(data / "in.manifest"), "--job-name", "sj", "--label-attribute", "masks-ref",
                 "--task-type", "semantic-segmentation", "--method", "file", "--url-key", "a",
                 "--allow-root", str(data), "--output", str(tmp_path / "out")]) == 0
    output = tmp_path / "out" / "sj" / "manifests" / "output" / "output.manifest"
    assert orjson.loads(output.read_bytes().splitlines()[0])["masks-ref"] == "mask0.png"
    monkeypatch.chdir("/")  # neither the input's folder nor the output's
    capsys.readouterr()
    assert main(["convert", str(output), str(tmp_path / "o.json"), "--to", "coco"]) == 0, capsys.readouterr().err
    doc = json.loads((tmp_path / "o.json").read_text())
    assert [a["area"] for a in doc["annotations"]] == [9, 9]


def _labeled_folder(folder: Path, ids: range, color_map: dict = COLOR_MAP) -> None:
    """Images, masks and label files in ``folder``, and ``in.manifest`` naming them relatively,
    each line with a reference label (``truth-ref``) of the same mask."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in ids:
        Image.fromarray(np.full((6, 8, 3), 200, dtype=np.uint8)).save(folder / f"img{i}.png")
        _mask(folder / f"mask{i}.png")
        label = {**_seg_document(i), "source-ref": f"img{i}.png"}
        label["seg-ref-metadata"] = {**label["seg-ref-metadata"], "internal-color-map": color_map}
        (folder / f"ann{i}.json").write_bytes(orjson.dumps(label))
        rows.append(orjson.dumps({"source-ref": f"img{i}.png", "a": f"ann{i}.json", "truth-ref": f"mask{i}.png",
                                  "truth-ref-metadata": label["seg-ref-metadata"]}))
    (folder / "in.manifest").write_bytes(b"\n".join(rows) + b"\n")


def _seg_job(data: Path, out: Path, *flags: str) -> Path:
    assert main(["annotate", str(data / "in.manifest"), *flags, "--job-name", "sj", "--label-attribute", "masks-ref",
                 "--task-type", "semantic-segmentation", "--method", "file", "--url-key", "a",
                 "--allow-root", str(data), "--output", str(out)]) == 0
    return out / "sj"


def _captions(page: Path) -> list[str]:
    import re

    return re.findall(r"<figcaption>(.*?)</figcaption>", page.read_text())


def test_evaluate_and_report_read_a_jobs_relative_masks_where_the_job_did(tmp_path: Path, capsys,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Masks of the input (``mask0.png``) and of an ``--append`` manifest (``more/mask2.png``),
    read from another working directory: evaluate looked for them beside the output manifest
    (every line unreadable, exit 1), report's tiles for the appended line's in the input's folder."""
    data = tmp_path / "data"
    _labeled_folder(data, range(2))
    _labeled_folder(data / "more", range(2, 3))
    job = _seg_job(data, tmp_path / "out", "--append", str(data / "more" / "in.manifest"))
    monkeypatch.chdir("/")
    capsys.readouterr()
    for given in (job, job / "manifests" / "output" / "output.manifest"):
        assert main(["evaluate", str(given), "--predicted", "masks-ref", "--reference", "truth-ref",
                     "--allow-root", str(data), "--format", "json"]) == 0, capsys.readouterr()
        result = json.loads(capsys.readouterr().out)
        assert result["lines"]["evaluated"] == 3 and result["segmentation"]["mean_iou"] == 1.0, result
    page = tmp_path / "page.html"
    assert main(["report", str(job), "-o", str(page)]) == 0
    assert [c.rsplit("<br>", 1)[1] for c in _captions(page)] == ["car", "car", "car"], _captions(page)


def test_evaluate_reads_a_jobs_output_manifest_under_the_jobs_policy(tmp_path: Path, capsys) -> None:
    """``evaluate JOB/manifests/output/output.manifest`` read the job's relative masks where the
    job did, but without its ``--allow-root``: every line "refused by policy: local file ... needs
    --allow-root" (exit 1) where ``evaluate JOB`` read them. Both forms use the job's policy now."""
    data = tmp_path / "data"
    _labeled_folder(data, range(2))
    job = _seg_job(data, tmp_path / "out")
    said = []
    for given in (job, job / "manifests" / "output" / "output.manifest"):
        capsys.readouterr()
        assert main(["evaluate", str(given), "--predicted", "masks-ref", "--reference", "truth-ref",
                     "--format", "json"]) == 0, capsys.readouterr()
        said.append(json.loads(capsys.readouterr().out))
    assert said[0]["lines"]["evaluated"] == 2 and said[0]["segmentation"]["mean_iou"] == 1.0, said[0]
    assert said[1] == said[0]


def test_colour_map_errors_name_the_attributes_key(tmp_path: Path, capsys) -> None:
    """A mask with a colour its map lacks, or a label without a map: evaluate and the report's
    tile name ``masks-ref-metadata.internal-color-map``, as validate does, not a bare
    ``internal-color-map`` (a line may hold several mask labels)."""
    data = tmp_path / "data"
    other = {"0": {"class-name": "BACKGROUND", "hex-color": "#000000"}, "1": {"class-name": "car", "hex-color": "#654321"}}
    _labeled_folder(data, range(1), color_map=other)
    job = _seg_job(data, tmp_path / "out")
    capsys.readouterr()
    assert main(["evaluate", str(job), "--predicted", "masks-ref", "--reference", "truth-ref", "--format",
                 "json"]) == 1
    [example] = json.loads(capsys.readouterr().out)["lines"]["examples"]
    # both sides' maps lack the colour: each side's key is named (the reference's went unsaid)
    predicted, reference = example["reason"].split("; ")
    assert example["side"] == "both", example
    assert predicted.startswith("predicted: line 1, key 'masks-ref-metadata.internal-color-map': mask "), example
    assert predicted.endswith(" has colours missing from masks-ref-metadata.internal-color-map: #123456 [mask]"), example
    assert reference.startswith("reference: line 1, key 'truth-ref-metadata.internal-color-map': mask "), example
    assert reference.endswith(" has colours missing from truth-ref-metadata.internal-color-map: #123456 [mask]"), example
    page = tmp_path / "page.html"
    assert main(["report", str(job), "-o", str(page)]) == 0
    [caption] = _captions(page)
    assert "label not drawn: key &#x27;masks-ref-metadata.internal-color-map&#x27;: mask " in caption, caption
    output = job / "manifests" / "output" / "output.manifest"
    rec = orjson.loads(output.read_bytes())
    del rec["truth-ref-metadata"]["internal-color-map"]
    output.write_bytes(orjson.dumps(rec) + b"\n")
    capsys.readouterr()
    assert main(["evaluate", str(output), "--predicted", "masks-ref", "--reference", "truth-ref", "--format",
                 "json"]) == 1
    [example] = json.loads(capsys.readouterr().out)["lines"]["examples"]
    assert example["reason"] == ("semantic-segmentation label: 'truth-ref-metadata.internal-color-map' is missing "
                                 "or not an object"), example


def _boxes(class_id: int, left: int) -> dict:
    return {"image_size": [{"width": 64, "height": 48, "depth": 3}],
            "annotations": [{"class_id": class_id, "left": left, "top": 8, "width": 20, "height": 20}]}


def _detection_folder(folder: Path, ids: range) -> None:
    """Images and label files in ``folder`` and ``in.manifest`` naming them relatively, each line
    with a reviewer's boxes (``truth``) that the label file's (the job's) miss: every line an error."""
    folder.mkdir(parents=True, exist_ok=True)
    meta = {"class-map": {"0": "cat", "1": "dog"}, "type": "groundtruth/object-detection",
            "creation-date": "2026-01-01T00:00:00.000000", "job-name": "labeling-job/x"}
    rows = []
    for i in ids:
        Image.fromarray(np.full((48, 64, 3), 200, dtype=np.uint8)).save(folder / f"img{i}.png")
        label = {"source-ref": f"img{i}.png", "boxes": _boxes(1, 4),
                 "boxes-metadata": {**meta, "objects": [{"confidence": 0.9}], "human-annotated": "no"}}
        (folder / f"ann{i}.json").write_bytes(orjson.dumps(label))
        rows.append(orjson.dumps({"source-ref": f"img{i}.png", "a": f"ann{i}.json", "truth": _boxes(0, 36),
                                  "truth-metadata": {**meta, "objects": [{}], "human-annotated": "yes"}}))
    (folder / "in.manifest").write_bytes(b"\n".join(rows) + b"\n")


def test_the_reports_worst_images_of_appended_lines_are_read_beside_their_manifest(tmp_path: Path,
                                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The evaluation section's worst images: a line an ``--append`` manifest gave (``more/img2.png``)
    was looked for in the input's folder (``image not available: ... no such file``); it is read
    beside its own manifest, as evaluate and the report's tiles read it."""
    import re

    data = tmp_path / "data"
    _detection_folder(data, range(2))
    _detection_folder(data / "more", range(2, 3))
    assert main(["annotate", str(data / "in.manifest"), "--append", str(data / "more" / "in.manifest"),
                 "--job-name", "dj", "--label-attribute", "boxes", "--task-type", "object-detection",
                 "--method", "file", "--url-key", "a", "--allow-root", str(data), "--output", str(tmp_path / "out")]) == 0
    monkeypatch.chdir("/")
    page = tmp_path / "page.html"
    assert main(["report", str(tmp_path / "out" / "dj"), "-o", str(page)]) == 0
    html = page.read_text()
    assert "Worst images" in html
    worst = html[html.index("Worst images"):]
    assert "image not available" not in worst, re.findall(r"image not available[^<]*", worst)
    assert sorted(re.findall(r'<img src="data:image/jpeg;base64,[^"]+" alt="line (\d+): 2 error', worst)) == ["1", "2", "3"]
