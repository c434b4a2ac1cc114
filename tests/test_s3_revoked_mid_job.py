"""A job whose output root is on S3 and whose access key is deleted while it runs (moto's server
that checks credentials: ``tests/support/s3.py: moto_s3_auth``).

The job printed 45 asyncio ``Task was destroyed but it is pending!`` dumps and ended on a bare
``error: Forbidden`` naming no URL, no summary, job.json left RUNNING: the checkpoint's failure
was followed by a listing of the parts (to count what was on S3) that raised S3's bare
``PermissionError`` from inside the job's ``finally``. It ends on one line naming the URL S3
refused (first, or after the fail-fast stop of a streak of refused image fetches: which comes first
is the machine's timing) and saying that the job's state could not be recorded, and that its lease
could not be released either (a warning line of its own before it read as a second failure), and
``resume`` with a working key completes every line once."""

from __future__ import annotations

import re
import time

import orjson
import pytest

from tests.jobs_helpers import popen_cli, run_cli
from tests.support.http_server import slow_labels
from tests.support.s3 import AuthS3, moto_s3_auth

pytestmark = pytest.mark.slow  # a moto server process of its own, a job of a few seconds

LINES = 400
#: the inference job's: with fewer, its image fetches had all ended when the job failed
INFERENCE_LINES = 1500


def _iam(server: AuthS3, key: dict[str, str]):
    import boto3

    return boto3.client("iam", endpoint_url=server.endpoint_url, region_name="us-east-1",
                        aws_access_key_id=key["key"], aws_secret_access_key=key["secret"])


def _s3(server: AuthS3, key: dict[str, str]):
    import boto3

    return boto3.client("s3", endpoint_url=server.endpoint_url, region_name="us-east-1",
                        aws_access_key_id=key["key"], aws_secret_access_key=key["secret"])


def _wait_for_a_part(server: AuthS3, key: dict[str, str], prefix: str, proc) -> None:
    client, deadline = _s3(server, key), time.monotonic() + 60
    while not any(o["Key"].endswith(".ckpt")
                  for o in client.list_objects_v2(Bucket=server.bucket, Prefix=prefix).get("Contents", [])):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "no checkpoint part in 60 s"
        time.sleep(0.05)


#: the inference method's model: 20 ms an image (``SLOW_MODEL_DELAY``), a batch of 16 a third of a second
_SLOW_MODEL = """
import os
import time
import torch


class Slow(torch.nn.Module):
    class_names = ["circle", "square", "triangle"]
    input_size = 16

    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(3, 3)

    def forward(self, x):
        time.sleep(float(os.environ.get("SLOW_MODEL_DELAY", "0.02")) * x.shape[0])
        return self.lin(x.mean(dim=(2, 3)))


def make():
    torch.manual_seed(0)
    return Slow()
"""


def _file_job(tmp_path, server: AuthS3, key: dict[str, str], labels: str) -> list[str]:
    """A local manifest whose label files come slowly from ``labels``: the file method's arguments."""
    manifest = tmp_path / "in.manifest"
    manifest.write_bytes(b"".join(orjson.dumps({"source-ref": f"s3://b/i{i}.jpg", "u": f"{labels}/l{i}.json", "i": i})
                                  + b"\n" for i in range(LINES)))
    return [str(manifest), "--method", "file", "--url-key", "u", "--checkpoint-every", "20"]


def _inference_job(tmp_path, server: AuthS3, key: dict[str, str], labels: str) -> list[str]:
    """Images on the bucket and a slow model: the inference method's arguments (its image fetches
    pending when the job failed were the asyncio dumps)."""
    import io

    pytest.importorskip("torch")
    from PIL import Image

    client = _s3(server, key)
    for i in range(8):
        image = io.BytesIO()
        Image.new("RGB", (24, 16), (30 * i, 60, 70)).save(image, "PNG")
        client.put_object(Bucket=server.bucket, Key=f"img/{i}.png", Body=image.getvalue())
    manifest = tmp_path / "in.manifest"
    manifest.write_bytes(b"".join(orjson.dumps({"source-ref": f"s3://{server.bucket}/img/{i % 8}.png", "i": i})
                                  + b"\n" for i in range(INFERENCE_LINES)))
    (tmp_path / "slow_model.py").write_text(_SLOW_MODEL)
    return [str(manifest), "--method", "inference", "--model", f"{tmp_path / 'slow_model.py'}:make",
            "--checkpoint-every", "100"]


@pytest.mark.parametrize("job", [_file_job, _inference_job], ids=["file", "inference"])
def test_key_deleted_mid_job_one_line_then_resume_completes(job, tmp_path, monkeypatch):
    with slow_labels() as labels, moto_s3_auth(b"") as server:
        old = server.admin
        new = _iam(server, old).create_access_key(UserName="admin")["AccessKey"]
        new = {"key": new["AccessKeyId"], "secret": new["SecretAccessKey"]}
        monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
        root = f"s3://{server.bucket}/root"
        proc = popen_cli("annotate", *job(tmp_path, server, new, labels), "--job-name", "j", "--label-attribute", "cls",
                         "--task-type", "image-classification", "--output", root,
                         env=server.env(old["key"], old["secret"]))
        try:
            _wait_for_a_part(server, new, "root/j/", proc)
            _iam(server, new).delete_access_key(UserName="admin", AccessKeyId=old["key"])
            stdout, stderr = (s.decode() for s in proc.communicate(timeout=120))
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert "Task was destroyed" not in stderr, stderr
        assert "Traceback" not in stderr, stderr
        assert proc.returncode == 2, stderr  # README: job.json that cannot be rewritten, as on a full disk
        last = stderr.strip().splitlines()[-1]
        # Which failure comes first is the machine's timing: the checkpoint's write (the job's own
        # error), or, for the inference method, its image fetches refused in a streak (the fail-fast
        # stop, which then says the same write failed). Either way the line names the URL S3 refused.
        assert last.startswith("totask-manifest annotate: error: "), stderr
        assert re.search(rf"cannot (read|write) {re.escape(root)}/j/", last), stderr
        assert "could not be recorded" in last and "resume with working credentials" in last, stderr
        # the lease S3 refused to release is said in that line, not in a line of its own before it
        assert "could not release" not in stderr, stderr
        assert re.search(rf"its lease could not be released either \({re.escape(root)}/j: [^)]+\): once this process has "
                         r"ended, the next command on this host takes it over at once; before that, or on another "
                         r"host, after 60 s without a heartbeat", last), stderr
        assert old["secret"] not in stdout + stderr

        r = run_cli("resume", f"{root}/j", env={**server.env(new["key"], new["secret"]), "SLOW_MODEL_DELAY": "0"},
                    timeout=240)
        assert r.returncode == 0, r.stderr
        body = _s3(server, new).get_object(Bucket=server.bucket,
                                           Key="root/j/manifests/output/output.manifest")["Body"].read()
        rows = [orjson.loads(line) for line in body.splitlines()]
        lines = len((tmp_path / "in.manifest").read_bytes().splitlines())
        assert [row["i"] for row in rows] == list(range(lines))  # every line once, in order
        assert all("cls" in row for row in rows), body[:2000]
