"""A new user's mistakes with ``--method inference``, each run as the user would: real torch
models built and saved here, the CLI in a real subprocess, what it prints and writes checked
(slow lane); each fix also has a cheap in-process check at the end (fast lane)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Dict, List  # noqa: UP035 (TorchScript reads these annotations)

import orjson
import pytest

torch = pytest.importorskip("torch")

from tests.jobs_helpers import REPO, run_cli  # noqa: E402
from tests.support.gt import GT_MANIFESTS, requires_gt  # noqa: E402
from tests.test_inference_support import boxes_image, png, save_scripted, write_manifest  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")


class SmallCnn(torch.nn.Module):
    """A classifier whose pooling needs at least 2x2 pixels: too small an --input-size breaks it."""

    def __init__(self) -> None:
        super().__init__()
        self.body = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 1), torch.nn.MaxPool2d(2))
        self.head = torch.nn.Linear(4, 2)
        self.class_names = ["a", "b"]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x).mean(dim=(2, 3)))


def images(base: Path, n: int) -> Path:
    (base / "img").mkdir()
    refs = []
    for i in range(n):
        (base / "img" / f"{i}.png").write_bytes(png(boxes_image(40, 30, [((5, 5, 20, 20), (255, 0, 0))])))
        refs.append(f"img/{i}.png")
    return write_manifest(base / "in.manifest", refs)


@pytest.mark.slow
def test_a_torchscript_error_is_named_by_its_last_line_not_the_traceback_header(tmp_path: Path) -> None:
    manifest = images(tmp_path, 3)
    model = save_scripted(SmallCnn(), tmp_path / "cnn.pt")
    r = run_cli("annotate", str(manifest), "--job-name", "tiny", "--task-type", "image-classification",
                "--method", "inference", "--model", str(model), "--input-size", "1", "--batch-size", "1",
                "--allow-root", str(tmp_path), "--output", str(tmp_path / "out"))
    assert r.returncode == 1, r.stderr
    failures = [orjson.loads(x) for x in (tmp_path / "out/tiny/failures.jsonl").read_bytes().splitlines()]
    assert len(failures) == 3
    for f in failures:
        assert f["rule"] == "model-error"
        assert "Output size is too small" in f["reason"], f["reason"]
        assert "Traceback" not in f["reason"] and "TorchScript interpreter" not in f["reason"]
    assert "Traceback" not in r.stderr


class Raises(torch.nn.Module):
    """A classifier whose own code raises, as a model checking its input does (TorchScript then
    writes ``builtins.RuntimeError: ...`` as the traceback's last line)."""

    def __init__(self, message: str) -> None:
        super().__init__()
        self.message = message
        self.class_names = ["a", "b"]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.message == "":
            raise RuntimeError()
        raise RuntimeError(self.message)


@pytest.mark.slow
@pytest.mark.parametrize(("message", "reason"), [
    ("weights for 3 channels, got 4; see https://models.example/doc?token=s3cr3t",
     "model: RuntimeError: weights for 3 channels, got 4; see https://models.example/doc?…"),
    ("", "model: RuntimeError (the model gave no message)"),
    # a message of two lines: TorchScript writes it after 'builtins.RuntimeError: ', and only its
    # last line was kept, named by the wrapper's type ('model: Error: expected 3 channels')
    ("input of the wrong kind:\nexpected 3 channels", "model: RuntimeError: input of the wrong kind: expected 3 channels"),
    # a model calling a service of its own, quoting the request it sent: the log line was scrubbed
    # (the log filter), while failures.jsonl and the output manifest kept the token
    ("upstream answered 401 to {'Authorization': 'Bearer s3cr3t'}",
     "model: RuntimeError: upstream answered 401 to {'Authorization': …}"),
])
def test_an_error_the_model_raises_is_named_by_its_own_type_and_message(tmp_path: Path, message: str,
                                                                        reason: str) -> None:
    """Before: 'model: Error: builtins.RuntimeError: ...' (torch.jit.Error's name, then the
    qualified type as if part of the message), and for an error without a message only
    'model: Error: builtins.RuntimeError:', which a user cannot act on."""
    manifest = images(tmp_path, 40)  # the job stops after 32 (model-error is a configuration rule), at 80 %
    model = save_scripted(Raises(message), tmp_path / "raises.pt")
    r = run_cli("annotate", str(manifest), "--job-name", "raises", "--task-type", "image-classification",
                "--method", "inference", "--model", str(model), "--batch-size", "1",
                "--allow-root", str(tmp_path), "--output", str(tmp_path / "out"))
    assert r.returncode == 1, r.stderr
    failures = [orjson.loads(x) for x in (tmp_path / "out/raises/failures.jsonl").read_bytes().splitlines()]
    assert [f["reason"] for f in failures] == [reason] * 32
    assert "s3cr3t" not in r.stderr + (tmp_path / "out/raises/failures.jsonl").read_text()
    assert b"s3cr3t" not in (tmp_path / "out/raises/manifests/output/output.manifest").read_bytes()
    assert f"failed: {reason}" in r.stderr and "builtins" not in r.stderr, r.stderr
    # the job's failure is said after its last progress line, never before one (it read as if it went on)
    lines = r.stderr.splitlines()
    stop = next(i for i, line in enumerate(lines) if line.startswith("job raises failed: each of the "))
    assert any("Progress:" in line for line in lines[:stop]), r.stderr
    assert not any("Progress:" in line for line in lines[stop:]), r.stderr


class NanBoxes(torch.nn.Module):
    """A detector gone bad (as fp16 overflow does): every box or score is NaN or infinite."""

    def __init__(self, bad: str) -> None:
        super().__init__()
        self.bad = bad
        self.class_names = ["a"]

    def forward(self, images: List[torch.Tensor]) -> List[Dict[str, torch.Tensor]]:  # noqa: UP006
        out: List[Dict[str, torch.Tensor]] = []  # noqa: UP006
        for _ in images:
            boxes = torch.tensor([[1.0, 1.0, 10.0, 10.0], [2.0, 2.0, 12.0, 12.0]])
            scores = torch.ones(2)
            if self.bad == "nan-box":
                boxes[:, 2] = float("nan")
            elif self.bad == "inf-box":
                boxes[:, 3] = float("inf")
            else:
                scores = scores * float("nan")
            out.append({"boxes": boxes, "scores": scores, "labels": torch.zeros(2, dtype=torch.int64)})
        return out


@pytest.mark.slow
@pytest.mark.parametrize("bad", ["nan-box", "inf-box", "nan-score"])
def test_a_detector_whose_every_box_is_not_finite_does_not_label_images_empty(tmp_path: Path, bad: str) -> None:
    manifest = images(tmp_path, 3)
    model = save_scripted(NanBoxes(bad), tmp_path / "nan.pt")
    r = run_cli("annotate", str(manifest), "--job-name", "nan", "--task-type", "object-detection",
                "--method", "inference", "--model", str(model), "--allow-root", str(tmp_path),
                "--output", str(tmp_path / "out"))
    assert r.returncode == 1, r.stdout + r.stderr
    assert "COMPLETED" not in r.stdout and "success=0" in r.stdout
    assert "NaN or infinite" in r.stderr and "Traceback" not in r.stderr
    out = (tmp_path / "out/nan/manifests/output/output.manifest").read_bytes()
    assert out == manifest.read_bytes()  # nothing written as an empty image


WIDE_SEGMENTER = """
import torch
class Wide(torch.nn.Module):
    def forward(self, x):
        return torch.zeros(x.shape[0], 256, 4, 4)
def make():
    return Wide()
"""


@pytest.mark.slow
def test_a_segmentation_line_that_fails_after_its_mask_is_written_leaves_no_mask(tmp_path: Path) -> None:
    """256 classes with long names: the mask is written, then the line is refused (over Ground
    Truth's 100,000 characters). The PNG used to stay in annotations/masks, named by no line."""
    manifest = images(tmp_path, 2)
    (tmp_path / "wide.py").write_text(WIDE_SEGMENTER)
    (tmp_path / "names.txt").write_text("".join(f"class {i} {'x' * 400}\n" for i in range(256)))
    r = run_cli("annotate", str(manifest), "--job-name", "seg", "--label-attribute", "mask-ref",
                "--task-type", "semantic-segmentation", "--method", "inference",
                "--model", f"{tmp_path / 'wide.py'}:make", "--class-names", str(tmp_path / "names.txt"),
                "--input-size", "4", "--allow-root", str(tmp_path), "--output", str(tmp_path / "out"))
    assert r.returncode == 1, r.stdout + r.stderr
    failures = [orjson.loads(x) for x in (tmp_path / "out/seg/failures.jsonl").read_bytes().splitlines()]
    assert [(f["line"], f["rule"]) for f in failures] == [(1, "line-too-long"), (2, "line-too-long")]
    masks = tmp_path / "out/seg/annotations/masks"
    assert not masks.exists() or list(masks.iterdir()) == []
    assert "Traceback" not in r.stderr


def no_credentials_env() -> dict[str, str]:
    """No storage credentials from anywhere, and no instance metadata lookups."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_EC2_METADATA_DISABLED="true", AWS_SHARED_CREDENTIALS_FILE="/nonexistent",
               AWS_CONFIG_FILE="/nonexistent")
    return env


@pytest.mark.slow
@requires_gt
def test_a_real_gt_manifest_of_s3_images_without_credentials_stops_after_32_lines(tmp_path: Path) -> None:
    """Ground Truth's own output (50 s3:// images) chained with a new attribute on a machine with
    no AWS credentials: every line would fail the same way, so the job stops at the 32nd, and
    the lines never tried are the input's, byte for byte."""
    real = GT_MANIFESTS / "object-detection__aws-amazon-sagemaker-examples__yolov5-sample_output.manifest"
    model = save_scripted(NanBoxes("none"), tmp_path / "det.pt")
    r = subprocess.run(
        [sys.executable, "-m", "totask_manifest", "annotate", str(real), "--job-name", "boxes2",
         "--task-type", "object-detection", "--method", "inference", "--model", str(model),
         "--retries", "0", "--output", str(tmp_path / "out")],
        capture_output=True, text=True, timeout=120, cwd=REPO, env={**no_credentials_env(), "PYTHONPATH": str(REPO)})
    assert r.returncode == 1, r.stdout + r.stderr
    assert "'storage-credentials-missing'" in r.stderr and "stand_by=18" in r.stdout
    out = (tmp_path / "out/boxes2/manifests/output/output.manifest").read_bytes().splitlines(keepends=True)
    original = real.read_bytes().splitlines(keepends=True)
    assert len(out) == len(original) == 50
    assert out[32:] == original[32:]  # never tried: byte-identical
    for got, was in zip(out[:32], original[:32], strict=True):  # failed: the input's bytes, then the metadata
        assert got.startswith(was.rstrip(b"}\r\n")) and b'"boxes2-metadata"' in got
        assert orjson.loads(got)["boxes2-metadata"]["failure-rule"] == "storage-credentials-missing"


FACTORY = '''
import torch


class Cls(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(3, 2)
        self.class_names = ["a", "b"]

    def forward(self, x):
        return self.fc(x.mean(dim=(2, 3)))


def make():
    return Cls()
'''


@pytest.mark.slow
@pytest.mark.parametrize("saved", ["whole-model", "not-a-checkpoint"])
def test_weights_that_are_no_state_dict_are_named_by_their_cause(tmp_path: Path, saved: str) -> None:
    """torch's refusal opens with a paragraph advising weights_only=False, with terminal escapes;
    the one-line error keeps the cause instead."""
    (tmp_path / "fac.py").write_text(FACTORY)
    weights = tmp_path / "w.pt"
    if saved == "whole-model":
        subprocess.run([sys.executable, "-c", "import torch, fac; torch.save(fac.make(), 'w.pt')"],
                       cwd=tmp_path, check=True, timeout=120)
    else:
        weights.write_bytes(b"not a torch file")
    manifest = images(tmp_path, 1)
    r = run_cli("annotate", str(manifest), "--job-name", "w", "--task-type", "image-classification",
                "--method", "inference", "--model", f"{tmp_path / 'fac.py'}:make", "--weights", str(weights),
                "--allow-root", str(tmp_path), "--output", str(tmp_path / "out"))
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "\x1b" not in lines[0], r.stderr
    assert "weights_only` set to `False" not in lines[0]
    cause = "Unsupported global: GLOBAL fac.Cls" if saved == "whole-model" else "not a torch.save checkpoint"
    assert cause in lines[0], lines[0]
    assert not (tmp_path / "out" / "w").exists()


class NanSegmenter(torch.nn.Module):
    """A segmenter gone bad: its logits are NaN."""

    def __init__(self) -> None:
        super().__init__()
        self.class_names = ["background", "a"]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.full((x.shape[0], 2, 8, 8), float("nan"))


@pytest.mark.slow
def test_a_segmenter_with_nan_logits_stops_the_job_as_a_classifier_does(tmp_path: Path) -> None:
    manifest = images(tmp_path, 3)
    model = save_scripted(NanSegmenter(), tmp_path / "seg.pt")
    r = run_cli("annotate", str(manifest), "--job-name", "seg", "--label-attribute", "mask-ref",
                "--task-type", "semantic-segmentation", "--method", "inference", "--model", str(model),
                "--allow-root", str(tmp_path), "--output", str(tmp_path / "out"))
    assert r.returncode == 1, r.stdout + r.stderr
    assert "segmenter logits are empty or not finite" in r.stderr and "Traceback" not in r.stderr
    failures = tmp_path / "out/seg/failures.jsonl"
    assert not failures.exists() or failures.read_bytes() == b""  # not three 'schema-invalid' data failures
    assert (tmp_path / "out/seg/manifests/output/output.manifest").read_bytes() == manifest.read_bytes()
    assert not list((tmp_path / "out/seg").rglob("*.png"))  # no mask left for a line never labeled


@pytest.mark.slow
@requires_gt
def test_an_image_model_over_a_real_text_manifest_fails_by_configuration_not_line_by_line(tmp_path: Path) -> None:
    """A Ground Truth text manifest (every line 'source') given to an image model: the lines have
    no image URL, which is the job's configuration (the wrong manifest or --image-key), so the
    job stops on its first lines under one rule; the output is the input."""
    real = GT_MANIFESTS / "input-source-text__elangovana-ppi-sagemaker-groundtruth-verification__predictions_sample_subset.manifest"
    model = save_scripted(NanBoxes("none"), tmp_path / "det.pt")
    r = run_cli("annotate", str(real), "--job-name", "txt", "--task-type", "object-detection",
                "--method", "inference", "--model", str(model), "--output", str(tmp_path / "out"))
    assert r.returncode == 1, r.stdout + r.stderr
    assert "each of the 10 lines this run tried failed with 'image-key-missing'" in r.stderr, r.stderr
    rules = {orjson.loads(x)["rule"] for x in (tmp_path / "out/txt/failures.jsonl").read_bytes().splitlines()}
    assert rules == {"image-key-missing"}


def test_a_torchscript_error_ending_in_a_url_keeps_its_query_out() -> None:
    """A model's message whose last line is a signed URL: TorchScript's last line is then that
    URL, which read as an error type ``https`` and a message ``//host/...?X-Amz-Signature=...``
    that no longer looked like a URL, so its signature went into failures.jsonl and the log."""
    from totask_manifest._models.runners import _model_error

    with pytest.raises(Exception) as info:
        torch.jit.script(Raises("fetch failed:\nhttps://b.example/x.jpg?X-Amz-Signature=s3cr3t"))(torch.zeros(1))
    reason = str(_model_error(info.value))
    assert "s3cr3t" not in reason and "https://b.example/x.jpg?" in reason, reason


def test_in_process_checks_of_each_fix() -> None:
    """The fast lane's share: each fix above on the function that owns it, with real torch."""
    import io
    import pickle

    from totask_manifest._errors import JobError
    from totask_manifest._failure_rules import CONFIGURATION_RULES, rule_of
    from totask_manifest._models import postprocess as pp
    from totask_manifest._models.loading import _unpickler_cause
    from totask_manifest._models.runners import _model_error

    with pytest.raises(Exception) as info:
        torch.jit.script(SmallCnn())(torch.zeros(1, 3, 1, 1))
    assert str(_model_error(info.value)).startswith("model: RuntimeError: Given input size")
    assert str(_model_error(ValueError("plain"))) == "model: ValueError: plain"
    assert str(_model_error(ValueError(" "))) == "model: ValueError (the model gave no message)"
    for text, named in (("boom", "model: RuntimeError: boom"), ("", "model: RuntimeError (the model gave no message)")):
        with pytest.raises(Exception) as info:
            torch.jit.script(Raises(text))(torch.zeros(1))
        assert str(_model_error(info.value)) == named

    nan = {"boxes": [[0, 0, float("nan"), 5]], "scores": [0.9], "labels": [0]}
    with pytest.raises(JobError, match="NaN or infinite"):
        pp.filter_detections(nan, width=10, height=10, confidence_threshold=0.5, nms_threshold=0.5)
    with pytest.raises(JobError, match="segmenter logits are empty or not finite"):
        pp.segment(torch.full((2, 4, 4), float("nan")), width=4, height=4, class_names=["a"],
                   confidence_threshold=0.0)

    rule = rule_of("fetch: no storage credentials: NoCredentialsError: Unable to locate credentials (s3://b/k)")
    assert rule == "storage-credentials-missing" and rule in CONFIGURATION_RULES
    rule = rule_of("no image: the line has no 'source-ref' (use --image-key for another key)")
    assert rule == "image-key-missing" and rule in CONFIGURATION_RULES

    with pytest.raises(pickle.UnpicklingError) as bad:
        torch.load(io.BytesIO(b"not a torch file"), weights_only=True)
    assert "not a torch.save checkpoint" in _unpickler_cause(bad.value)
    assert "weights_only" not in _unpickler_cause(bad.value)


class OffProtocolBoxes(torch.nn.Module):
    """A detector answering off the protocol the same way for every image: its scores are logits
    (7.5), or its labels are not whole class ids (1.7)."""

    def __init__(self, bad: str) -> None:
        super().__init__()
        self.bad = bad
        self.class_names = ["a", "b"]

    def forward(self, images: List[torch.Tensor]) -> List[Dict[str, torch.Tensor]]:  # noqa: UP006
        out: List[Dict[str, torch.Tensor]] = []  # noqa: UP006
        for _ in images:
            score = 7.5 if self.bad == "logit-score" else 0.9
            labels = torch.tensor([1.7]) if self.bad == "fractional-label" else torch.tensor([1.0])
            out.append({"boxes": torch.tensor([[1.0, 1.0, 10.0, 10.0]]), "scores": torch.tensor([score]),
                        "labels": labels})
        return out


@pytest.mark.slow
@pytest.mark.parametrize(("bad", "said"), [
    ("logit-score", "model output: scores[0] is 7.5; a detector's scores are probabilities between 0 and 1"),
    ("fractional-label", "model output: labels[0] is 1.7, not a class id (a whole number)"),
])
def test_a_detector_off_the_protocol_stops_the_job_saying_so(tmp_path: Path, bad: str, said: str) -> None:
    """Before: scores of 7.5 failed every line apart on its schema check ('7.5 is greater than the
    maximum of 1'; the job went through every image, none fail-fast), and labels of 1.7 were cast
    to class 1 and written as labeled. Now the job stops at the first image, nothing written."""
    manifest = images(tmp_path, 3)
    model = save_scripted(OffProtocolBoxes(bad), tmp_path / "off.pt")
    r = run_cli("annotate", str(manifest), "--job-name", "off", "--task-type", "object-detection",
                "--method", "inference", "--model", str(model), "--allow-root", str(tmp_path),
                "--output", str(tmp_path / "out"))
    assert r.returncode == 1, r.stdout + r.stderr
    assert f"job off failed: {said}" in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert "FAILED" in r.stdout and "success=0 failed=0" in r.stdout, r.stdout
    out = (tmp_path / "out/off/manifests/output/output.manifest").read_bytes()
    assert out == manifest.read_bytes()  # no line labeled with a made-up class, none failed per line


def test_in_process_checks_of_detector_protocol_values() -> None:
    """The fast lane's share of the test above: scores and labels checked where they are read."""
    from totask_manifest._errors import JobError
    from totask_manifest._models import postprocess as pp

    def run(scores: list[float], labels: list[float]) -> pp.Detections:
        boxes = [[0, 0, 5, 5]] * len(scores)
        return pp.filter_detections({"boxes": boxes, "scores": scores, "labels": labels}, width=10, height=10,
                                    confidence_threshold=0.5, nms_threshold=None)

    with pytest.raises(JobError, match=r"scores\[1\] is -0.2; a detector's scores are probabilities"):
        run([0.9, -0.2], [0, 0])
    with pytest.raises(JobError, match=r"labels\[0\] is nan, not a class id"):
        run([0.9], [float("nan")])
    assert run([0.9, 1.0000001, 0.0], [2.0, 0, 1]).labels == [0, 2]  # float32's 1 + eps is 1; 2.0 is class 2


class HugeInput(torch.nn.Module):
    """A classifier declaring an input size of 5000 x 5000: 25 Mpx, over the default pixel budget."""

    def __init__(self) -> None:
        super().__init__()
        self.class_names = ["a", "b"]
        self.input_size = [5000, 5000]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3))[:, :2]


