"""The Ray engine on a multi-node cluster on this machine (``ray.cluster_utils.Cluster``): a node
removed mid-job costs nothing when the cluster can still run the actors, and a job whose nodes are
all gone stops in a state ``resume`` finishes.

The head has no CPU, so every actor lives on a worker node (1 CPU each) and removing a node
really removes actors; the driver (this process) stays on the head.
"""

from __future__ import annotations

import importlib.util
import os
import threading
import time
from pathlib import Path

import orjson
import pytest

from tests.jobs_helpers import REPO, assert_same_output, file_options, output_of, write_manifest
from tests.support.toy_annotators import InstrumentedToyOptions, ToyClassifier
from totask_manifest import _api as api
from totask_manifest._annotators.base import Item, Outcome
from totask_manifest._engines.base import get_engine
from totask_manifest._jobs.checkpoint import iter_records
from totask_manifest._jobs.config import JobConfig
from totask_manifest._jobs.layout import JobLayout

SAMPLE = REPO / "sample_data"
HAVE_RAY = importlib.util.find_spec("ray") is not None
pytestmark = [
    pytest.mark.ray,
    pytest.mark.slow,
    pytest.mark.skipif(not HAVE_RAY, reason="ray is not installed (pip install 'totask-manifest[ray]')"),
]


PLAIN_TOY = "tests.support.toy_annotators:ToyClassifier"


class NodeLoggingToy(ToyClassifier):
    """The toy classifier, slowed down, logging ``node pid index`` for every line it annotates."""

    name = "node-logging-toy"
    Options = InstrumentedToyOptions

    def annotate_batch(self, items: list[Item]) -> list[Outcome]:
        import ray

        out = super().annotate_batch(items)
        node = ray.get_runtime_context().get_node_id()
        with open(self.context.options["log"], "a") as f:
            f.writelines(f"{node} {os.getpid()} {i.index}\n" for i in items)
        return out


@pytest.fixture(scope="module")
def cluster():
    import ray
    from ray.cluster_utils import Cluster

    if ray.is_initialized():  # pragma: no cover - another module left one running
        ray.shutdown()
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False})
    for _ in range(3):
        c.add_node(num_cpus=1)
    c.wait_for_nodes()
    ray.init(address=c.address, logging_level="WARNING")
    try:
        yield c
    finally:
        ray.shutdown()
        c.shutdown()


def config(root: Path, inp: Path, log: Path | None, job: str = "job") -> JobConfig:
    """The Ray job (``NodeLoggingToy`` writing ``log``), or without ``log`` the plain toy's local
    baseline (an option key the method does not declare is refused)."""
    method, instrument = (f"{__name__}:NodeLoggingToy", {"log": str(log)}) if log else (PLAIN_TOY, {})
    return JobConfig(job_name=job, input=str(inp), output_root=str(root), label_attribute="cls",
                     task_type="image-classification", method=method,
                     options={"fail": "bad", "delay": 0.05, **instrument}, checkpoint_every=10)


def logged(log: Path) -> list[tuple[str, int, int]]:
    rows = [row.split() for row in log.read_text().splitlines()] if log.exists() else []
    return [(node, int(pid), int(index)) for node, pid, index in rows]


def start_job(run) -> tuple[threading.Thread, list]:
    results: list = []
    worker = threading.Thread(target=lambda: results.append(run()))
    worker.start()
    return worker, results


