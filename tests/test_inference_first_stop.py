"""A first Ctrl-C on a slow model waited for the model to run on every batch already fetched
ahead (three, ``PREFETCH_BATCHES``): 284 s more on a model taking 60 s a forward, under a line
saying only "finishing lines in flight". Now no new batch enters the model after the signal: the
batch in it finishes and is labeled, the lines fetched ahead are left for ``resume`` (neither
labeled nor failed), and the line says what it waits for. A real ``file.py:factory`` model whose
forward sleeps and logs each call, real CLI subprocesses, a real SIGINT."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

pytest.importorskip("torch")

from tests.jobs_helpers import REPO, write_image_manifest
from tests.support.sessions import signal_once_marked

MODEL = '''
import os
import time
import torch


class Slow(torch.nn.Module):
    class_names = ["a", "b"]

    def forward(self, x):
        if not bool((x == 0).all()):  # not the blank image of the check at load
            with open(os.environ["FORWARDS"], "a") as f:
                f.write(f"{x.shape[0]}\\n")
            open(os.environ["MARK"], "a").close()
            time.sleep(float(os.environ.get("SLEEP", "0")))
        return torch.zeros(x.shape[0], 2)


def build():
    return Slow()
'''

LINES, BATCH = 16, 4


def _run(tmp_path: Path, *args: str, sleep: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1", MARK=str(tmp_path / "mark"),
               FORWARDS=str(tmp_path / "forwards"), SLEEP=sleep)
    return subprocess.Popen([sys.executable, "-m", "totask_manifest", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=tmp_path)


def _forwards(tmp_path: Path) -> list[int]:
    return [int(n) for n in (tmp_path / "forwards").read_text().split()]


@pytest.mark.slow
def test_a_first_ctrl_c_lets_only_the_batch_in_the_model_finish(tmp_path: Path) -> None:
    write_image_manifest(tmp_path, LINES)
    (tmp_path / "model.py").write_text(MODEL)
    proc = _run(tmp_path, "annotate", str(tmp_path / "in.manifest"), "--job-name", "j", "--label-attribute", "cls",
                "--task-type", "image-classification", "--method", "inference", "--model",
                f"{tmp_path / 'model.py'}:build", "--input-size", "8", "--batch-size", str(BATCH),
                "--allow-root", str(tmp_path), "--output", str(tmp_path / "out"), sleep="2")
    _, err = signal_once_marked(proc, tmp_path / "mark", signal.SIGINT)
    assert proc.returncode == 130, err
    assert "stopping: finishing the batch in the model (4 lines); lines fetched ahead are left for resume " \
           "(signal again to stop at once)" in err, err
    assert "Traceback" not in err, err
    # the model ran once: on the batch it held at the signal, none of the three fetched ahead
    assert _forwards(tmp_path) == [BATCH], err
    job = json.loads((tmp_path / "out" / "j" / "job.json").read_text())
    assert job["status"] == "STOPPED", err
    assert (job["metrics"]["success"], job["metrics"]["failed"]) == (BATCH, 0), job["metrics"]
    resumed = _run(tmp_path, "resume", str(tmp_path / "out" / "j"), sleep="0")
    out, err = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, out + err
    # every line went through the model once, across both runs, and is labeled once
    assert sum(_forwards(tmp_path)) == LINES, _forwards(tmp_path)
    rows = [orjson.loads(x) for x in (tmp_path / "out" / "j" / "manifests" / "output" / "output.manifest")
            .read_bytes().splitlines()]
    assert [r["source-ref"] for r in rows] == [f"img/{i}.png" for i in range(LINES)]
    assert all("cls" in r and "failure-reason" not in r["cls-metadata"] for r in rows)
    job = json.loads((tmp_path / "out" / "j" / "job.json").read_text())
    assert (job["status"], job["metrics"]["success"]) == ("COMPLETED", LINES), job["metrics"]