@pytest.mark.slow
def test_an_input_size_over_the_pixel_budget_is_refused_before_the_job_exists(tmp_path: Path) -> None:
    """Every image is resized to the input size, which the pixel budget did not bound:
    '--input-size 100000' had the job killed for memory (exit 137, the job left RUNNING), and
    16 images at 5000x5000 made a batch of 1.2 GB as uint8, 4.8 GB as floats."""
    manifest = images(tmp_path, 3)
    model = save_scripted(SmallCnn(), tmp_path / "cnn.pt")
    huge = save_scripted(HugeInput(), tmp_path / "huge.pt")
    common = ["--task-type", "image-classification", "--method", "inference", "--allow-root", str(tmp_path),
              "--output", str(tmp_path / "out")]
    flag = run_cli("annotate", str(manifest), "--job-name", "flag", "--model", str(model), "--input-size", "5000",
                   *common)
    assert flag.returncode == 2, flag.stdout + flag.stderr
    assert flag.stderr.strip().splitlines() == [
        "totask-manifest annotate: error: --input-size 5000x5000 is 25,000,000 pixels per image, over the pixel "
        "budget of 16,777,216 (--max-image-pixels); every image is resized to it"]
    declared = run_cli("annotate", str(manifest), "--job-name", "declared", "--model", str(huge), *common)
    assert declared.returncode == 2, declared.stdout + declared.stderr
    assert f"--model {huge}: its input_size 5000x5000 is 25,000,000 pixels per image" in declared.stderr
    assert len(declared.stderr.strip().splitlines()) == 1 and not (tmp_path / "out").exists()
    within = run_cli("annotate", str(manifest), "--job-name", "within", "--model", str(huge),
                     "--max-image-pixels", "25000000", *common)
    assert within.returncode == 0, within.stderr


