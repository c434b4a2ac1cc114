"""A classifier whose logits are not one per class name (3 logits, 6 names; or 6 and 3) is
refused before the job exists, in one line naming the model, the counts and the rule (exit 2): it
was found only by the job's first batch, which FAILED the job after its folder was made. One
forward of one blank image at load, on the driver only (Ray's workers do not repeat it); a
detector is never run at load.

Real torch models (TorchScript files and a ``file.py:factory`` the test writes), the CLI in real
subprocesses.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from PIL import Image

torch = pytest.importorskip("torch")

from tests.jobs_helpers import REPO  # noqa: E402
from tests.test_inference_support import save_scripted  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")
HAVE_RAY = importlib.util.find_spec("ray") is not None


class Logits(torch.nn.Module):
    """A classifier of ``width`` logits, naming ``names`` classes itself (none: empty)."""

    def __init__(self, width: int, names: list[str]) -> None:
        super().__init__()
        self.width = width
        self.class_names = names

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.zeros(x.shape[0], self.width) + x.mean()


def _setup(tmp_path: Path, lines: int = 4) -> Path:
    (tmp_path / "img").mkdir()
    rows = []
    for i in range(lines):
        Image.new("RGB", (20 + i, 16), (40 + i * 20, 80, 160)).save(tmp_path / "img" / f"{i}.png")
        rows.append(orjson.dumps({"source-ref": f"img/{i}.png", "n": i}))
    (tmp_path / "in.manifest").write_bytes(b"\n".join(rows) + b"\n")
    return tmp_path / "in.manifest"


def _annotate(tmp_path: Path, model: str, task_type: str, *extra: str, env: dict | None = None,
              job_name: str = "j", label_attribute: str = "cls") -> subprocess.CompletedProcess:
    """``annotate`` with the inference method (each flag once: a flag given twice is refused)."""
    args = [sys.executable, "-m", "totask_manifest", "annotate", str(tmp_path / "in.manifest"),
            "--job-name", job_name, "--label-attribute", label_attribute, "--task-type", task_type, "--method", "inference",
            "--model", model, "--input-size", "16", "--allow-root", str(tmp_path), "--output",
            str(tmp_path / "out"), *extra]
    return subprocess.run(args, env=dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1", **(env or {})),
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)


@pytest.mark.parametrize("task_type", ["image-classification", "image-classification-multilabel"])
@pytest.mark.parametrize(("width", "names", "given"), [(3, 6, "--class-names"), (6, 3, "--class-names"),
                                                       (6, 3, "model")])
def test_a_classifier_whose_logits_do_not_match_its_class_names_is_refused_before_the_job(
        tmp_path: Path, task_type: str, width: int, names: int, given: str) -> None:
    _setup(tmp_path)
    class_names = [f"c{i}" for i in range(names)]
    extra: list[str] = []
    if given == "--class-names":
        (tmp_path / "names.txt").write_text("\n".join(class_names) + "\n")
        extra = ["--class-names", str(tmp_path / "names.txt")]
        class_names = []
    model = save_scripted(Logits(width, class_names), tmp_path / "cls.pt")
    r = _annotate(tmp_path, str(model), task_type, *extra)
    assert r.returncode == 2, r.stderr
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("totask-manifest annotate: error: "), r.stderr
    line = lines[0]
    assert f"--model {model}" in line and f"{width} logits" in line and f"{names} class names" in line, line
    assert "one class name per logit" in line, line
    assert not (tmp_path / "out").exists()


def test_a_classifier_that_fits_runs_and_a_detector_is_run_at_load_for_its_form_only(tmp_path: Path) -> None:
    """3 logits and 3 names label every line. A detector whose class ids may pass its names on
    some image is not judged from a blank one: before the job it runs once, on one image, only to
    see that it answers as a detector (``sources.check_detector_output``)."""
    _setup(tmp_path)
    model = save_scripted(Logits(3, ["a", "b", "c"]), tmp_path / "cls.pt")
    r = _annotate(tmp_path, str(model), "image-classification")
    assert r.returncode == 0, r.stderr
    (tmp_path / "det.py").write_text(DETECTOR)
    r = _annotate(tmp_path, f"{tmp_path / 'det.py'}:build", "object-detection", job_name="d",
                  env={"FORWARDS": str(tmp_path / "forwards")})
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "forwards").read_text().split() == ["1", "4"]  # the form check at load, then the job's one batch


class Channels(torch.nn.Module):
    """A segmenter of ``width`` channels, naming ``names`` classes itself."""

    def __init__(self, width: int, names: list[str]) -> None:
        super().__init__()
        self.width = width
        self.class_names = names

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.zeros(x.shape[0], self.width, x.shape[2], x.shape[3]) + x.mean()


@pytest.mark.parametrize(("width", "names"), [(4, 2), (4, 5), (2, 4)])
def test_a_segmenter_whose_channels_do_not_match_its_class_names_is_refused_before_the_job(
        tmp_path: Path, width: int, names: int) -> None:
    """C channels take C names (the first the background's) or the C-1 foreground names; any
    other count was found only by the job's first batch, after its folder was made."""
    _setup(tmp_path)
    model = save_scripted(Channels(width, [f"c{i}" for i in range(names)]), tmp_path / "seg.pt")
    r = _annotate(tmp_path, str(model), "semantic-segmentation", label_attribute="seg-ref")
    assert r.returncode == 2, r.stderr
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("totask-manifest annotate: error: "), r.stderr
    line = lines[0]
    assert f"--model {model}" in line and f"segmenter gives {width} channels" in line, line
    assert f"the model gives {names} class names" in line, line
    assert f"{width} names" in line and f"{width - 1} foreground names" in line, line
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("names", [3, 2])
def test_a_segmenter_with_every_or_only_foreground_names_runs(tmp_path: Path, names: int) -> None:
    _setup(tmp_path)
    model = save_scripted(Channels(3, [f"c{i}" for i in range(names)]), tmp_path / "seg.pt")
    r = _annotate(tmp_path, str(model), "semantic-segmentation", label_attribute="seg-ref")
    assert r.returncode == 0, r.stderr


DETECTOR = '''
import os
import torch


class Det(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.class_names = ["a"]

    def forward(self, images):
        with open(os.environ["FORWARDS"], "a") as f:
            f.write(f"{len(images)}\\n")
        return [{"boxes": torch.tensor([[1.0, 1.0, 5.0, 5.0]]), "labels": torch.tensor([0]),
                 "scores": torch.tensor([0.9])} for _ in images]


def build():
    return Det()
'''

COUNTING = '''
import os
import torch


class Classes(torch.nn.Module):
    def __init__(self, width):
        super().__init__()
        self.class_names = ["a", "b", "c"]
        self.width = width

    def forward(self, x):
        blank = int(bool((x == 0).all()))
        with open(os.path.join(os.environ["FORWARDS"], f"{os.getpid()}-{os.urandom(4).hex()}"), "w") as f:
            f.write(f"{x.shape[0]} {blank}")
        return torch.zeros(x.shape[0], self.width) + x.mean()


def build():
    return Classes(3)


def wide():
    return Classes(5)
'''


@pytest.mark.ray
@pytest.mark.skipif(not HAVE_RAY, reason="ray is not installed (pip install 'totask-manifest[ray]')")
def test_on_ray_the_check_runs_once_on_the_driver(tmp_path: Path) -> None:
    """The one blank forward is the driver's (the CLI's own process); the workers only label,
    and a mismatch is refused there, before Ray starts a job."""
    _setup(tmp_path, lines=8)
    (tmp_path / "model.py").write_text(COUNTING)
    forwards = tmp_path / "forwards"
    forwards.mkdir()
    ray = ("--engine", "ray", "--ray-num-cpus", "2", "--ray-batch-size", "4")
    r = _annotate(tmp_path, f"{tmp_path / 'model.py'}:wide", "image-classification", *ray,
                  env={"FORWARDS": str(forwards)})
    assert r.returncode == 2 and "5 logits" in r.stderr and "3 class names" in r.stderr, r.stderr
    assert not (tmp_path / "out").exists()
    for f in forwards.iterdir():
        f.unlink()
    args = [sys.executable, "-m", "totask_manifest", "annotate", str(tmp_path / "in.manifest"), "--job-name", "j",
            "--label-attribute", "cls", "--task-type", "image-classification", "--method", "inference",
            "--model", f"{tmp_path / 'model.py'}:build", "--input-size", "16", "--allow-root", str(tmp_path),
            "--output", str(tmp_path / "out"), *ray]
    proc = subprocess.Popen(args, env=dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1",
                                           FORWARDS=str(forwards)),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    calls = [(f.name.split("-")[0], f.read_text().split()) for f in forwards.iterdir()]
    blank = [pid for pid, (_, is_blank) in calls if is_blank == "1"]
    assert blank == [str(proc.pid)], calls
    assert sum(int(n) for pid, (n, is_blank) in calls if is_blank == "0") == 8, calls
