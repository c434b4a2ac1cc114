"""The Ray engine gives the local engine's results: same output manifests (apart from
``creation-date``) on real Ground Truth manifests and on a file job served over HTTP, through
chaining and resuming, after a worker is killed mid-batch and after the driver is killed.

One local Ray instance (2 CPUs) serves the in-process tests; the subprocess tests start their
own, as the CLI does, and the last step joins the shared one with ``--ray-address``.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

from tests.jobs_helpers import REPO, TOY, assert_same_output, output_of, popen_cli, run_cli, write_manifest
from tests.support.toy_annotators import ToyClassifier
from totask_manifest import api
from totask_manifest.annotators.base import Failed, Item, Labeled, Outcome, Routed
from totask_manifest.jobs.checkpoint import iter_records
from totask_manifest.jobs.config import JobConfig
from totask_manifest.jobs.layout import JobLayout
from totask_manifest.manifest.io import iter_lines_from, read_lines

HAVE_RAY = importlib.util.find_spec("ray") is not None
pytestmark = [
    pytest.mark.ray,
    pytest.mark.skipif(not HAVE_RAY, reason="ray is not installed (pip install 'totask-manifest[ray]')"),
]
GT = Path(__file__).resolve().parents[1].parent / "shared" / "gt-manifests"
DICE = GT / "object-detection-chained-same-attribute__aws-samples-mxnet-dice-aim403-workshop__output.manifest"
FRUIT = GT / "image-classification-input__kkr4353-aws-product-development__dataset-20200530T121341.manifest"
SAMPLE = REPO / "sample_data"
#: small ranges and batches, so that even these small inputs span many blocks and actor calls
SMALL = {"range_lines": 24, "batch_size": 16}
SUICIDAL = f"{__name__}:SuicidalToy"


class SuicidalToy(ToyClassifier):
    """The toy classifier, except that the first worker to reach line index ``kill_at`` kills its
    own process with SIGKILL (once: a marker file remembers it); every call is logged with the
    worker's pid so the test can see the batch was redone by another process."""

    name = "suicidal-toy"

    def annotate_batch(self, items: list[Item]) -> list[Outcome]:
        opts = self.context.options
        with open(opts["log"], "a") as f:
            f.write(f"{os.getpid()} {' '.join(str(i.index) for i in items)}\n")
        marker = Path(opts["marker"])
        if any(i.index >= opts["kill_at"] for i in items) and not marker.exists():
            marker.write_text(str(os.getpid()))
            os.kill(os.getpid(), signal.SIGKILL)
        return super().annotate_batch(items)


class AlwaysDies(ToyClassifier):
    """Kills its worker on every batch: a segfaulting decoder, say."""

    name = "always-dies"

    def annotate_batch(self, items: list[Item]) -> list[Outcome]:
        os.kill(os.getpid(), signal.SIGKILL)
        raise AssertionError("unreachable")


@pytest.fixture(scope="module")
def ray_address():
    import ray

    if ray.is_initialized():  # pragma: no cover - another module left one running
        ray.shutdown()
    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()


def config(root: Path, inp: Path, job: str = "job", **kw) -> JobConfig:
    base = dict(job_name=job, input=str(inp), output_root=str(root), label_attribute="cls",
                task_type="image-classification", method=TOY, options={"fail": "bad"}, checkpoint_every=7)
    base.update(kw)
    return JobConfig(**base)


def records_once_each(job_dir: Path) -> list[int]:
    indices = [r["i"] for r in iter_records(JobLayout(str(job_dir)))]  # raises if out of order
    assert len(indices) == len(set(indices))
    return indices


def job_json(job_dir: Path) -> dict:
    return orjson.loads((job_dir / "job.json").read_bytes())


def wait_for_parts(job_dir: Path, more_than: int = 0, timeout: float = 180.0) -> int:
    layout = JobLayout(str(job_dir))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        n = len(layout.parts()) if (job_dir / "job.json").exists() else 0
        if n > more_than:
            return n
        time.sleep(0.05)
    raise AssertionError(f"no new checkpoint part in {job_dir} within {timeout} s")


# -- pieces that need no cluster ---------------------------------------------------------------