def test_a_resized_image_counts_its_input_size_against_a_batch_budget() -> None:
    """A 10x10 PNG resized to 64x64 holds 4,096 pixels: a batch's budget counts those, so a batch
    of small images made large by the model's input size stays within it."""
    from totask_manifest._imaging import decoded_pixels, read_info

    info = read_info(png(boxes_image(10, 10, [])))
    assert decoded_pixels(info, 100_000) == 100
    assert decoded_pixels(info, 100_000, (64, 64)) == 4096
    assert decoded_pixels(read_info(png(boxes_image(200, 100, []))), 100_000, (64, 64)) == 20_000


PY_DETECTOR = """
import torch
class Boxes(torch.nn.Module):
    def forward(self, images):
        return [{"boxes": torch.tensor([[2.0, 2.0, 9.0, 9.0]]), "scores": torch.tensor([0.9]),
                 "labels": torch.tensor([0])} for _ in images]
def make():
    m = Boxes()
    m.class_names = ["a", "b"]
    return m
"""


def _annotate_inference(tmp_path: Path, manifest: Path, job: str, task_type: str, model: str) -> subprocess.CompletedProcess:
    """``annotate`` of ``manifest`` (attribute ``b``) with ``--method inference --model model``, into ``tmp_path/out``."""
    return run_cli("annotate", str(manifest), "--job-name", job, "--label-attribute", "b", "--task-type", task_type,
                   "--method", "inference", "--model", model, "--allow-root", str(tmp_path),
                   "--output", str(tmp_path / "out"))


