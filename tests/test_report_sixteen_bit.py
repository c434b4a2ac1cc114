"""``report`` draws a 16-bit grey image as the model sees it: its 0..65535 samples scaled to
0..255, not clipped at 255 by Pillow's ``convert("RGB")`` (the thumbnail and a mask overlay were
all but white). Float pixels are refused with the model input's reason. Real PNG and TIFF files
made here, the real ``report`` command."""

from __future__ import annotations

import base64
import io
import re
from pathlib import Path

import numpy as np
import orjson
import pytest
from PIL import Image

from tests.support.job_json import write_job_json
from totask_manifest._analytics.masks import mask_from_bytes
from totask_manifest._cli import main as cli_main
from totask_manifest._errors import ManifestError

#: 100 columns from 0 to 65535: column c is about c * 2.58 once scaled to 8 bits
RAMP = (np.tile(np.arange(100, dtype=np.uint32), (80, 1)) * 65535 // 99).astype(np.uint16)
META = {"human-annotated": "no", "creation-date": "2026-01-01T00:00:00.000000"}
CMAP = {"0": {"class-name": "BACKGROUND", "hex-color": "#ffffff"}, "1": {"class-name": "lesion", "hex-color": "#ff0000"}}


def _job(root: Path, attribute: str, lines: list[dict]) -> Path:
    job = root / "job"
    (job / "manifests" / "output").mkdir(parents=True)
    (job / "manifests" / "output" / "output.manifest").write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in lines))
    write_job_json(job, job / "manifests" / "output" / "output.manifest", attribute,
                   "semantic-segmentation" if attribute.endswith("-ref") else "object-detection",
                   metrics={"total": len(lines), "success": len(lines), "failed": 0})
    return job


def _report(job: Path, root: Path, capsys) -> str:
    page = root / "r.html"
    assert cli_main(["report", str(job), "-o", str(page), "--allow-root", str(root)]) == 0
    assert "Traceback" not in capsys.readouterr().err
    return page.read_text()


def _thumbs(html: str) -> list[np.ndarray]:
    return [np.asarray(Image.open(io.BytesIO(base64.b64decode(b)))).astype(int)
            for b in re.findall(r'src="data:image/jpeg;base64,([^"]+)"', html)]


def test_a_16_bit_png_and_its_mask_overlay_show_its_greys_not_white(tmp_path, capsys):
    Image.fromarray(RAMP).save(tmp_path / "grey16.png")
    assert Image.open(tmp_path / "grey16.png").mode == "I;16"  # a real 16-bit PNG
    mask = np.full((80, 100, 3), 255, dtype=np.uint8)
    mask[10:50, 10:60] = [255, 0, 0]
    Image.fromarray(mask).save(tmp_path / "mask.png")
    seg = {"source-ref": str(tmp_path / "grey16.png"), "seg-ref": str(tmp_path / "mask.png"),
           "seg-ref-metadata": {**META, "internal-color-map": CMAP, "type": "groundtruth/semantic-segmentation",
                                "job-name": "labeling-job/j"}}
    html = _report(_job(tmp_path, "seg-ref", [seg]), tmp_path, capsys)
    (thumb,) = _thumbs(html)
    assert "lesion" in html and thumb.shape == (80, 100, 3)
    # outside the mask: the ramp, black to white (clipped, every column but the first was 255)
    row = thumb[70, :, 0]
    assert row[0] < 12 and row[99] > 243 and abs(row[50] - 129) < 12
    assert (np.diff(row[::10]) > 0).all()
    # inside the mask: half red over the grey under it, not over white
    assert abs(thumb[20, 20] - [(52 + 255) // 2, 26, 26]).sum() < 40


def test_a_16_bit_box_tile_shows_its_greys(tmp_path, capsys):
    Image.fromarray(RAMP).save(tmp_path / "grey16.png")
    det = {"source-ref": str(tmp_path / "grey16.png"),
           "det": {"image_size": [{"width": 100, "height": 80, "depth": 1}],
                   "annotations": [{"class_id": 0, "left": 60, "top": 50, "width": 30, "height": 20}]},
           "det-metadata": {**META, "objects": [{"confidence": 0.9}], "class-map": {"0": "kite"},
                            "type": "groundtruth/object-detection", "job-name": "labeling-job/j"}}
    (thumb,) = _thumbs(_report(_job(tmp_path, "det", [det]), tmp_path, capsys))
    assert thumb[10, 2, 0] < 15 and abs(thumb[10, 50, 0] - 129) < 12  # away from the box and its tag


def test_float_pixels_are_refused_as_the_model_input_refuses_them(tmp_path, capsys):
    """A float TIFF has no known range: the tile says so, as a labeling job's failure reason does,
    rather than showing what Pillow's clip makes of it."""
    Image.fromarray(RAMP.astype(np.float32) / 65535).save(tmp_path / "float.tif")
    det = {"source-ref": str(tmp_path / "float.tif"),
           "det": {"image_size": [{"width": 100, "height": 80, "depth": 1}], "annotations": []},
           "det-metadata": {**META, "class-map": {}, "type": "groundtruth/object-detection",
                            "job-name": "labeling-job/j"}}
    html = _report(_job(tmp_path, "det", [det]), tmp_path, capsys)
    assert not _thumbs(html)
    assert "image not available: floating-point pixels (Pillow mode F, TIFF) have no known range" in html


def test_a_16_bit_grey_mask_is_read_by_its_scaled_colours():
    """A mask saved as 16-bit grey (value v * 257 for grey v): clipped, every class but black read
    as white (#ffffff, the background); scaled, each grey is its own class."""
    grey = np.zeros((4, 6), dtype=np.uint16)
    grey[1:3, 2:5] = 0x80 * 257
    buf = io.BytesIO()
    Image.fromarray(grey).save(buf, format="PNG")
    cmap = {"0": {"class-name": "BACKGROUND", "hex-color": "#000000"}, "1": {"class-name": "x", "hex-color": "#808080"}}
    assert np.array_equal(mask_from_bytes(buf.getvalue(), cmap), (grey > 0).astype(np.uint8))
    floats = io.BytesIO()
    Image.fromarray(grey.astype(np.float32)).save(floats, format="TIFF")
    with pytest.raises(ManifestError, match=r"cannot read mask mask: floating-point pixels"):
        mask_from_bytes(floats.getvalue(), cmap)


def test_a_16_bit_grey_mask_of_small_values_is_read_as_stored_and_any_other_refused():
    """A mask of class greys written in 16 bits as stored (1, 2): scaled they would all be black,
    read as the background without a word; a value that is no 8-bit grey either way is refused."""
    grey = np.zeros((4, 6), dtype=np.uint16)
    grey[1:3, 2:5] = 1
    grey[3, 0] = 2
    buf = io.BytesIO()
    Image.fromarray(grey).save(buf, format="PNG")
    cmap = {"0": {"hex-color": "#000000"}, "1": {"hex-color": "#010101"}, "2": {"hex-color": "#020202"}}
    assert np.array_equal(mask_from_bytes(buf.getvalue(), cmap), grey.astype(np.uint8))
    grey[0, 0] = 1000
    odd = io.BytesIO()
    Image.fromarray(grey).save(odd, format="PNG")
    with pytest.raises(ManifestError, match=r"cannot read mask mask: 16-bit grey value 1000 is no 8-bit grey"):
        mask_from_bytes(odd.getvalue(), cmap)
