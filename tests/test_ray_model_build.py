"""A model that loads in the driver's check but not on a Ray worker (out of GPU memory there, a
package missing from the worker's environment): the job says why, in one line, and a worker that
could load it does the work. A model that loads everywhere but fails every image on one worker
(that GPU broken): the worker is taken out, the others label its lines.

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
    def __init__(self, broken=False):
        super().__init__()
        self.class_names = ["a", "b", "c"]
        self.conv = torch.nn.Conv2d(3, 3, 3)
        self.broken = broken  # True: from the start

    def forward(self, x):
        if os.environ.get("FAIL_AFTER_ALL") and self._images_everywhere(len(x)) > int(os.environ["FAIL_AFTER_ALL"]):
            self.broken = True  # every model, whichever build it is, once the workers saw that many images
        if self.broken:
            if os.environ.get("SEGFAULT"):  # a native library's crash: the worker process dies
                import ctypes
                ctypes.string_at(0)
            if os.environ.get("INTERRUPT"):  # the model's own KeyboardInterrupt (no Ctrl-C came)
                raise KeyboardInterrupt("CUDA error: an illegal memory access was encountered")
            raise RuntimeError("CUDA error: an illegal memory access was encountered")
        return self.conv(x).mean(dim=(2, 3))

    @staticmethod
    def _images_everywhere(n):
        """Images every worker's forward calls were given so far, these ``n`` included (one byte
        each, appended): not calls, whose batches grow when the actors' queues do (a loaded machine)."""
        path = os.path.join(os.environ["BUILDS"], "images")
        fd = os.open(path, os.O_CREAT | os.O_APPEND | os.O_WRONLY)
        try:
            os.write(fd, b"." * n)
        finally:
            os.close(fd)
        return os.path.getsize(path)


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
    return Classes(broken=int(os.environ.get("RUN_FAIL_FROM", 99)) <= n <= int(os.environ.get("RUN_FAIL_TO", 99)))
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


def _run(tmp_path: Path, job: str, fail_from: int, fail_to: int, *engine: str,
         run_fail: tuple[int, int] = (99, 99), segfault: bool = False,
         interrupt: bool = False, fail_after_all: int | None = None) -> subprocess.CompletedProcess:
    """``fail_from``-``fail_to``: the builds (0 the driver's check, then the workers') that fail;
    ``run_fail``: the builds whose model fails every image; ``segfault``: a failing
    model crashes its process instead of raising; ``interrupt``: it raises ``KeyboardInterrupt``;
    ``fail_after_all``: every model fails once the workers were given that many images in all
    (which build an actor gets depends on Ray's timing; this does not)."""
    for marker in (tmp_path / "builds").iterdir():
        marker.unlink()
    env = dict(os.environ, PYTHONPATH=str(REPO), BUILDS=str(tmp_path / "builds"),
               FAIL_FROM=str(fail_from), FAIL_TO=str(fail_to), OMP_NUM_THREADS="1",
               RUN_FAIL_FROM=str(run_fail[0]), RUN_FAIL_TO=str(run_fail[1]),
               SEGFAULT="1" if segfault else "", INTERRUPT="1" if interrupt else "",
               FAIL_AFTER_ALL="" if fail_after_all is None else str(fail_after_all))
    env.pop("RAY_LOG_TO_DRIVER", None)
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


def test_model_that_fails_every_image_on_one_worker_is_taken_out_and_the_other_labels_all(tmp_path):
    # the worker built second (build 1 or 2: whichever actor starts first) has a broken GPU
    inp = _setup(tmp_path, lines=48)
    done = _run(tmp_path, "ray", 99, 99, "--engine", "ray", "--ray-num-cpus", "2", "--ray-batch-size", "4",
                run_fail=(1, 1))
    assert done.returncode == 0, done.stderr[-3000:]
    for noise in ("Traceback", "Unhandled error", "File \""):
        assert noise not in done.stderr, done.stderr[-3000:]
    # named once, with its node and the model's error: taken out after three batches other actors labeled
    assert "is taken out" in done.stderr and "illegal memory access" in done.stderr, done.stderr[-3000:]
    job_dir = tmp_path / "out" / "ray"
    job = orjson.loads((job_dir / "job.json").read_bytes())
    assert job["status"] == "COMPLETED" and job["metrics"]["failed"] == 0, job["metrics"]
    assert not (job_dir / "failures.jsonl").exists() or not (job_dir / "failures.jsonl").read_bytes().strip()
    local = _run(tmp_path, "local", 99, 99)
    assert local.returncode == 0, local.stderr
    ray_lines = _labels(job_dir / "manifests" / "output" / "output.manifest")
    assert len(ray_lines) == len(inp.read_bytes().splitlines()) == 48  # each line once
    assert ray_lines == [
        line.replace(b"labeling-job/local", b"labeling-job/ray")
        for line in _labels(tmp_path / "out" / "local" / "manifests" / "output" / "output.manifest")
    ]