def _refused_before_the_job(tmp_path: Path, manifest: Path, job: str, task_type: str, model: str) -> list[str]:
    """The lines ``_annotate_inference`` prints, refused (exit 2) before any job folder exists."""
    r = _annotate_inference(tmp_path, manifest, job, task_type, model)
    assert r.returncode == 2, r.stdout + r.stderr
    assert not (tmp_path / "out").exists()
    return r.stderr.strip().splitlines()


@pytest.mark.slow
def test_a_python_detector_given_as_a_classifier_is_refused_before_the_job_exists(tmp_path: Path) -> None:
    """The same mistake with a TorchScript model is refused by its forward's signature; a Python
    model declares none, so the job started and failed FAILED (``expected a tensor ...; got
    list``, exit 1), its name taken. The blank-image forward run before the job sees the output."""
    manifest = images(tmp_path, 2)
    (tmp_path / "det.py").write_text(PY_DETECTOR)
    model = f"{tmp_path / 'det.py'}:make"
    assert _refused_before_the_job(tmp_path, manifest, "x4", "image-classification", model) == [
        f"totask-manifest annotate: error: --model {model}: run once as a classifier on a blank image, its output "
        "does not fit: expected a tensor (or a dict with 'out'/'logits'); got list (docs/inference.md, The model "
        "protocol); is --task-type the model's?"]
    fits = _annotate_inference(tmp_path, manifest, "x4", "object-detection", model)
    assert fits.returncode == 0, fits.stdout + fits.stderr