def test_byte_ranges_partition_the_file_and_number_lines(tmp_path):
    from totask_manifest.engines.ray import plan_ranges

    data = (b"\xef\xbb\xbf" + DICE.read_bytes()[:20000] + b"\r\n\n   \n" + FRUIT.read_bytes() + b'{"last":1}')
    path = tmp_path / "mixed.manifest"
    path.write_bytes(data)
    expected = [(line.number, line.raw) for line in read_lines(str(path))]
    for step in (1, 2, 7, 50, 10**9):
        ranges = plan_ranges(str(path), lines_per_range=step)
        assert len(ranges) == -(-len(expected) // step)
        got = []
        for r in ranges:
            with open(path, "rb") as f:
                got += [(x.number, x.raw) for x in iter_lines_from(f, start=r.start, end=r.end,
                                                                   first_number=r.first_number)]
        assert got == expected, step


def test_outcomes_survive_the_trip_through_rows():
    from totask_manifest.engines.ray import decode_outcome, encode_outcome

    for outcome in (Labeled({"annotations": [{"left": 1.5}], "image_size": [{"width": 3}]}, {"class-map": {"0": "a"}}),
                    Labeled(12345678901234567890, {}), Failed("fetch: 404"), Routed("confidence 0.2", {"x": [1]})):
        kind, reason, payload = encode_outcome(outcome)
        assert isinstance(kind, str) and isinstance(reason, str) and isinstance(payload, bytes)
        assert decode_outcome(kind, reason, payload) == outcome


def test_without_ray_the_engine_says_how_to_install_it(tmp_path):
    inp = write_manifest(tmp_path / "in.manifest", 5)
    code = "import sys; sys.modules['ray'] = None; from totask_manifest.cli import main; sys.exit(main(sys.argv[1:]))"
    r = subprocess.run(
        [sys.executable, "-c", code, "annotate", str(inp), "--job-name", "noray", "--label-attribute", "cls",
         "--task-type", "image-classification", "--method", TOY, "--output", str(tmp_path / "out"),
         "--engine", "ray"],
        capture_output=True, text=True, timeout=120, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert r.returncode == 2, r.stderr
    assert "pip install 'totask-manifest[ray]'" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "out" / "noray").exists()  # refused before the job was created


# -- the same results as the local engine -----------------------------------------------------

@pytest.mark.parametrize(("manifest", "fail"), [(DICE, "dice/4"), (FRUIT, "green/0")], ids=["dice", "fruit"])
def test_real_ground_truth_manifest_same_output_as_local(tmp_path, ray_address, manifest, fail):
    local = api.annotate(config(tmp_path / "local", manifest, options={"fail": fail}))
    remote = api.annotate(config(tmp_path / "ray", manifest, options={"fail": fail}),
                          engine="ray", engine_options=SMALL)
    assert local.status == remote.status == "COMPLETED"
    assert remote.metrics == local.metrics
    assert local.metrics["success"] > 0 and local.metrics["failed"] > 0
    assert_same_output(output_of(tmp_path / "local", "job"), output_of(tmp_path / "ray", "job"))
    assert (tmp_path / "ray/job/failures.jsonl").read_bytes() == (tmp_path / "local/job/failures.jsonl").read_bytes()
    assert records_once_each(tmp_path / "ray" / "job") == records_once_each(tmp_path / "local" / "job")
    job = job_json(tmp_path / "ray" / "job")
    assert job["engine"] == "ray" and job["runs"][-1]["engine"] == "ray"


def test_file_method_over_http_same_output_as_local(tmp_path, ray_address):
    from totask_manifest.annotators.file import FileAnnotator
    from totask_manifest.testing.file_server import FileServer

    with FileServer() as server:
        lines = []
        for img in sorted((SAMPLE / "images").glob("*.jpg")):
            label = next((SAMPLE / "annotations").glob(img.stem + ".*"))
            server.add(f"images/{img.name}", img.read_bytes())
            server.add(f"annotations/{label.name}", label.read_bytes())
            lines.append(orjson.dumps({"source-ref": server.url_for(f"images/{img.name}"),
                                       "annotation-ref": server.url_for(f"annotations/{label.name}")}))
        inp = tmp_path / "http.manifest"
        inp.write_bytes(b"\n".join(lines) + b"\n")
        parser = argparse.ArgumentParser()
        FileAnnotator.add_arguments(parser)
        options = FileAnnotator.options_from_args(parser.parse_args(
            ["--url-key", "annotation-ref", "--class-names", str(SAMPLE / "class_names.txt"), "--native", "convert"]))

        def job(root: str) -> JobConfig:
            return config(tmp_path / root, inp, label_attribute="boxes", task_type="object-detection",
                          method="file", options=options)

        local = api.annotate(job("local"))
        remote = api.annotate(job("ray"), engine="ray", engine_options={"batch_size": 8})
    assert local.status == remote.status == "COMPLETED"
    assert remote.metrics == local.metrics and local.metrics["success"] >= 40 and local.metrics["failed"] >= 1
    assert_same_output(output_of(tmp_path / "local", "job"), output_of(tmp_path / "ray", "job"))
    rec = orjson.loads(output_of(tmp_path / "ray", "job").read_bytes().splitlines()[0])
    assert rec["boxes"]["annotations"] and rec["boxes-metadata"]["type"] == "groundtruth/object-detection"


def test_chain_and_resume_with_ray_same_output_as_local(tmp_path, ray_address):
    inp = write_manifest(tmp_path / "in.manifest", 120, prelabeled_every=5)
    # chain: the failed lines are retried under the same attribute, on each engine
    for root, engine in (("local", "local"), ("ray", "ray")):
        first = api.annotate(config(tmp_path / root, inp), engine=engine, engine_options=SMALL if engine == "ray" else {})
        again = api.chain(first.job_url, "retry", label_attribute="cls", options={"fail": ""},
                          engine=engine, engine_options=SMALL if engine == "ray" else {})
        assert again.status == "COMPLETED" and again.metrics["total"] == first.metrics["failed"] > 0
    assert_same_output(output_of(tmp_path / "local", "job"), output_of(tmp_path / "ray", "job"))
    assert_same_output(output_of(tmp_path / "local", "retry"), output_of(tmp_path / "ray", "retry"))

    # resume: a local run killed with -9 after its first checkpoint part, continued on Ray
    proc = popen_cli("annotate", str(inp), "--job-name", "job", "--label-attribute", "cls", "--task-type",
                     "image-classification", "--method", TOY, "--output", str(tmp_path / "killed"),
                     "--toy-delay", "0.02", "--checkpoint-every", "5")
    wait_for_parts(tmp_path / "killed" / "job", timeout=60)
    proc.kill()
    proc.wait(timeout=30)
    done_before = len(records_once_each(tmp_path / "killed" / "job"))
    assert 0 < done_before < job_json(tmp_path / "killed" / "job")["metrics"]["total"]
    result = api.resume(str(tmp_path / "killed" / "job"), engine="ray", engine_options=SMALL)
    assert result.status == "COMPLETED"
    assert_same_output(output_of(tmp_path / "local", "job"), output_of(tmp_path / "killed", "job"))
    assert len(records_once_each(tmp_path / "killed" / "job")) == result.metrics["total"]
    runs = job_json(tmp_path / "killed" / "job")["runs"]
    assert runs[-1]["engine"] == "ray" and runs[-1]["resumed_after_line"] > 1


def test_worker_killed_mid_batch_job_completes_identical(tmp_path, ray_address):
    inp = write_manifest(tmp_path / "in.manifest", 200, prelabeled_every=6)
    # a byte order mark, a blank line, and a last line without a terminator travel too
    inp.write_bytes(b"\xef\xbb\xbf" + inp.read_bytes() + b"  \n" + b'{"source-ref":"s3://bucket/last.jpg","k":1.50}')
    local = api.annotate(config(tmp_path / "local", inp))
    calls, marker = tmp_path / "calls.log", tmp_path / "killed.marker"
    opts = {"fail": "bad", "log": str(calls), "marker": str(marker), "kill_at": 90}
    remote = api.annotate(config(tmp_path / "ray", inp, method=SUICIDAL, options=opts),
                          engine="ray", engine_options=SMALL)
    assert marker.exists(), "the worker was never killed"
    assert remote.status == "COMPLETED" and remote.metrics == local.metrics
    assert_same_output(output_of(tmp_path / "local", "job"), output_of(tmp_path / "ray", "job"))
    assert len(records_once_each(tmp_path / "ray" / "job")) == local.metrics["total"]
    out = output_of(tmp_path / "ray", "job").read_bytes()
    last = out.rsplit(b"\n", 1)[1]
    assert out.startswith(b"\xef\xbb\xbf{") and b"\n  \n{" in out
    assert last.startswith(b'{"source-ref":"s3://bucket/last.jpg","k":1.50,"cls":') and last.endswith(b"}")
    # the batch that died with its worker was annotated again, by another process
    dead_pid = int(marker.read_text())
    calls_by_pid: dict[int, set[int]] = {}
    for row in calls.read_text().splitlines():
        pid, *indices = row.split()
        calls_by_pid.setdefault(int(pid), set()).update(map(int, indices))
    lost = {i for i in calls_by_pid[dead_pid]
            if i >= opts["kill_at"]} - set().union(*(v for k, v in calls_by_pid.items() if k != dead_pid))
    assert len(calls_by_pid) >= 2 and not lost


def test_worker_dying_on_every_try_fails_the_job_instead_of_looping(tmp_path, ray_address):
    inp = write_manifest(tmp_path / "in.manifest", 30)
    result = api.annotate(config(tmp_path, inp, method=f"{__name__}:AlwaysDies"),
                          engine="ray", engine_options={"max_retries": 1, "batch_size": 16})
    assert result.status == "FAILED"
    job = job_json(tmp_path / "job")
    assert "ActorDiedError" in job["error"] and job["metrics"]["stand_by"] == job["metrics"]["total"]
    # the output manifest is still whole: every line, as it was
    assert output_of(tmp_path, "job").read_bytes() == inp.read_bytes()


# -- the CLI: a killed driver, a stopped driver, resumed on Ray ---------------------------------

def test_driver_killed_then_stopped_then_resumed_with_ray(tmp_path, ray_address):
    inp = write_manifest(tmp_path / "in.manifest", 300, prelabeled_every=9)
    ref = run_cli("annotate", str(inp), "--job-name", "job", "--label-attribute", "cls", "--task-type",
                  "image-classification", "--method", TOY, "--output", str(tmp_path / "local"))
    assert ref.returncode == 0, ref.stderr
    job_dir = tmp_path / "ray" / "job"
    env = {"TOTASK_RAY_BATCH_SIZE": "8", "TOTASK_RAY_NUM_CPUS": "2"}

    # 1. kill -9 the driver (it started its own Ray) after its first checkpoint part
    proc = popen_cli("annotate", str(inp), "--job-name", "job", "--label-attribute", "cls", "--task-type",
                     "image-classification", "--method", TOY, "--output", str(tmp_path / "ray"),
                     "--toy-delay", "0.02", "--checkpoint-every", "5", "--engine", "ray", env=env)
    try:
        wait_for_parts(job_dir)
    finally:
        proc.kill()
        proc.wait(timeout=60)
    assert job_json(job_dir)["status"] == "RUNNING"
    killed_at = len(records_once_each(job_dir))

    # 2. resume on Ray, stopped with SIGINT: lines in flight are finished, the output is complete
    proc = popen_cli("resume", str(job_dir), "--engine", "ray", env=env)
    parts = len(JobLayout(str(job_dir)).parts())
    try:
        wait_for_parts(job_dir, more_than=parts)
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + signal.SIGINT, err.decode()
    state = job_json(job_dir)
    assert state["status"] == "STOPPED" and state["runs"][-1]["engine"] == "ray"
    stopped_at = len(records_once_each(job_dir))
    assert killed_at < stopped_at < state["metrics"]["total"]
    src = inp.read_bytes().splitlines(keepends=True)
    got = output_of(tmp_path / "ray", "job").read_bytes().splitlines(keepends=True)
    assert len(got) == len(src) and sum(a != b for a, b in zip(src, got, strict=True)) == stopped_at

    # 3. resume on the running cluster named by --ray-address
    r = run_cli("resume", str(job_dir), "--engine", "ray", "--ray-address", ray_address, timeout=300)
    assert r.returncode == 0, r.stderr
    assert job_json(job_dir)["status"] == "COMPLETED"
    assert_same_output(output_of(tmp_path / "local", "job"), output_of(tmp_path / "ray", "job"))
    assert len(records_once_each(job_dir)) == job_json(job_dir)["metrics"]["total"]
