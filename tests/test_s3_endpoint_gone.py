"""A job whose output root is on S3 when the S3 endpoint goes away mid-job: the run's next
checkpoint asks the lease whether it still holds the folder, and that listing failed with
botocore's ``EndpointConnectionError``, which the job logged as a whole traceback ("job j
failed" and some 130 lines). Now it is one line naming the lease folder, as a full disk is.
Real parts: moto's S3 server in its own process (killed by the test), the CLI as a subprocess,
the label files on an HTTP server on 127.0.0.1: the first part's lines are answered once a save of
job.json's counters is due (it follows the part), the rest only once S3 is gone, so the next
storage call the job makes is that lease check."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import orjson
import pytest
from aiohttp import web

from tests.jobs_helpers import REPO, popen_cli
from tests.support.http_server import LocalHTTPServer
from totask_manifest._jobs.execute import METRICS_SECONDS

PART = 20

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(condition, what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def test_an_s3_endpoint_gone_mid_job_fails_it_in_one_line_without_a_traceback(tmp_path: Path) -> None:
    pytest.importorskip("s3fs")
    import boto3

    sample = REPO / "sample_data"
    bodies = {"/a.json": (sample / "annotations" / "img_000.json").read_bytes(),
              "/a.jpg": (sample / "images" / "img_000.jpg").read_bytes()}
    first, gate = threading.Event(), threading.Event()

    async def answer(request: web.Request) -> web.Response:
        # the first part's lines once a save of job.json's counters is due; the rest once S3 is gone
        held = {"first": first, "rest": gate}.get(request.query.get("wait", ""))
        while held is not None and not held.is_set():
            await asyncio.sleep(0.02)
        return web.Response(body=bodies[request.path])

    port = _free_port()
    endpoint = f"http://127.0.0.1:{port}"
    env = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
           "AWS_ENDPOINT_URL": endpoint, "AWS_MAX_ATTEMPTS": "2",
           "TOTASK_LEASE_TIMEOUT": "3600"}  # no heartbeat while the test runs: the job's own calls only
    moto = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    job = None
    try:
        def listening() -> bool:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                return True
            return False

        _wait(listening, "moto to listen")
        s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")
        s3.create_bucket(Bucket="out")
        with LocalHTTPServer(answer) as files:
            manifest = tmp_path / "in.manifest"
            manifest.write_bytes(b"".join(orjson.dumps({
                "source-ref": files.url("a.jpg"), "n": i,
                "annotation-ref": files.url("a.json") + ("?wait=rest" if i >= PART else "?wait=first")}) + b"\n"
                for i in range(3 * PART)))
            job = popen_cli("annotate", str(manifest), "--job-name", "j", "--label-attribute", "boxes",
                            "--task-type", "object-detection", "--method", "file", "--url-key", "annotation-ref",
                            "--class-names", str(sample / "class_names.txt"), "--native", "convert",
                            "--output", "s3://out/", "--checkpoint-every", str(PART), env=env)

            def job_json() -> dict:  # as S3 has it ({} before the job wrote it)
                assert job.poll() is None, job.communicate()
                if not s3.list_objects_v2(Bucket="out", Prefix="j/job.json").get("Contents"):
                    return {}
                return orjson.loads(s3.get_object(Bucket="out", Key="j/job.json")["Body"].read())

            # job.json's counters are saved after a part at most every METRICS_SECONDS from the run's
            # start: the first part's lines wait until a save is due, then the test waits for that
            # save to be on S3; after it the job makes no storage call until the gate. A fixed second
            # after the part, before, assumed the save was over by then: on a loaded machine S3 could
            # go away in the middle of it, and job.json's write, not the lease check, fail first
            _wait(lambda: bool(job_json().get("runs")), "the run's start in job.json")
            time.sleep(METRICS_SECONDS + 0.5)  # at least: a slower machine only makes it later
            first.set()
            _wait(lambda: sum(job_json()["metrics"].get(k, 0) for k in ("success", "failed")) > 0,
                  "job.json's counters saved after the first checkpoint part")
            moto.terminate()
            moto.wait(timeout=30)
            gate.set()
            out, err = (b.decode() for b in job.communicate(timeout=300))
    finally:
        first.set()
        gate.set()
        if job is not None and job.poll() is None:
            job.kill()
            job.communicate()
        if moto.poll() is None:
            moto.terminate()
            moto.wait(timeout=30)
    assert job.returncode != 0, (out, err)
    assert "Traceback" not in err, err[-3000:]
    assert f"cannot read s3://out/j/.lease: EndpointConnectionError: Could not connect to the endpoint URL: " \
           f"\"{endpoint}/out" in err, err[-3000:]