@pytest.mark.parametrize("interrupt", [False, True], ids=["raises", "raises-keyboard-interrupt"])
def test_model_that_fails_every_image_on_every_worker_stops_the_job_by_its_fail_fast_rule(tmp_path, interrupt):
    inp = _setup(tmp_path)
    done = _run(tmp_path, "j", 99, 99, "--engine", "ray", "--ray-num-cpus", "2", "--ray-batch-size", "4",
                run_fail=(1, 2), interrupt=interrupt)
    assert done.returncode == 1, done.stderr[-3000:]
    job = orjson.loads((tmp_path / "out" / "j" / "job.json").read_bytes())
    # a KeyboardInterrupt the model raised in a worker is the model's error, as on the local
    # engine: the job FAILED (not STOPPED, which resume would meet again)
    assert job["status"] == "FAILED"
    assert "'model-error'" in job["error"] and "illegal memory access" in job["error"], job["error"]
    assert ("model: KeyboardInterrupt: CUDA error" in job["error"]) is interrupt, job["error"]
    assert "taken out" not in done.stderr  # no worker is blamed for what every worker does
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    assert len((tmp_path / "out" / "j" / "manifests" / "output" / "output.manifest").read_bytes().splitlines()) == 12
    assert inp.exists()


def test_the_last_worker_failing_as_the_one_taken_out_did_stops_the_job_naming_both(tmp_path):
    # one worker broken from the start, every worker after 100 images in all: no worker works any more
    _setup(tmp_path, lines=200)
    done = _run(tmp_path, "j", 99, 99, "--engine", "ray", "--ray-num-cpus", "2", "--ray-batch-size", "4",
                run_fail=(1, 1), fail_after_all=100)
    assert done.returncode == 1, done.stderr[-3000:]
    assert "is taken out" in done.stderr and "Traceback" not in done.stderr, done.stderr[-3000:]
    job = orjson.loads((tmp_path / "out" / "j" / "job.json").read_bytes())
    assert job["status"] == "FAILED"
    error = job["error"]
    assert error.startswith("ray: no actor labels any line: actor ") and "taken out before" in error, error
    assert error.count("illegal memory access") == 2 and "totask-manifest resume" in error, error
    assert "\n" not in error and "\x1b" not in error
    # what was recorded was labeled; the batches that failed on the last worker are left for resume
    assert job["metrics"]["failed"] == 0 and job["metrics"]["success"] >= 20, job["metrics"]


def test_a_worker_that_segfaults_prints_no_dump_on_the_terminal_and_the_job_completes(tmp_path):
    # both workers' first processes crash in the model (a segfault); Ray restarts them, and the
    # restarted ones (builds 3 and 4) work
    inp = _setup(tmp_path)
    done = _run(tmp_path, "j", 99, 99, "--engine", "ray", "--ray-num-cpus", "2", "--ray-batch-size", "4",
                run_fail=(1, 2), segfault=True)
    assert done.returncode == 0, done.stderr[-3000:]
    terminal = done.stdout + done.stderr
    # Ray's forwarding of the dead worker's output, and its raylet's paragraph on stdout
    for noise in ("SIGSEGV", "Fatal Python error", "Stack (most recent call first)", "Extension modules",
                  "AnnotatorActor pid=", "(raylet)", "Traceback", "Some common causes"):
        assert noise not in terminal, terminal[-4000:]
    assert "A worker died" not in done.stdout and all(
        line.startswith(("job ", "metrics: ", "output manifest: ")) for line in done.stdout.splitlines() if line
    ), done.stdout
    # said once per dead worker, in one line, on stderr, with the lost batches
    assert "ray: A worker died or was killed" in done.stderr and "lost with their worker" in done.stderr
    job = orjson.loads((tmp_path / "out" / "j" / "job.json").read_bytes())
    assert job["status"] == "COMPLETED" and job["metrics"]["success"] == 12, job["metrics"]
    assert len((tmp_path / "out" / "j" / "manifests" / "output" / "output.manifest").read_bytes().splitlines()) == len(
        inp.read_bytes().splitlines())


def test_a_raylet_error_reads_as_one_line_naming_the_worker():
    from totask_manifest._engines.ray_output import raylet_line

    text = ("\x1b[33mA worker died or was killed while executing a task by an unexpected system error. To "
            "troubleshoot the problem, check the logs for the dead worker. Lease ID: 0100 Worker ID: 4153 "
            "Node ID: b961 Worker IP address: 192.0.2.2 Worker port: 42999 Worker PID: 19762 Worker exit type: "
            "SYSTEM_ERROR Worker exit detail: Worker unexpectedly exits with a connection error code 2. End of "
            "file. Some common causes include: (1) the process was killed by the OOM killer")
    assert raylet_line(text) == ("A worker died or was killed while executing a task by an unexpected system error "
                                 "(worker IP address 192.0.2.2, PID 19762, exit type SYSTEM_ERROR)")
    assert raylet_line("Something else happened. More.") == "Something else happened."