PY_CLASSIFIER = """
import torch
class Scores(torch.nn.Module):
    def forward(self, x):
        return x.mean(dim=(2, 3))[:, :2] * 10
def make():
    m = Scores()
    m.class_names = ["a", "b"]
    return m
"""


@pytest.mark.slow
def test_a_python_classifier_given_as_a_detector_is_refused_before_the_job_exists(tmp_path: Path) -> None:
    """The reverse of the test above: a detector was never run before the job, so a Python
    classifier given as one started the job and failed it on its first batch (``a detector must
    return a list of 2 dicts ...; got Tensor``), the job's folder left FAILED under its name. The
    blank-image forward now runs for a detector that declares no argument types too: this one's own
    code fails on the detector's list, and given a batch it answers with a classifier's tensor."""
    manifest = images(tmp_path, 2)
    (tmp_path / "cls.py").write_text(PY_CLASSIFIER)
    model = f"{tmp_path / 'cls.py'}:make"
    common = ("--label-attribute", "b", "--method", "inference", "--model", model,
              "--allow-root", str(tmp_path), "--output", str(tmp_path / "out"))
    r = run_cli("annotate", str(manifest), "--job-name", "x5", "--task-type", "object-detection", *common)
    assert r.returncode == 2, r.stdout + r.stderr
    assert r.stderr.strip().splitlines() == [
        f"totask-manifest annotate: error: --model {model}: run once as a detector on a blank image, its output "
        "does not fit: given a list of images it fails (AttributeError: 'list' object has no attribute 'mean'), "
        "given a batch Tensor [1, 3, 224, 224] it returns a Tensor [1, 2]: a classifier's or segmenter's output, "
        "not one dict of boxes per image (docs/inference.md, The model protocol); is --task-type the model's?"]
    assert not (tmp_path / "out").exists()
    fits = run_cli("annotate", str(manifest), "--job-name", "x5", "--task-type", "image-classification", *common)
    assert fits.returncode == 0, fits.stdout + fits.stderr



