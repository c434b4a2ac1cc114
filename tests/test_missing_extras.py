"""A feature whose extra is not installed is refused in one line naming the extra.

A user who installs the wheel without ``[inference]`` (``pip install totask-manifest``) and runs
``--method inference`` once got the job created and then a traceback ending in ``ModuleNotFoundError:
No module named 'torch'`` (a local model: while checking it; a model endpoint: the job made, every
line's post-processing failing, FAILED). Each test runs the real CLI in a fresh interpreter where
``torch`` cannot be imported (``sys.modules['torch'] = None``: ``import`` raises
``ModuleNotFoundError`` and ``importlib.util.find_spec`` answers None, as without the package).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from tests.jobs_helpers import REPO

SAMPLE = REPO / "sample_data"
EXTRA = "pip install 'totask-manifest[inference]'"
WITHOUT_TORCH = ("import sys; sys.modules['torch'] = None; from totask_manifest._cli import main; "
                 "sys.exit(main(sys.argv[1:]))")

pytestmark = pytest.mark.slow  # CLI subprocesses


def run_without_torch(*argv: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", WITHOUT_TORCH, *argv], capture_output=True, text=True,
                          timeout=120, cwd=cwd, env={**os.environ, "PYTHONPATH": str(REPO)})


def two_images(tmp_path: Path) -> Path:
    inp = tmp_path / "in.manifest"
    inp.write_bytes(b"".join(orjson.dumps({"source-ref": str(SAMPLE / "images" / f"img_00{i}.jpg")}) + b"\n"
                             for i in range(2)))
    return inp


@pytest.mark.parametrize("model", [str(SAMPLE / "models" / "shapes-detector.pt"), "http://127.0.0.1:9/predict"],
                         ids=["torchscript", "endpoint"])
def test_inference_without_torch_names_the_extra_before_the_job_exists(tmp_path, model):
    r = run_without_torch("annotate", str(two_images(tmp_path)), "--job-name", "boxes", "--label-attribute", "boxes",
                          "--task-type", "object-detection", "--method", "inference", "--model", model,
                          "--allow-root", str(SAMPLE), "--output", str(tmp_path / "out"), cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    assert r.stderr == (f"totask-manifest annotate: error: method 'inference' needs the Python package 'torch': "
                        f"{EXTRA}\n")
    assert not (tmp_path / "out").exists()  # refused before the job (or its output root) was made


def test_resume_of_an_inference_job_without_torch_names_the_extra_and_leaves_the_job(tmp_path):
    """A job made where torch is installed, resumed where it is not (another machine, another venv)."""
    from totask_manifest import JobConfig, annotate

    config = JobConfig(input=str(two_images(tmp_path)), output_root=str(tmp_path / "out"), job_name="boxes",
                       label_attribute="boxes", task_type="object-detection", method="inference",
                       options={"model": str(SAMPLE / "models" / "shapes-detector.pt"), "allow_root": str(SAMPLE)})
    assert annotate(config).status == "COMPLETED"
    job_json = tmp_path / "out" / "boxes" / "job.json"
    state = orjson.loads(job_json.read_bytes())
    state["status"] = "STOPPED"  # as a Ctrl-C leaves it: resume has work to do
    job_json.write_bytes(orjson.dumps(state))
    before = job_json.read_bytes()

    r = run_without_torch("resume", str(tmp_path / "out" / "boxes"), cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    assert r.stderr == (f"totask-manifest resume: error: method 'inference' needs the Python package 'torch': "
                        f"{EXTRA}\n")
    assert job_json.read_bytes() == before  # no run recorded, nothing FAILED
