"""``--device cuda`` with ``--engine ray`` on a cluster without a GPU ran on the CPU without a word:
the local engine's ``device cuda requested but ...; falling back to the CPU`` stayed in the
workers' logs, and the user saw only ``0 GPU`` in the pool's line. The driver says it now, once.
A real private Ray instance (no GPU: ``CUDA_VISIBLE_DEVICES`` empty), a real torch factory, the
CLI as a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson

from tests.test_ray_model_build import REPO, _setup, pytestmark  # noqa: F401  (the same skips and mark)


def test_cuda_asked_on_a_cluster_without_a_gpu_is_said_once_and_the_job_completes(tmp_path: Path) -> None:
    _setup(tmp_path, lines=4)
    env = dict(os.environ, PYTHONPATH=str(REPO), BUILDS=str(tmp_path / "builds"), FAIL_FROM="99", FAIL_TO="99",
               OMP_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="")
    env.pop("RAY_LOG_TO_DRIVER", None)
    args = [sys.executable, "-m", "totask_manifest", "annotate", str(tmp_path / "in.manifest"), "--job-name", "j",
            "--label-attribute", "cls", "--task-type", "image-classification", "--method", "inference",
            "--model", f"{tmp_path / 'model.py'}:build", "--input-size", "16", "--device", "cuda",
            "--allow-root", str(tmp_path), "--output", str(tmp_path / "out"),
            "--engine", "ray", "--ray-num-cpus", "2", "--ray-actors", "1"]
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    said = [line for line in done.stderr.splitlines() if "falling back to the CPU" in line]
    assert said == ["device cuda requested but the Ray cluster has no GPU; falling back to the CPU"], done.stderr
    assert orjson.loads((tmp_path / "out" / "j" / "job.json").read_bytes())["status"] == "COMPLETED"
