"""A box a model rounded a fraction of a pixel past its image (``left + width`` 10.4 on a 10 px
image): the YOLO export refused the whole dataset unless ``--allow-drop`` (YOLO coordinates are
0..1; Ultralytics skips a label file with a value above 1 as corrupt). Now a box past its image
by under 1 px on every side is clipped to it without ``--allow-drop`` and counted
(``boxes clipped by under 1 px``); 1 px or more is refused as before."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from totask_manifest._analytics.convert import convert
from totask_manifest._analytics.yolo_dataset import ROUNDED
from totask_manifest._errors import ManifestError

ROOT = Path(__file__).resolve().parents[1]


def _manifest(path: Path, box: dict) -> Path:
    line = {"source-ref": "s3://b/a.jpg",
            "boxes": {"image_size": [{"width": 10, "height": 10, "depth": 3}], "annotations": [{"class_id": 0, **box}]},
            "boxes-metadata": {"class-map": {"0": "cat"}, "objects": [{"confidence": 0.9}],
                               "type": "groundtruth/object-detection", "human-annotated": "no",
                               "creation-date": "2024-01-01T00:00:00.000000", "job-name": "labeling-job/j"}}
    path.write_bytes(orjson.dumps(line) + b"\n")
    return path


@pytest.mark.parametrize("box", [{"left": 6, "top": 1, "width": 4.4, "height": 2},
                                 {"left": -0.5, "top": 1, "width": 3, "height": 2},
                                 {"left": 1, "top": 7.2, "width": 2, "height": 3.7}])
def test_a_box_a_fraction_of_a_pixel_past_its_image_is_clipped_and_counted(tmp_path: Path, box: dict) -> None:
    src = _manifest(tmp_path / "in.manifest", box)
    result = convert(str(src), str(tmp_path / "y"), to="yolo")
    assert result.counts[ROUNDED] == 1 and "dropped" not in result.counts, result.counts
    (label,) = (tmp_path / "y" / "labels").rglob("*.txt")
    cls, *coords = label.read_text().split()
    cx, cy, w, h = map(float, coords)
    assert cls == "0" and all(0 <= v <= 1 for v in (cx, cy, w, h))  # as Ultralytics checks
    assert cx - w / 2 >= 0 and cx + w / 2 <= 1 + 1e-9 and cy - h / 2 >= 0 and cy + h / 2 <= 1 + 1e-9


def test_a_box_a_pixel_or_more_past_its_image_is_still_refused(tmp_path: Path) -> None:
    src = _manifest(tmp_path / "in.manifest", {"left": 6, "top": 1, "width": 5, "height": 2})
    with pytest.raises(ManifestError) as err:
        convert(str(src), str(tmp_path / "y"), to="yolo")
    assert err.value.rule == "yolo-outside-image"
    assert convert(str(src), str(tmp_path / "y"), to="yolo", allow_drop=True).counts["dropped"] == 1


def test_a_box_inside_counts_nothing(tmp_path: Path) -> None:
    src = _manifest(tmp_path / "in.manifest", {"left": 0, "top": 0, "width": 10, "height": 10})
    assert ROUNDED not in convert(str(src), str(tmp_path / "y"), to="yolo").counts


def test_a_box_a_fraction_of_a_micropixel_high_reads_back_above_0(tmp_path: Path) -> None:
    """A height of 1e-7 px (160 x 120 image) went out as 8.3e-10 and came back ``"height": 0``:
    the import rounds pixels to 6 decimals, and rounding made a box of no area, which validate
    accepts, with nothing said. A size rounding would make 0 keeps its full precision now."""
    line = orjson.loads(_manifest(tmp_path / "a.manifest", {"left": 1, "top": 2, "width": 3, "height": 2}).read_bytes())
    line["boxes"]["image_size"] = [{"width": 160, "height": 120, "depth": 3}]
    line["boxes"]["annotations"] = [{"class_id": 0, "left": 10, "top": 10, "width": 1e-7, "height": 1e-7}]
    (src := tmp_path / "in.manifest").write_bytes(orjson.dumps(line) + b"\n")
    back = tmp_path / "back.manifest"
    for args in ((str(src), str(tmp_path / "y"), "--to", "yolo"),
                 (str(tmp_path / "y"), str(back), "--to", "manifest", "--from", "yolo")):
        done = subprocess.run([sys.executable, "-m", "totask_manifest", "convert", *args], capture_output=True,
                              text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120, check=False)
        assert done.returncode == 0, done.stderr
    (box,) = orjson.loads(back.read_bytes())["label"]["annotations"]
    assert box["width"] == pytest.approx(1e-7) and box["height"] == pytest.approx(1e-7), box
    assert (box["left"], box["top"]) == (10, 10)  # a position still loses only float noise
