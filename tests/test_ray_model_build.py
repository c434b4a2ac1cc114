"""A model that loads in the driver's check but not on a Ray worker (out of GPU memory there, a
package missing from the worker's environment): the job says why, in one line, and a worker that
could load it does the work.

Real torch models (a ``file.py:factory`` the test writes), real CLI subprocesses, each starting
its own private Ray instance as a user's run does.
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

HAVE_RAY = importlib.util.find_spec("ray") is not None
HAVE_TORCH = importlib.util.find_spec("torch") is not None
pytestmark = [
    pytest.mark.ray,
    pytest.mark.skipif(not HAVE_RAY, reason="ray is not installed (pip install 'totask-manifest[ray]')"),
    pytest.mark.skipif(not HAVE_TORCH, reason="torch is not installed (pip install 'totask-manifest[inference]')"),
]
REPO = Path(__file__).resolve().parents[1]

FACTORY = '''
import os
import torch


class Classes(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.class_names = ["a", "b", "c"]
        self.conv = torch.nn.Conv2d(3, 3, 3)

    def forward(self, x):
        return self.conv(x).mean(dim=(2, 3))


def _build_number():
    """0 for the first build (the driver's check), 1, 2, ... for the workers', in order."""
    i = 0
    while True:
        try:
            os.close(os.open(os.path.join(os.environ["BUILDS"], str(i)), os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            return i
        except FileExistsError:
            i += 1


def build():
    torch.manual_seed(0)
    n = _build_number()
    if n >= int(os.environ["FAIL_FROM"]) and n <= int(os.environ["FAIL_TO"]):
        raise RuntimeError("CUDA error: out of memory (tried to allocate 2.00 GiB)")
    return Classes()
'''


def _setup(tmp_path: Path, lines: int = 12) -> Path:
    (tmp_path / "img").mkdir()
    rows = []
    for i in range(lines):
        Image.new("RGB", (20 + i, 16), (i * 20, 80, 160)).save(tmp_path / "img" / f"{i}.png")
        rows.append(orjson.dumps({"source-ref": f"img/{i}.png", "n": i}).decode())
    (tmp_path / "in.manifest").write_text("\n".join(rows) + "\n")
    (tmp_path / "model.py").write_text(FACTORY)
    (tmp_path / "builds").mkdir()
    return tmp_path / "in.manifest"


def _run(tmp_path: Path, job: str, fail_from: int, fail_to: int, *engine: str) -> subprocess.CompletedProcess:
    for marker in (tmp_path / "builds").iterdir():
        marker.unlink()
    env = dict(os.environ, PYTHONPATH=str(REPO), BUILDS=str(tmp_path / "builds"),
               FAIL_FROM=str(fail_from), FAIL_TO=str(fail_to), OMP_NUM_THREADS="1")
    args = [sys.executable, "-m", "totask_manifest", "annotate", str(tmp_path / "in.manifest"),
            "--job-name", job, "--label-attribute", "cls", "--task-type", "image-classification",
            "--method", "inference", "--model", f"{tmp_path / 'model.py'}:build", "--input-size", "16",
            "--allow-root", str(tmp_path), "--output", str(tmp_path / "out"), *engine]
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)


def _labels(path: Path) -> list[bytes]:
    return [
        orjson.dumps({k: v for k, v in orjson.loads(line).items() if k != "cls-metadata"}
                     | {"meta": {k: v for k, v in orjson.loads(line)["cls-metadata"].items() if k != "creation-date"}})
        for line in path.read_bytes().splitlines()
    ]


def test_model_that_loads_on_no_worker_fails_the_job_with_its_own_reason_in_one_line(tmp_path):
    inp = _setup(tmp_path)
    done = _run(tmp_path, "j", 1, 99, "--engine", "ray", "--ray-num-cpus", "2", "--ray-batch-size", "4")
    assert done.returncode == 1, done.stderr
    job = orjson.loads((tmp_path / "out" / "j" / "job.json").read_bytes())
    assert job["status"] == "FAILED"
    # the model's own reason, not "lost with their worker" after retries of a dead actor
    assert "could not be built" in job["error"] and "CUDA error: out of memory" in job["error"], job["error"]
    assert "\x1b" not in job["error"] and "\n" not in job["error"]
    # no traceback printed (Ray's, of the failed actor creation, nor ours), no worker core dump
    for noise in ("Traceback", "SIGABRT", "Unhandled error", "File \""):
        assert noise not in done.stderr, done.stderr[-3000:]
    assert job["metrics"]["stand_by"] == 12
    assert (tmp_path / "out" / "j" / "manifests" / "output" / "output.manifest").read_bytes() == inp.read_bytes()


def test_model_that_fails_to_load_on_one_worker_is_done_by_the_other(tmp_path):
    _setup(tmp_path)
    done = _run(tmp_path, "ray", 1, 1, "--engine", "ray", "--ray-num-cpus", "2", "--ray-batch-size", "4")
    assert done.returncode == 0, done.stderr
    for noise in ("Traceback", "Unhandled error", "File \""):
        assert noise not in done.stderr, done.stderr[-3000:]
    assert "could not be built" in done.stderr and "CUDA error: out of memory" in done.stderr
    local = _run(tmp_path, "local", 99, 99)
    assert local.returncode == 0, local.stderr
    out = tmp_path / "out"
    assert _labels(out / "ray" / "manifests" / "output" / "output.manifest") == [
        line.replace(b"labeling-job/local", b"labeling-job/ray")
        for line in _labels(out / "local" / "manifests" / "output" / "output.manifest")
    ]