class ScriptedStacks(torch.nn.Module):
    """A TorchScript classifier whose ``forward`` takes a detector's list of images (its signature
    passes as a detector's) but returns a tensor of scores; ``calls`` counts its forwards."""

    def __init__(self) -> None:
        super().__init__()
        self.class_names = ["a", "b"]
        self.calls = 0

    def forward(self, images: List[torch.Tensor]) -> torch.Tensor:  # noqa: UP006
        self.calls += 1
        return torch.stack(images).mean(dim=(2, 3))[:, :2]


class ScriptedRaises(torch.nn.Module):
    """A TorchScript detector by its signature whose own code fails on any image."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def forward(self, images: List[torch.Tensor]) -> List[Dict[str, torch.Tensor]]:  # noqa: UP006
        self.calls += 1
        if len(images) > 0:
            raise RuntimeError("boom")
        return []


@pytest.mark.slow
def test_a_torchscript_classifier_taking_a_list_given_as_a_detector_is_refused_before_the_job_exists(
        tmp_path: Path) -> None:
    """Its signature looks like a detector's, so ``check_signature`` passed it, and the form check
    of the blank-image forward was for Python models only: the job started and every line failed
    (``a detector must return a list of 2 dicts ...; got Tensor``), its folder left FAILED. It is
    run once on a blank image before the job, as a Python model is."""
    manifest = images(tmp_path, 2)
    model = save_scripted(ScriptedStacks(), tmp_path / "stacks.pt")
    assert _refused_before_the_job(tmp_path, manifest, "x6", "object-detection", str(model)) == [
        f"totask-manifest annotate: error: --model {model}: run once as a detector on a blank image, its output "
        "does not fit: a detector must return a list of 1 dicts (one per image); got Tensor (docs/inference.md, "
        "The model protocol); is --task-type the model's?"]


@pytest.mark.slow
def test_an_input_size_a_detector_has_no_use_for_is_noted_once_as_ignored(tmp_path: Path) -> None:
    """A detector takes each image at its own size: ``--input-size 64`` changed nothing (labels
    byte-identical) and said nothing, as a classifier's ignored ``--nms-threshold`` is said."""
    from tests.test_inference_support import ColorBoxes

    manifest = images(tmp_path, 2)
    model = save_scripted(ColorBoxes(), tmp_path / "det.pt")
    outputs = []
    for job, size in (("plain", ()), ("sized", ("--input-size", "64")), ("huge", ("--input-size", "5000x5000"))):
        r = run_cli("annotate", str(manifest), "--job-name", job, "--label-attribute", "b", *size,
                    "--task-type", "object-detection", "--method", "inference", "--model", str(model),
                    "--allow-root", str(tmp_path), "--output", str(tmp_path / "out"))
        assert r.returncode == 0, r.stdout + r.stderr
        notes = [x for x in r.stdout.splitlines() + r.stderr.splitlines() if "--input-size" in x]
        assert notes == ([f"--input-size {size[1]} ignored: it applies to classifiers and segmenters (images resized "
                          "to it), not object-detection: a detector takes each image at its own size"]
                         if size else []), r.stdout + r.stderr
        lines = (tmp_path / "out" / job / "manifests/output/output.manifest").read_bytes().splitlines()
        outputs.append([orjson.loads(x)["b"] for x in lines])
    assert outputs[0] == outputs[1] == outputs[2]