def wait_until(condition, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def once_quiet(log: Path, node: str, seconds: float = 3.0, timeout: float = 120.0) -> int:
    """The lines logged once ``node`` logged nothing for ``seconds``: a node removed without grace
    takes a moment to stop (its workers die after its raylet), longer on a loaded machine, and its
    annotator logs a line every 0.1 s while it runs."""
    deadline = time.monotonic() + timeout
    count, since = -1, time.monotonic()
    while True:
        now = sum(n == node for n, _pid, _i in logged(log))
        if now != count:
            count, since = now, time.monotonic()
        elif time.monotonic() - since >= seconds:
            return len(logged(log))
        assert time.monotonic() < deadline, f"node {node} still logs lines {timeout} s after its removal"
        time.sleep(0.1)


def node_by_id(cluster, node_id: str):
    return next(n for n in cluster.worker_nodes if n.node_id == node_id)


def test_worker_node_removed_mid_job_completes_identical_without_resume(tmp_path, cluster):
    inp = write_manifest(tmp_path / "in.manifest", 120, prelabeled_every=7)
    log = tmp_path / "calls.log"
    local_cfg = config(tmp_path / "local", inp, None)
    local = api.annotate(local_cfg)
    job_dir = tmp_path / "ray" / "job"
    engine = get_engine("ray", address=cluster.address, actors=2, probe_seconds=3.0)
    worker, results = start_job(lambda: api.annotate(config(tmp_path / "ray", inp, log), engine=engine))
    wait_until(lambda: (job_dir / "job.json").exists() and len(JobLayout(str(job_dir)).parts()) >= 1)
    # both actors at work (on a loaded machine one may start seconds after the other)
    wait_until(lambda: len({node for node, _pid, _i in logged(log)}) == 2)
    before = logged(log)
    victim = before[-1][0]  # a node whose actor is working now
    cluster.remove_node(node_by_id(cluster, victim))
    worker.join(timeout=300)
    assert results, "the job did not finish"
    result = results[0]
    assert result.status == "COMPLETED", result.metrics
    assert result.metrics == local.metrics
    assert_same_output(output_of(tmp_path / "local", "job"), output_of(tmp_path / "ray", "job"))
    indices = [r.index for r in iter_records(JobLayout(str(job_dir)))]  # in order, or it raises
    assert len(indices) == len(set(indices)) == local.metrics["total"]
    after = logged(log)[len(before):]
    assert len({node for node, _pid, _i in before}) == 2  # both actors' nodes worked
    assert after and victim not in {node for node, _pid, _i in after[5:]}  # the rest ran elsewhere
    assert len({node for node, _pid, _i in logged(log)}) == 3  # the actor restarted on the spare node


def test_two_nodes_s3_in_and_out_one_killed_the_other_finishes_alone(tmp_path, cluster, s3):
    """The issue's cluster: two worker nodes of 1 CPU, one actor each, input, class names, label
    files and output on S3; one node killed mid-job leaves no room to restart its actor, so the
    driver moves that actor's batches to the other. The job completes by itself, as the local
    engine's, and the first checkpoint part was on S3 within three parts' worth of lines."""
    from totask_manifest._storage import write_bytes_atomic

    while len(cluster.worker_nodes) > 2:  # the first test removed one of three; alone, remove it here
        cluster.remove_node(next(iter(cluster.worker_nodes)))
    bucket = s3.new_bucket("nodes")
    labels = sorted((SAMPLE / "annotations").iterdir())
    for label in labels:
        write_bytes_atomic(f"{bucket}/data/annotations/{label.name}", label.read_bytes())
        image = SAMPLE / "images" / f"{label.stem}.jpg"
        write_bytes_atomic(f"{bucket}/data/images/{image.name}", image.read_bytes())
    rows = [{"source-ref": f"{bucket}/data/images/{labels[i % len(labels)].stem}.jpg",
             "annotation-ref": f"annotations/{labels[i % len(labels)].name}", "n": i} for i in range(200)]
    write_bytes_atomic(f"{bucket}/data/in.manifest", b"".join(orjson.dumps(r) + b"\n" for r in rows))
    write_bytes_atomic(f"{bucket}/data/class_names.txt", (SAMPLE / "class_names.txt").read_bytes())
    options = file_options("--url-key", "annotation-ref", "--class-names", f"{bucket}/data/class_names.txt",
                           "--native", "convert")  # label files resolve against the input manifest's s3:// folder
    log = tmp_path / "calls.log"

    def job(root: str, method: str) -> JobConfig:
        return JobConfig(job_name="job", input=f"{bucket}/data/in.manifest", output_root=root,
                         label_attribute="boxes", task_type="object-detection", method=method,
                         options={**options, **({} if method == "file" else {"log": str(log), "delay": 0.1})},
                         checkpoint_every=10)

    local = api.annotate(job(str(tmp_path / "local"), "file"))
    aws = {k: v for k, v in os.environ.items() if k.startswith("AWS_")}
    engine = get_engine("ray", address=cluster.address, actors=2, probe_seconds=3.0, runtime_env={"env_vars": aws})
    worker, results = start_job(lambda: api.annotate(job(f"{bucket}/jobs", "tests.support.ray_annotators:NodeLoggingFile"),
                                                     engine=engine))
    fs = s3.filesystem()
    parts = f"{bucket[5:]}/jobs/job/manifests/intermediate"

    def first_part() -> bool:
        assert worker.is_alive(), "the job ended before its first part was seen"
        fs.invalidate_cache()
        return fs.exists(parts) and any("part-" in p for p in fs.ls(parts, refresh=True))

    wait_until(first_part)
    annotated_at_first_part = len(logged(log))
    # three parts' worth at most (a part may come sooner: one is also written every 5 s)
    assert annotated_at_first_part <= 30, annotated_at_first_part
    wait_until(lambda: len({node for node, _pid, _i in logged(log)}) == 2)  # both nodes work
    before = logged(log)
    victim = before[-1][0]
    cluster.remove_node(node_by_id(cluster, victim), allow_graceful=False)
    removed_at = once_quiet(log, victim)  # the lines before: the victim's, in flight as it went
    worker.join(timeout=300)
    assert results, "the job did not finish"
    result = results[0]
    assert result.status == "COMPLETED", result.metrics
    assert result.metrics == local.metrics and local.metrics["success"] > 0
    got = tmp_path / "ray.manifest"
    got.write_bytes(fs.cat(f"{bucket}/jobs/job/manifests/output/output.manifest"))
    assert_same_output(output_of(tmp_path / "local", "job"), got)
    after = logged(log)[len(before):]
    survivor = ({node for node, _pid, _i in before} - {victim}).pop()
    assert after and survivor in {node for node, _pid, _i in after}
    # the rest ran on the other node: counted from when the victim stopped logging, not from the
    # removal's return (on a loaded machine its workers logged more than 10 lines after it: the
    # fresh-clone CIs of 2e342f2 and 5b93c89 failed on that timing alone, the job COMPLETED)
    assert {node for node, _pid, _i in logged(log)[removed_at:]} <= {survivor}


def test_every_worker_node_gone_stops_the_job_and_resume_finishes_it(tmp_path, cluster):
    inp = write_manifest(tmp_path / "in.manifest", 80)
    log = tmp_path / "calls.log"
    local_cfg = config(tmp_path / "local", inp, None)
    api.annotate(local_cfg)
    job_dir = tmp_path / "ray" / "job"
    options = {"address": cluster.address, "actors": 1, "probe_seconds": 2.0, "stall_seconds": 6.0}
    engine = get_engine("ray", **options)
    worker, results = start_job(lambda: api.annotate(config(tmp_path / "ray", inp, log), engine=engine))
    wait_until(lambda: (job_dir / "job.json").exists() and len(JobLayout(str(job_dir)).parts()) >= 1)
    for node in list(cluster.worker_nodes):
        cluster.remove_node(node)
    worker.join(timeout=300)
    assert results and results[0].status == "FAILED"
    error = orjson.loads((job_dir / "job.json").read_bytes())["error"]
    assert "no annotator actor has answered" in error and "resume" in error
    done = len(list(iter_records(JobLayout(str(job_dir)))))
    assert 0 < done < results[0].metrics["total"]

    cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    resumed = api.resume(str(job_dir), engine=get_engine("ray", address=cluster.address, actors=1))
    assert resumed.status == "COMPLETED", resumed.metrics
    assert_same_output(output_of(tmp_path / "local", "job"), output_of(tmp_path / "ray", "job"))
    indices = [r.index for r in iter_records(JobLayout(str(job_dir)))]
    assert len(indices) == len(set(indices)) == resumed.metrics["total"]
