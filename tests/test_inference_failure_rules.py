"""The ``failure-rule`` an inference job writes for an image it does not decode is the rule the
decoder names (``image-too-large``, ``image-unreadable``), as docs/inference.md documents, not
one guessed again from the reason's words. A real job in a subprocess, real images, a real
TorchScript detector."""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List  # noqa: UP035 (TorchScript reads these annotations)

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


class NegativeLabel(torch.nn.Module):
    """A detector whose label is -1 (a 'background' or 'ignore' id some training code uses)."""

    def forward(self, images: List[torch.Tensor]) -> List[Dict[str, torch.Tensor]]:  # noqa: UP006
        out: List[Dict[str, torch.Tensor]] = []  # noqa: UP006
        for _ in images:
            out.append({"boxes": torch.tensor([[1.0, 1.0, 10.0, 10.0]]), "scores": torch.tensor([0.9]),
                        "labels": torch.tensor([-1], dtype=torch.int64)})
        return out


@pytest.mark.slow
def test_a_negative_class_id_is_named_as_negative_not_as_missing_class_names(tmp_path: Path) -> None:
    """The user gave --class-names; telling them to pass --class-names sends them the wrong way."""
    (tmp_path / "img").mkdir()
    (tmp_path / "img/a.png").write_bytes(png(boxes_image(40, 30, [((5, 5, 20, 20), (255, 0, 0))])))
    manifest = write_manifest(tmp_path / "in.manifest", ["img/a.png"])
    names = tmp_path / "names.txt"
    names.write_text("a\nb\n")
    model = save_scripted(NegativeLabel(), tmp_path / "det.pt")
    r = run_cli("annotate", str(manifest), "--job-name", "neg", "--task-type", "object-detection",
                "--method", "inference", "--model", str(model), "--class-names", str(names),
                "--device", "cpu", "--allow-root", str(tmp_path), "--output", str(tmp_path / "out"))
    assert r.returncode == 1, r.stdout + r.stderr
    assert "class id -1 is negative" in r.stderr, r.stderr
    assert "pass --class-names" not in r.stderr and "Traceback" not in r.stderr
    assert (tmp_path / "out/neg/manifests/output/output.manifest").read_bytes() == manifest.read_bytes()


def test_negative_class_id_message_in_process() -> None:
    from totask_manifest._errors import JobError
    from totask_manifest._models import postprocess as pp

    det = pp.filter_detections({"boxes": [[0, 0, 5, 5]], "scores": [0.9], "labels": [-2]}, width=9, height=9,
                               confidence_threshold=0.5, nms_threshold=0.5)
    with pytest.raises(JobError, match=r"class id -2 is negative; class ids count from 0 \(0\.\.1 here"):
        pp.detection_label(det, width=9, height=9, depth=3, class_names=["a", "b"])


@pytest.mark.slow
def test_a_bad_flag_beside_a_good_params_file_is_blamed_on_the_flag(tmp_path: Path) -> None:
    """``--params p.json --device tpu``: the file is fine; the error must name --device, not the file."""
    (tmp_path / "img").mkdir()
    (tmp_path / "img/a.png").write_bytes(png(boxes_image(40, 30, [((5, 5, 20, 20), (255, 0, 0))])))
    manifest = write_manifest(tmp_path / "in.manifest", ["img/a.png"])
    params = tmp_path / "p.json"
    params.write_text('{"confidence_threshold": 0.3, "model_config": {"device": "cpu"}}')
    model = save_scripted(ColorBoxes(), tmp_path / "det.pt")
    r = run_cli("annotate", str(manifest), "--job-name", "flags", "--task-type", "object-detection",
                "--method", "inference", "--model", str(model), "--params", str(params), "--device", "tpu",
                "--allow-root", str(tmp_path), "--output", str(tmp_path / "out"))
    assert r.returncode == 2, r.stdout + r.stderr
    (line,) = r.stderr.strip().splitlines()
    assert line.endswith('error: --device: model_config.device must be one of auto, cpu, cuda, mps (or cuda:N), got "tpu"'), line
    assert not (tmp_path / "out/flags").exists()


