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


def test_a_storage_package_missing_is_a_configuration_rule():
    """Without s3fs every ``s3://`` line fails alike: the installation is wrong, not the line."""
    from totask_manifest._failure_rules import CONFIGURATION_RULES, rule_of

    ours = ("fetch: cannot open s3://b/a.json: no filesystem for protocol 's3': install s3fs: pip install "
            "'totask-manifest[s3]' (s3://b/a.json)")
    fsspecs = "fetch: cannot open gs://b/a.json: no filesystem for protocol 'gs': Please install gcsfs to access Google Storage"
    assert rule_of(ours) == rule_of(fsspecs) == "storage-package-missing" in CONFIGURATION_RULES
    assert rule_of("fetch: cannot open foo://b/a: no filesystem for protocol 'foo': Protocol not known: foo") != (
        "storage-package-missing")


def test_a_file_job_over_s3_without_s3fs_stops_after_the_first_lines_naming_the_extra(tmp_path):
    """It tried every line, each failing ``fetch-failed`` (a data rule), and ended "no line was
    labeled": over a million-line manifest, a million failures to learn that s3fs is missing."""
    n = 200
    inp = tmp_path / "in.manifest"
    inp.write_bytes(b"".join(orjson.dumps({"source-ref": f"s3://b/{i}.jpg", "label-url": f"s3://b/{i}.json"}) + b"\n"
                             for i in range(n)))
    hidden = WITHOUT_TORCH.replace("'torch'", "'s3fs'")
    r = subprocess.run([sys.executable, "-c", hidden, "annotate", str(inp), "--job-name", "j", "--label-attribute",
                        "boxes", "--task-type", "object-detection", "--url-key", "label-url", "--output",
                        str(tmp_path / "out")], capture_output=True, text=True, timeout=120, cwd=tmp_path,
                       env={**os.environ, "PYTHONPATH": str(REPO)})
    assert r.returncode == 1, r.stderr
    assert "failed with 'storage-package-missing'" in r.stderr and "pip install 'totask-manifest[s3]'" in r.stderr
    assert "Traceback" not in r.stderr
    assert "failed=32 " in r.stdout and f"stand_by={n - 32}" in r.stdout, r.stdout
