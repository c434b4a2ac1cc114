"""Consumer code of the kind the project does not control, run on a real job's output (issue 12).

Two readers written the way published Ground Truth consumers are: a conversion-kit style
manifest-to-COCO function (``info[field_name]``, keys by name) and a GluonCV-style dataset class
that unpacks each box's fields by position, in the order Ground Truth writes them
(``class_id, top, left, height, width``). Both index ``line[attr]``: on the job's whole output they
crash at the failed line, as they do on Ground Truth's own; on the ``labeled`` view they read every
box, and the positional reader agrees with the COCO images the sample data came from.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.jobs_helpers import quick_start_job
from totask_manifest._cli import main

REPO = Path(__file__).resolve().parents[1]


def kit_style_to_coco(manifest: Path, field_name: str) -> dict:
    """As AWS samples convert Ground Truth output to COCO: every line's label indexed by name."""
    doc: dict = {"images": [], "annotations": [], "categories": {}}
    for image_id, line in enumerate(manifest.read_text().splitlines(), 1):
        info = json.loads(line)
        labels = info[field_name]  # KeyError on a line without a label
        size = labels["image_size"][0]
        doc["images"].append({"id": image_id, "file_name": info["source-ref"], "width": size["width"],
                              "height": size["height"]})
        class_map = info[field_name + "-metadata"]["class-map"]
        for ann in labels["annotations"]:
            doc["categories"][ann["class_id"] + 1] = class_map[str(ann["class_id"])]
            doc["annotations"].append({"id": len(doc["annotations"]) + 1, "image_id": image_id,
                                       "category_id": ann["class_id"] + 1,
                                       "bbox": [ann["left"], ann["top"], ann["width"], ann["height"]]})
    return doc


class GroundTruthDetection:
    """A GluonCV-style detection dataset over a Ground Truth manifest: ``dataset[i]`` is
    ``(image path, [[xmin, ymin, xmax, ymax, class_id], ...])``; box fields unpacked by position."""

    def __init__(self, manifest: Path, attr: str) -> None:
        self._items = []
        for line in manifest.read_text().splitlines():
            record = json.loads(line)
            boxes = []
            for ann in record[attr]["annotations"]:
                class_id, top, left, height, width = ann.values()
                boxes.append([left, top, left + width, top + height, class_id])
            self._items.append((record["source-ref"], boxes))

    def __len__(self) -> int:
        return len(self._items)

    def __getitem__(self, index: int) -> tuple[str, list[list[float]]]:
        return self._items[index]


@pytest.fixture
def job_output(tmp_path, monkeypatch, capsys) -> Path:
    """The sample data's COCO labels through ``annotate --method file``: 49 labeled lines, 1 failed."""
    monkeypatch.chdir(REPO)
    output = quick_start_job(tmp_path / "out", "consumers", "convert")
    capsys.readouterr()
    return output


def test_consumers_crash_on_the_whole_output_and_read_every_box_of_the_labeled_view(tmp_path, job_output):
    with pytest.raises(KeyError, match="boxes"):
        kit_style_to_coco(job_output, "boxes")
    with pytest.raises(KeyError, match="boxes"):
        GroundTruthDetection(job_output, "boxes")

    view = tmp_path / "labeled.manifest"
    assert main(["labeled", str(job_output), "--label-attribute", "boxes", "-o", str(view)]) == 0
    coco = kit_style_to_coco(view, "boxes")
    dataset = GroundTruthDetection(view, "boxes")
    assert len(dataset) == len(coco["images"]) == 49
    assert coco["categories"] == {1: "circle", 2: "square", 3: "triangle"}

    # the positional reader gets the same boxes as the keyed one, and both the sample's own COCO boxes
    manifest = [json.loads(raw) for raw in (REPO / "sample_data" / "manifest.jsonl").read_text().splitlines()]
    annotation_of = {m["source-ref"]: m["annotation-ref"] for m in manifest}
    compared = 0
    for index, image in enumerate(coco["images"]):
        source, boxes = dataset[index]
        assert source == image["file_name"]
        keyed = [a for a in coco["annotations"] if a["image_id"] == image["id"]]
        assert [[x, y, x + w, y + h, a["category_id"] - 1] for a in keyed for x, y, w, h in [a["bbox"]]] == boxes
        text = (REPO / "sample_data" / annotation_of[source]).read_text()
        if text.startswith("{") and "images" in (original := json.loads(text)):  # the label files in COCO
            compared += 1
            assert [[a["category_id"], a["bbox"]] for a in original["annotations"]] == [
                [a["category_id"], a["bbox"]] for a in keyed]
    assert compared == 4