@pytest.mark.parametrize(("option", "value", "flag"), [
    ("confidence_threshold", 2, "--confidence-threshold"),
    ("nms_threshold", -1, "--nms-threshold"),
    ("batch_size", 0, "--batch-size"),
    ("device", "tpu", "--device"),
    ("use_fp16", "yes", "--fp16"),
])
def test_each_flag_is_named_in_its_own_error(option: str, value: object, flag: str) -> None:
    from totask_manifest._annotators.inference import effective_params
    from totask_manifest._errors import UsageError

    with pytest.raises(UsageError) as err:
        effective_params({"params": {"max_objects": 5}, "params_file": "p.yaml", option: value}, "object-detection")
    assert str(err.value).startswith(f"{flag}: "), str(err.value)
    with pytest.raises(UsageError, match=r"^--params p\.yaml: max_objects must be at least 1"):
        effective_params({"params": {"max_objects": 0}, "params_file": "p.yaml"}, "object-detection")


class FarBoxes(torch.nn.Module):
    """A detector whose coordinates are in another frame (ten times the image here, as a model
    answering in its own input size would be): one sure box lies wholly outside the image."""

    def forward(self, images: List[torch.Tensor]) -> List[Dict[str, torch.Tensor]]:  # noqa: UP006
        out: List[Dict[str, torch.Tensor]] = []  # noqa: UP006
        for _ in images:
            out.append({"boxes": torch.tensor([[2.0, 2.0, 8.0, 8.0], [300.0, 200.0, 400.0, 290.0]]),
                        "scores": torch.tensor([0.6, 0.95]), "labels": torch.tensor([0, 0], dtype=torch.int64)})
        return out


def _failed_on_one_image(tmp_path: Path, detector: torch.nn.Module, job: str, *extra: str) -> dict:
    """The metadata of the one line of a real job (``detector`` scripted, one 40x30 image) that
    its box failed: exit 1, since nothing was labeled, and no label written."""
    (tmp_path / "img").mkdir()
    (tmp_path / "img/a.png").write_bytes(png(boxes_image(40, 30, [((5, 5, 20, 20), (255, 0, 0))])))
    manifest = write_manifest(tmp_path / "in.manifest", ["img/a.png"])
    names = tmp_path / "names.txt"
    names.write_text("a\n")
    model = save_scripted(detector, tmp_path / "det.pt")
    r = run_cli("annotate", str(manifest), "--job-name", job, "--task-type", "object-detection",
                "--method", "inference", "--model", str(model), "--class-names", str(names), *extra,
                "--device", "cpu", "--allow-root", str(tmp_path), "--output", str(tmp_path / "out"))
    assert r.returncode == 1, r.stdout + r.stderr  # the only line failed: nothing labeled
    (line,) = [orjson.loads(x) for x in (tmp_path / f"out/{job}/manifests/output/output.manifest").read_bytes().splitlines()]
    assert job not in line
    assert line[f"{job}-metadata"]["failure-rule"] == "model-error"
    return line[f"{job}-metadata"]


@pytest.mark.slow
def test_a_sure_box_wholly_outside_the_image_fails_its_line_instead_of_vanishing(tmp_path: Path) -> None:
    meta = _failed_on_one_image(tmp_path, FarBoxes(), "far")
    assert "boxes[1] is [300, 200, 400, 290] (x1 y1 x2 y2), wholly outside the 40x30 image" in meta["failure-reason"]


class FlatBoxes(torch.nn.Module):
    """A detector that collapses its boxes (x2 = x1, y2 = y1): one sure box of no area per image
    (or of ``box``, written with no area)."""

    def __init__(self, box: tuple[float, float, float, float] = (3.0, 3.0, 3.0, 3.0)) -> None:
        super().__init__()
        self.register_buffer("box", torch.tensor([box]))

    def forward(self, images: List[torch.Tensor]) -> List[Dict[str, torch.Tensor]]:  # noqa: UP006
        out: List[Dict[str, torch.Tensor]] = []  # noqa: UP006
        for _ in images:
            out.append({"boxes": self.box.clone(), "scores": torch.tensor([0.9]),
                        "labels": torch.tensor([0], dtype=torch.int64)})
        return out


@pytest.mark.slow
def test_a_sure_box_of_zero_area_fails_its_line_instead_of_vanishing(tmp_path: Path) -> None:
    """It was dropped even with min_object_size 0: the line was written ``annotations: []``,
    confidence 1, the job COMPLETED and --review-below routed nothing."""
    meta = _failed_on_one_image(tmp_path, FlatBoxes(), "flat", "--review-below", "0.95")
    assert "boxes[0] is [3, 3, 3, 3] (x1 y1 x2 y2), of zero width and height" in meta["failure-reason"]


