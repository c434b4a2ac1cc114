"""The ``failure-rule`` an inference job writes for an image it does not decode is the rule the
decoder names (``image-too-large``, ``image-unreadable``), as docs/inference.md documents, not
one guessed again from the reason's words. A real job in a subprocess, real images, a real
TorchScript detector."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

torch = pytest.importorskip("torch")

from tests.jobs_helpers import run_cli  # noqa: E402
from tests.test_inference_support import ColorBoxes, boxes_image, png, save_scripted, write_manifest  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")


@pytest.mark.slow
def test_an_image_over_the_pixel_budget_fails_under_image_too_large(tmp_path: Path) -> None:
    (tmp_path / "img").mkdir()
    (tmp_path / "img/big.png").write_bytes(png(boxes_image(200, 200, [((5, 5, 20, 20), (255, 0, 0))])))
    (tmp_path / "img/small.png").write_bytes(png(boxes_image(40, 30, [((5, 5, 20, 20), (255, 0, 0))])))
    (tmp_path / "img/text.png").write_bytes(b"not an image")
    manifest = write_manifest(tmp_path / "in.manifest", ["img/big.png", "img/small.png", "img/text.png"])
    model = save_scripted(ColorBoxes(), tmp_path / "det.pt")
    r = run_cli("annotate", str(manifest), "--job-name", "budget", "--task-type", "object-detection",
                "--method", "inference", "--model", str(model), "--max-image-pixels", "10000",
                "--device", "cpu", "--allow-root", str(tmp_path), "--output", str(tmp_path / "out"))
    assert r.returncode == 0, r.stdout + r.stderr
    lines = [orjson.loads(x) for x in (tmp_path / "out/budget/manifests/output/output.manifest").read_bytes().splitlines()]
    assert "over the pixel budget of 10,000" in lines[0]["budget-metadata"]["failure-reason"]
    assert lines[0]["budget-metadata"]["failure-rule"] == "image-too-large"
    assert lines[1]["budget"]["annotations"]
    assert lines[2]["budget-metadata"]["failure-rule"] == "image-unreadable"
    failures = [orjson.loads(x) for x in (tmp_path / "out/budget/failures.jsonl").read_bytes().splitlines()]
    assert [(f["line"], f["rule"]) for f in failures] == [(1, "image-too-large"), (3, "image-unreadable")]
