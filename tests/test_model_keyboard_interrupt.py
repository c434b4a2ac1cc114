"""A model whose forward raises ``KeyboardInterrupt`` itself was taken for the user's Ctrl-C: the
job stopped STOPPED (exit 130) and every resume met it again. Told apart from a real SIGINT (a
signal handler notes that one, ``_signals.noting_stops``), it fails the image naming the model's
exception; a real SIGINT still interrupts. Real ``file.py:factory`` models, real CLI subprocesses."""

from __future__ import annotations

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


class GivesUp(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.class_names = ["a", "b"]

    def forward(self, x):
        if bool((x == 0).all()):  # the blank image of the check at load
            open(os.environ["MARK"], "w").close()
            time.sleep(float(os.environ.get("SLEEP", "0")))
            return torch.zeros(x.shape[0], 2)
        raise KeyboardInterrupt("the model gave up")


def build():
    return GivesUp()
'''


def _annotate(tmp_path: Path, **env: str) -> subprocess.Popen:
    write_image_manifest(tmp_path, 3)
    (tmp_path / "model.py").write_text(MODEL)
    args = [sys.executable, "-m", "totask_manifest", "annotate", str(tmp_path / "in.manifest"), "--job-name", "j",
            "--label-attribute", "cls", "--task-type", "image-classification", "--method", "inference",
            "--model", f"{tmp_path / 'model.py'}:build", "--input-size", "8", "--allow-root", str(tmp_path),
            "--output", str(tmp_path / "out")]
    return subprocess.Popen(args, env=dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1",
                                           MARK=str(tmp_path / "mark"), **env),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)


def test_a_keyboard_interrupt_the_model_raises_fails_its_images_not_stops_the_job(tmp_path: Path) -> None:
    proc = _annotate(tmp_path)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 1, out + err
    job = orjson.loads((tmp_path / "out/j/job.json").read_bytes())
    assert job["status"] == "FAILED", job
    failures = [orjson.loads(x) for x in (tmp_path / "out/j/failures.jsonl").read_bytes().splitlines()]
    assert len(failures) == 3
    for f in failures:
        assert f["rule"] == "model-error" and f["reason"] == "model: KeyboardInterrupt: the model gave up", f
    assert "Traceback" not in err and "interrupted" not in err


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_real_ctrl_c_during_the_check_at_load_still_interrupts(tmp_path: Path, signum: int, code: int) -> None:
    """The check's one forward is where a real SIGINT could meet Python's default handler (a
    SIGTERM, the CLI's, which raises as Ctrl-C does before a job exists): it still ends the command
    as Ctrl-C does (130, 143, one line, no job folder). A SIGTERM was taken for the model's own
    interrupt, and the job went on."""
    proc = _annotate(tmp_path, SLEEP="30")
    out, err = signal_once_marked(proc, tmp_path / "mark", signum)
    assert proc.returncode == code, out + err
    assert "interrupted" in err and "Traceback" not in err, err
    assert not (tmp_path / "out").exists()