def test_in_process_checks_of_input_size_model_and_image_messages(tmp_path: Path) -> None:
    """``--input-size 0`` is named as typed, not as the [0, 0] it is read as; an endpoint, which
    fetches its own images, notes the value as ignored too; a bare ``.py`` model is told to name
    its factory; a 0-byte image is said to be empty, not of a format Pillow does not know."""
    from totask_manifest._annotators.inference import effective_params
    from totask_manifest._annotators.inference_images import decode_image
    from totask_manifest._errors import UsageError
    from totask_manifest._imaging import ImageUnreadable
    from totask_manifest._models.loading import load_torchscript, parse_input_size

    for typed in ("0", 0, "0,5", "-3"):
        with pytest.raises(UsageError) as err:
            parse_input_size(typed)
        assert str(err.value) == f"--input-size must be a positive integer or HEIGHT,WIDTH, got {typed!r}"
    notes: list[str] = []
    effective_params({"model": "http://127.0.0.1:9/predict", "input_size": "64"}, "image-classification", notes=notes)
    assert notes == ["--input-size 64 ignored: a model endpoint fetches its images itself, at their own size"]
    notes.clear()
    effective_params({"model": "m.pt", "input_size": "64"}, "image-classification", notes=notes)
    assert notes == []
    (tmp_path / "net.py").write_text(PY_DETECTOR)
    with pytest.raises(UsageError) as err:
        load_torchscript(str(tmp_path / "net.py"))
    assert str(err.value) == (f"--model {tmp_path / 'net.py'}: not a TorchScript file: a .py model is named with "
                              f"its factory, the function that returns the torch.nn.Module ({tmp_path / 'net.py'}:make, "
                              "say; docs/inference.md)")
    with pytest.raises(ImageUnreadable) as unreadable:
        decode_image(b"", None)
    assert unreadable.value.reason == "empty file (0 bytes)"
    with pytest.raises(ImageUnreadable, match="no image format Pillow knows"):
        decode_image(b"not an image\n", None)


