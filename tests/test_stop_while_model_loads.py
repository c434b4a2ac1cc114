"""A stop signal while a job builds its annotator (its model loading) stops it at once: no line is
in flight yet. ``resume`` said "stopping: finishing lines in flight (signal again to stop at once)",
waited for the whole load (a factory that sleeps 15 s) and exited 130 after 12 s, where
``annotate`` (whose check loads the model before the job exists) stopped at once. Now each job
command says ``totask-manifest COMMAND: interrupted``, 128 + the signal's number, and the job is left
STOPPED with its checkpoint as it was: resumable. ``chain`` and ``clone`` load the model twice (the
check, then the job's own): the signal comes during the second. Real parts: a ``model.py``
factory that sleeps once told to, the CLI as a subprocess, a real job."""

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
from tests.test_ctrl_c_edges import assert_no_lease_held
from totask_manifest._jobs.config import JobConfig

pytestmark = pytest.mark.slow

#: the factory's load number LOADS (counted in the file COUNT) writes MARK and sleeps until killed
MODEL = '''
import os
import time
import torch


def build():
    count = os.environ.get("COUNT")
    if count:
        with open(count, "a") as f:
            f.write("x")
        if os.path.getsize(count) == int(os.environ["SLOW_AT"]):
            open(os.environ["MARK"], "w").close()
            time.sleep(300)
    net = torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(3, 2))
    net.class_names = ["a", "b"]
    return net
'''


@pytest.fixture
def stopped(tmp_path: Path) -> Path:
    """A job STOPPED after its first line (its ``on_progress`` raises ``KeyboardInterrupt``: the
    Python API's Ctrl-C), one image a batch."""
    from totask_manifest._api import annotate

    write_image_manifest(tmp_path, 4)
    (tmp_path / "model.py").write_text(MODEL)

    def stop(metrics: dict[str, int]) -> None:
        raise KeyboardInterrupt

    options = {"model": f"{tmp_path / 'model.py'}:build", "input_size": "8", "batch_size": 1,
               "allow_root": str(tmp_path), "device": "cpu"}
    config = JobConfig("j", str(tmp_path / "in.manifest"), str(tmp_path / "out"), "cls", "image-classification",
                       method="inference", options=options, checkpoint_every=1)
    with pytest.raises(KeyboardInterrupt):
        annotate(config, on_progress=stop)
    job = tmp_path / "out" / "j"
    assert orjson.loads((job / "job.json").read_bytes())["status"] == "STOPPED"
    return job


def _checkpoint(job: Path) -> dict[str, bytes]:
    folder = job / "manifests" / "intermediate"
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def _cli(args: list[str], tmp_path: Path, **env: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "totask_manifest", *args], cwd=tmp_path, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1", **env))


#: command -> its arguments after the job folder, and which load of the model is the job's own
COMMANDS = {
    "resume": ([], 1),
    "chain": (["--job-name", "next", "--label-attribute", "cls2"], 2),
    "clone": (["--job-name", "next"], 2),
}


@pytest.mark.parametrize(("command", "sent"), [("resume", signal.SIGINT), ("resume", signal.SIGTERM),
                                               ("chain", signal.SIGINT), ("clone", signal.SIGINT)])
def test_a_stop_while_the_model_loads_ends_the_command_at_once(tmp_path: Path, stopped: Path, command: str,
                                                               sent: signal.Signals) -> None:
    extra, slow_at = COMMANDS[command]
    job = stopped if command == "resume" else tmp_path / "out" / "next"
    before = _checkpoint(stopped)
    proc = _cli([command, str(stopped), *extra], tmp_path, COUNT=str(tmp_path / "count"), SLOW_AT=str(slow_at),
                MARK=str(tmp_path / "mark"))
    out, err = signal_once_marked(proc, tmp_path / "mark", sent)  # fails the test where it waits out the load
    assert proc.returncode == 128 + sent, out + err
    assert err.splitlines()[-1] == f"totask-manifest {command}: interrupted", err
    assert "stopping: finishing lines in flight" not in err and "Traceback" not in err, err
    state = orjson.loads((job / "job.json").read_bytes())
    assert state["status"] == "STOPPED" and state["runs"][-1]["signal"] == sent, state
    assert_no_lease_held(job)
    if command == "resume":
        assert _checkpoint(stopped) == before
    again = _cli(["resume", str(job)], tmp_path)  # as resumable as before
    out, err = again.communicate(timeout=300)
    assert again.returncode == 0, out + err
    assert orjson.loads((job / "job.json").read_bytes())["status"] == "COMPLETED"
