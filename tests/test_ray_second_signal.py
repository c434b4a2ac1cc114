"""Signals under `--engine ray` stop the job as on the local engine.

SIGTERM while Ray starts: ``ray.init`` installs its own SIGTERM handler (``sys.exit(15)``) for
as long as it runs, so a SIGTERM then ended the job FAILED, "the annotator called sys.exit(15)",
exit 1. It is a stop: STOPPED, exit 143, nothing lost.

A second Ctrl-C (or SIGTERM) under `--engine ray` leaves at once, as on the local engine.

The second signal's handler raises ``HardStop`` in the main thread. Under Ray the driver spends
its time in ``ray.wait``, a Cython call that runs Python's signal handlers itself and turns an
exception raised there into ``SystemError: <cyfunction CoreWorker.wait ...> returned a result
with an exception set``: the job ended FAILED with that error and a traceback, exit 1, where the
README promises a stop (STOPPED, exit 143, lines in flight redone on resume).

A signal while the job shuts its private Ray down: the driver's core worker (C++) had a crash
handler that took SIGTERM, and ``ray.shutdown`` set SIGTERM back to its default disposition below
Python. A stop that came as the last batches ended, then a second signal, killed the process by
SIGTERM (returncode -15), job.json left RUNNING (seen once in CI, in the second test below).
"""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import orjson
import pytest

from tests.jobs_helpers import REPO, TOY, popen_cli, run_cli, write_manifest
from totask_manifest._jobs.layout import JobLayout

pytestmark = [
    pytest.mark.ray,
    pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="ray is not installed"),
]


def _job_json(job_dir: Path) -> dict:
    return orjson.loads((job_dir / "job.json").read_bytes())


def test_sigterm_while_ray_starts_stops_the_job(tmp_path: Path) -> None:
    inp = write_manifest(tmp_path / "in.manifest", 50, bad_every=0)
    job_dir = tmp_path / "out" / "job"
    proc = popen_cli("annotate", str(inp), "--job-name", "job", "--label-attribute", "cls", "--task-type",
                     "image-classification", "--method", TOY, "--output", str(tmp_path / "out"),
                     "--engine", "ray", env={"TOTASK_RAY_NUM_CPUS": "2"})
    try:
        deadline = time.monotonic() + 120
        while not (job_dir / "job.json").exists() or _job_json(job_dir)["status"] != "RUNNING":
            assert proc.poll() is None, proc.communicate()[1].decode()
            assert time.monotonic() < deadline, "the job did not start in time"
            time.sleep(0.02)
        time.sleep(0.5)  # into ray.init, which takes seconds to start a private instance
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    text = err.decode()
    assert proc.returncode == 128 + signal.SIGTERM, text
    assert "sys.exit" not in text and "Traceback" not in text, text
    state = _job_json(job_dir)
    assert state["status"] == "STOPPED", state.get("error")
    done = run_cli("resume", str(job_dir), "--engine", "local", timeout=300)
    assert done.returncode == 0, done.stderr
    assert _job_json(job_dir)["metrics"]["success"] == 50


def test_a_second_signal_on_ray_stops_the_job_at_once_and_resume_finishes_it(tmp_path: Path) -> None:
    inp = write_manifest(tmp_path / "in.manifest", 200, bad_every=0)
    job_dir = tmp_path / "out" / "job"
    # a second a line on Ray (the actors inherit TOY_DELAY), none for the resume below
    env = {"TOTASK_RAY_BATCH_SIZE": "8", "TOTASK_RAY_NUM_CPUS": "2", "TOY_DELAY": "1"}
    proc = popen_cli("annotate", str(inp), "--job-name", "job", "--label-attribute", "cls", "--task-type",
                     "image-classification", "--method", TOY, "--output", str(tmp_path / "out"),
                     "--checkpoint-every", "5", "--engine", "ray", env=env)
    try:
        deadline = time.monotonic() + 180
        while not JobLayout(str(job_dir)).parts():  # annotating: the driver waits in ray.wait
            assert proc.poll() is None, proc.communicate()[1].decode()
            assert time.monotonic() < deadline, "the job made no checkpoint in time"
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        # the batches in flight take seconds (a second a line): the second signal mostly comes while
        # the driver waits for them in ray.wait; where the first came as the last batches ended, it
        # comes while the engine shuts Ray down (the last test here)
        time.sleep(0.3)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    text = out.decode() + err.decode()
    assert proc.returncode == 128 + signal.SIGTERM, text
    assert "Traceback" not in text and "SystemError" not in text, text
    state = orjson.loads((job_dir / "job.json").read_bytes())
    assert state["status"] == "STOPPED", state.get("error")
    assert state["metrics"]["success"] < 200

    done = run_cli("resume", str(job_dir), "--engine", "local", timeout=300)
    assert done.returncode == 0, done.stderr
    state = orjson.loads((job_dir / "job.json").read_bytes())
    assert state["status"] == "COMPLETED" and state["metrics"]["success"] == state["metrics"]["total"] == 200


#: starts a private Ray through the engine, then sends itself SIGTERM every 2 ms while the engine
#: shuts it down; its own handler counts them. Killed by one, it ends with returncode -15.
_FLOOD_DURING_SHUTDOWN = textwrap.dedent("""
    import os, signal, threading, time, types
    from totask_manifest._engines.ray import RayEngine, RayOptions, shutdown_private_instance

    got = []
    mine = lambda signum, frame: got.append(signum)  # noqa: E731
    signal.signal(signal.SIGTERM, mine)
    assert RayEngine(RayOptions(num_cpus=1))._connect(types.SimpleNamespace(building=threading.Event()))  # the run's stop flag
    sent = []
    done = threading.Event()

    def flood():
        while not done.is_set():
            os.kill(os.getpid(), signal.SIGTERM)
            sent.append(1)
            time.sleep(0.002)

    flooding = threading.Thread(target=flood)
    flooding.start()
    try:
        shutdown_private_instance()
    finally:
        done.set()
        flooding.join()
    time.sleep(0.1)  # the last ones reach the handler
    os.kill(os.getpid(), signal.SIGTERM)  # one more, after: the handler put back is this one
    time.sleep(0.1)
    print(len(sent), len(got), signal.getsignal(signal.SIGTERM) is mine)
""")


def test_sigterm_while_the_engine_shuts_ray_down_reaches_the_handler(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-c", _FLOOD_DURING_SHUTDOWN], capture_output=True, timeout=180,
                          cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 0, (done.returncode, done.stderr.decode()[-2000:])
    sent, got, handled = done.stdout.split()[-3:]
    assert int(sent) > 10, "the shutdown was too quick to be flooded"
    assert int(got) >= 2 and handled == b"True", done.stdout