def test_in_process_check_of_a_detector_output_on_the_blank_image(tmp_path: Path) -> None:
    """A model that takes the detector's list but answers with a tensor, or a list of tensors, is
    refused by the blank-image forward; a real detector passes, and a model that fails on the list
    and on a batch alike is left to the job (which names its error per line)."""
    from totask_manifest._errors import UsageError
    from totask_manifest._models.heads import head_for
    from totask_manifest._models.sources import check_detector_output, source_for

    detector = head_for("object-detection")
    (tmp_path / "m.py").write_text(PY_DETECTOR + """
class Stacks(torch.nn.Module):
    def forward(self, images):
        return torch.stack(images).mean(dim=(2, 3))
class Listed(torch.nn.Module):
    def forward(self, images):
        return [img.mean(dim=(1, 2)) for img in images]
class Broken(torch.nn.Module):
    def forward(self, x):
        raise RuntimeError("boom")
def stacks():
    return Stacks()
def listed():
    return Listed()
def broken():
    return Broken()
""")
    said = {
        "stacks": "a detector must return a list of 1 dicts (one per image); got Tensor",
        "listed": "a detector must return, per image, a dict with 'boxes', 'scores' and 'labels'; got Tensor",
    }
    for factory, reason in said.items():
        ref = f"{tmp_path / 'm.py'}:{factory}"
        with pytest.raises(UsageError) as err:
            check_detector_output(source_for(ref).load(), detector, (8, 8))
        assert str(err.value) == (f"--model {ref}: run once as a detector on a blank image, its output does not "
                                  f"fit: {reason} (docs/inference.md, The model protocol); is --task-type the model's?")
    for factory in ("make", "broken"):
        check_detector_output(source_for(f"{tmp_path / 'm.py'}:{factory}").load(), detector, (8, 8))
    # a classifier head is checked by check_class_count, not here
    check_detector_output(source_for(f"{tmp_path / 'm.py'}:stacks").load(), head_for("image-classification"), None)


def test_in_process_check_of_a_torchscript_detector_runs_it_once_and_no_other_model(tmp_path: Path) -> None:
    """A TorchScript model whose signature passed as a detector is run once on the blank image (a
    real detector passes; a list taken, a tensor returned, is refused) and never given a batch
    after failing on the list (its types take none); a classifier is not run here at all: its one
    forward is ``check_class_count``'s."""
    from totask_manifest._errors import UsageError
    from totask_manifest._models.heads import head_for
    from totask_manifest._models.sources import check_detector_output, check_signature, source_for

    detector = head_for("object-detection")
    stacks = source_for(str(save_scripted(ScriptedStacks(), tmp_path / "stacks.pt"))).load()
    check_signature(stacks, detector)
    with pytest.raises(UsageError, match="got Tensor"):
        check_detector_output(stacks, detector, (8, 8))
    assert stacks.module.calls == 1
    real = source_for(str(save_scripted(OffProtocolBoxes("none"), tmp_path / "boxes.pt"))).load()
    check_detector_output(real, detector, (8, 8))  # its form fits; values are the job's to judge
    broken = source_for(str(save_scripted(ScriptedRaises(), tmp_path / "broken.pt"))).load()
    check_detector_output(broken, detector, (8, 8))  # its own error: the job names it per line
    assert broken.module.calls == 1
    classifier = source_for(str(save_scripted(ScriptedStacks(), tmp_path / "cls.pt"))).load()
    check_detector_output(classifier, head_for("image-classification"), (8, 8))
    assert classifier.module.calls == 0