@pytest.mark.slow
def test_a_sure_box_written_with_zero_width_fails_its_line(tmp_path: Path) -> None:
    """0.004 px wide, it passed the zero-area rule (made on the box before rounding) and was
    written ``"width": 0`` at 2 decimals: the job COMPLETED and validate and COCO took a box of
    no area. The rule holds on what is written."""
    meta = _failed_on_one_image(tmp_path, FlatBoxes((3.0, 3.0, 3.004, 10.0)), "thin")
    assert ("boxes[0] is [3, 3, 3.004, 10] (x1 y1 x2 y2), of zero width once clipped and written to 2 decimals "
            "(0.004 px wide)") in meta["failure-reason"]


def test_boxes_partly_outside_are_clipped_and_wholly_outside_are_refused_in_process() -> None:
    from totask_manifest._models import postprocess as pp

    def detect(boxes: list[list[float]], threshold: float = 0.5) -> pp.Detections:
        return pp.filter_detections({"boxes": boxes, "scores": [0.9] * len(boxes), "labels": [0] * len(boxes)},
                                    width=40, height=30, confidence_threshold=threshold, nms_threshold=None)

    assert detect([[-5, -5, 10, 10], [35, 25, 60, 60]]).boxes == [[0, 0, 10, 10], [35, 25, 40, 30]]
    for far in ([40, 0, 50, 10], [0, 30, 10, 40], [-20, 0, 0, 10], [0, -20, 10, 0]):
        with pytest.raises(pp.PredictionRefused, match=r"boxes\[1\] is .* wholly outside the 40x30 image"):
            detect([[1, 1, 5, 5], far])
    assert detect([[40, 0, 50, 10]], threshold=0.95).boxes == []  # under the threshold: never written, not looked at


class TensorIn(torch.nn.Module):
    """A classifier's signature: one batch tensor in."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3))


@pytest.mark.slow
def test_a_classifier_given_as_a_detector_is_refused_before_the_job_exists(tmp_path: Path) -> None:
    """It used to run: each image failed with TorchScript's argument error (pixel values
    included) until 32 had, then the job stopped FAILED: the task type or the model is wrong,
    which the model's own signature says before any image is read."""
    (tmp_path / "img").mkdir()
    (tmp_path / "img/a.png").write_bytes(png(boxes_image(40, 30, [((5, 5, 20, 20), (255, 0, 0))])))
    manifest = write_manifest(tmp_path / "in.manifest", ["img/a.png"])
    model = save_scripted(TensorIn(), tmp_path / "cls.pt")
    r = run_cli("annotate", str(manifest), "--job-name", "sig", "--task-type", "object-detection",
                "--method", "inference", "--model", str(model), "--class-names", str(manifest),
                "--device", "cpu", "--allow-root", str(tmp_path), "--output", str(tmp_path / "out"))
    assert r.returncode == 2, r.stdout + r.stderr
    (line,) = r.stderr.strip().splitlines()
    assert f"--model {model}: forward takes x: Tensor, but a detector is given a List[Tensor]" in line, line
    assert not (tmp_path / "out/sig").exists()


def test_the_forward_signature_is_checked_against_the_head_in_process(tmp_path: Path) -> None:
    from totask_manifest._errors import UsageError
    from totask_manifest._models.heads import head_for
    from totask_manifest._models.loading import load_torchscript
    from totask_manifest._models.sources import check_signature

    detector = load_torchscript(str(save_scripted(ColorBoxes(), tmp_path / "det.pt")))
    classifier = load_torchscript(str(save_scripted(TensorIn(), tmp_path / "cls.pt")))
    check_signature(detector, head_for("object-detection"))
    check_signature(classifier, head_for("image-classification"))
    with pytest.raises(UsageError, match=r"forward takes images: List\[Tensor\], but a classifier is given a Tensor"):
        check_signature(detector, head_for("image-classification"))
    with pytest.raises(UsageError, match=r"forward takes x: Tensor, but a detector is given a List\[Tensor\]"):
        check_signature(classifier, head_for("object-detection"))
