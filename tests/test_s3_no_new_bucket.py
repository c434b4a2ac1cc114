"""A write to a bucket that does not exist creates no bucket.

Every atomic write made its parent folder first, and on S3 s3fs's ``makedirs`` of
``bucket/prefix`` creates the bucket when it is missing: ``convert ... s3://typo-bucket/o.parquet``
made a new bucket in the user's account, in the default region, and wrote there, reporting
success. An object store has no folders to make; a missing bucket is the user's mistake, refused
in one line naming the URL (exit 2, as any storage URL that cannot be written), and nothing is made.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import boto3
import pytest

from tests.support.s3 import S3Endpoint

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow  # a moto server per module


def _buckets(s3: S3Endpoint) -> set[str]:
    opts = s3.storage_options
    client = boto3.client("s3", endpoint_url=s3.endpoint_url, aws_access_key_id=opts["key"],
                          aws_secret_access_key=opts["secret"], aws_session_token=opts["token"],
                          region_name="us-east-1")
    return {b["Name"] for b in client.list_buckets()["Buckets"]}


ANNOTATE = ["--job-name", "j", "--label-attribute", "boxes", "--task-type", "object-detection",
            "--method", "file", "--url-key", "annotation-ref", "--allow-root", str(REPO / "sample_data")]


@pytest.mark.parametrize("command", [
    ["convert", "{m}", "{b}/out/o.parquet", "--to", "parquet"],
    ["convert", "{m}", "{b}/o.parquet", "--to", "parquet"],
    ["labeled", "{o}", "--label-attribute", "boxes", "-o", "{b}/l.manifest"],
    ["annotate", "{m}", *ANNOTATE, "--output", "{b}/jobs"],
], ids=lambda c: f"{c[0]}-{c[2] if c[0] == 'convert' else ''}")
def test_a_missing_bucket_is_refused_not_created(s3: S3Endpoint, command, tmp_path):
    """In a child process, configured as a user's shell is (credentials, region and endpoint in the
    environment): with a region in s3fs's own options the bucket's creation failed by chance
    (S3 refuses ``LocationConstraint: us-east-1``), which hid the bug from in-process tests."""
    labeled = tmp_path / "labeled.manifest"
    labeled.write_bytes(b'{"source-ref":"s3://b/1.jpg","boxes":{"annotations":[]},'
                        b'"boxes-metadata":{"type":"groundtruth/object-detection"}}\n')
    bucket = f"no-such-bucket-{uuid.uuid4().hex[:12]}"
    before = _buckets(s3)
    args = [a.format(m=str(REPO / "sample_data" / "manifest.jsonl"), o=str(labeled), b=f"s3://{bucket}")
            for a in command]
    done = subprocess.run([sys.executable, "-m", "totask_manifest", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    err = done.stderr.strip()
    assert len(err.splitlines()) == 1, err
    assert bucket in err and "Traceback" not in err, err
    assert _buckets(s3) == before
