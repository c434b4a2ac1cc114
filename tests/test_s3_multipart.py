"""Unfinished multipart uploads on S3 (a moto server on 127.0.0.1). s3fs writes a file larger than
its block size (50 MiB by default, 5 MiB here) as a multipart upload; a writer killed part way
(``kill -9``, the OOM killer) neither completes nor aborts it, and its parts stay stored and billed,
invisible in a listing. The next ``labeled``/``convert``/``export`` to the same place aborts the
uploads of a killed writer's temporaries, by the age rule of the temporaries themselves; a writer
that fails or is interrupted in its own process aborts its own upload."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import fsspec
import pytest

from tests.jobs_helpers import REPO, TOY, write_manifest
from tests.test_convert_interrupted import boxes
from totask_manifest import _api as api
from totask_manifest import _stale_temporaries
from totask_manifest._analytics.labeled_only import labeled_only
from totask_manifest._errors import StorageError
from totask_manifest._jobs.config import JobConfig
from totask_manifest._jobs.job import Job
from totask_manifest._jobs.layout import JobLayout
from totask_manifest._storage import AtomicWriter

BLOCK = 5 * 2**20  # S3's smallest part

#: an ``AtomicWriter`` of ``sys.argv[1]`` that has uploaded its first part, says so, then waits
#: (to be killed, or for a Ctrl-C)
WRITE_ONE_PART = f"""
import sys, time
import fsspec
fsspec.config.conf.setdefault("s3", {{}})["default_block_size"] = {BLOCK}
from totask_manifest._storage import AtomicWriter
with AtomicWriter(sys.argv[1]) as f:
    f.write(b"x" * ({BLOCK} + 1))  # over one block: its part is uploaded before write returns
    print("part", flush=True)
    time.sleep(300)
"""


def _uploads(fs, bucket: str) -> list[str]:
    """The keys of the bucket's unfinished multipart uploads."""
    return sorted(u["Key"] for u in fs.call_s3("list_multipart_uploads", Bucket=bucket).get("Uploads", []))


def _write_one_part(url: str) -> subprocess.Popen:
    writer = subprocess.Popen([sys.executable, "-c", WRITE_ONE_PART, url], stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": str(REPO)})
    assert writer.stdout.readline() == "part\n", writer.communicate()
    return writer


@pytest.mark.slow
def test_a_killed_writers_unfinished_upload_is_aborted_by_the_next_labeled(s3, tmp_path: Path, monkeypatch) -> None:
    """Before: ``kill -9`` during the upload of a large ``labeled`` output left its multipart upload
    for good; every later ``labeled`` removed only temporaries that had become objects, and an
    unfinished upload never becomes one."""
    fs = s3.filesystem()
    bucket = s3.new_bucket().removeprefix("s3://")
    dst = f"s3://{bucket}/out/labeled.manifest"
    writer = _write_one_part(dst)
    writer.kill()
    writer.wait(30)
    left = _uploads(fs, bucket)
    assert len(left) == 1 and left[0].startswith("out/.tmp-labeled.manifest-")  # the parts stay, unseen
    assert not fs.find(f"{bucket}/out")
    # beside it: another output's temporary, and an upload of no temporary (a user's own)
    fs.call_s3("create_multipart_upload", Bucket=bucket, Key="out/.tmp-labeled.manifest.bak-" + "0" * 32)
    fs.call_s3("create_multipart_upload", Bucket=bucket, Key="out/labeled.manifest")
    src = str(boxes(tmp_path / "in.manifest", 3))
    # moto says every upload was initiated on 2010-11-10 (a fixed date in its answer): a grace
    # longer than the years since then makes this one as fresh as a live writer's, which is kept
    monkeypatch.setattr(_stale_temporaries, "OBJECT_TEMPORARY_GRACE_S", 1000 * 365 * 86400.0)
    labeled_only(src, dst, "boxes")
    assert left[0] in _uploads(fs, bucket)
    monkeypatch.setattr(_stale_temporaries, "OBJECT_TEMPORARY_GRACE_S", 0.0)  # as if an hour had passed
    labeled_only(src, dst, "boxes")
    assert _uploads(fs, bucket) == ["out/.tmp-labeled.manifest.bak-" + "0" * 32, "out/labeled.manifest"]
    assert fs.cat(dst).count(b"\n") == 3


@pytest.mark.slow
def test_a_yolo_folders_cleanup_aborts_uploads_only_where_its_export_writes(s3, monkeypatch) -> None:
    """``convert --to yolo``'s clean-up covers the folder's top and ``labels/`` below it, not a
    user's other subfolders or a folder beside it; the same for unfinished uploads."""
    fs = s3.filesystem()
    bucket = s3.new_bucket().removeprefix("s3://")
    hexa = "0123456789abcdef" * 2
    keys = {"ds/.tmp-classes.txt-" + hexa: True, "ds/labels/f0/g0/.tmp-img0.txt-" + hexa: True,
            "ds/notes/.tmp-draft.txt-" + hexa: False, "ds-other/.tmp-x-" + hexa: False,
            "ds/labels/f0/img1.txt": False}
    for key in keys:
        fs.call_s3("create_multipart_upload", Bucket=bucket, Key=key)
    monkeypatch.setattr(_stale_temporaries, "OBJECT_TEMPORARY_GRACE_S", 0.0)
    removed = _stale_temporaries.remove_stale_temporaries(f"s3://{bucket}/ds", under=("labels",))
    assert sorted(removed) == sorted(f"{bucket}/{k}" for k, stale in keys.items() if stale)
    assert _uploads(fs, bucket) == sorted(k for k, stale in keys.items() if not stale)


@pytest.mark.slow
def test_ctrl_c_during_an_upload_aborts_it(s3) -> None:
    fs = s3.filesystem()
    bucket = s3.new_bucket().removeprefix("s3://")
    writer = _write_one_part(f"s3://{bucket}/out.manifest")
    assert len(_uploads(fs, bucket)) == 1
    writer.send_signal(signal.SIGINT)
    writer.communicate(timeout=60)
    assert writer.returncode != 0
    assert _uploads(fs, bucket) == []
    assert not fs.find(bucket)


@pytest.mark.slow
def test_a_write_that_fails_after_its_first_part_aborts_its_upload(s3, monkeypatch) -> None:
    fs = s3.filesystem()
    bucket = s3.new_bucket().removeprefix("s3://")
    monkeypatch.setitem(fsspec.config.conf, "s3", {**fsspec.config.conf["s3"], "default_block_size": BLOCK})
    with pytest.raises(ValueError, match="a bad line"), AtomicWriter(f"s3://{bucket}/out.manifest") as f:
        f.write(b"x" * (BLOCK + 1))
        assert len(_uploads(fs, bucket)) == 1
        raise ValueError("a bad line")
    assert _uploads(fs, bucket) == []
    assert not fs.find(bucket)


@pytest.mark.slow
def test_a_commit_that_fails_aborts_its_upload(s3, monkeypatch) -> None:
    """The last step refused (a policy that denies ``CompleteMultipartUpload``, say): the upload
    whose parts were all sent is aborted too, and the error names the output."""
    import s3fs

    fs = s3.filesystem()
    bucket = s3.new_bucket().removeprefix("s3://")
    monkeypatch.setitem(fsspec.config.conf, "s3", {**fsspec.config.conf["s3"], "default_block_size": BLOCK})

    def refused(self) -> None:
        raise PermissionError("Forbidden")

    monkeypatch.setattr(s3fs.core.S3File, "commit", refused)
    with pytest.raises(StorageError, match=f"cannot write s3://{bucket}/out.manifest: Forbidden"), \
            AtomicWriter(f"s3://{bucket}/out.manifest") as f:
        f.write(b"x" * (BLOCK + 1))
    assert _uploads(fs, bucket) == []
    assert not fs.find(bucket)


@pytest.mark.slow
def test_resume_aborts_the_upload_a_killed_run_left_in_its_job_folder(s3, tmp_path: Path) -> None:
    """Before: ``resume`` removed the temporaries a killed run had left in its job folder, but
    not an unfinished upload (a run killed while it uploaded its output manifest or a checkpoint
    part over s3fs's block size): its parts stayed for good. The run holds the job's lease, so
    no live writer owns one, whatever its age; the lease's folder and other folders are left."""
    fs = s3.filesystem()
    bucket = s3.new_bucket().removeprefix("s3://")
    inp = write_manifest(tmp_path / "in.manifest", 12, bad_every=0)
    config = JobConfig(job_name="m", input=str(inp), output_root=f"s3://{bucket}/jobs", label_attribute="cls",
                       task_type="image-classification", method=TOY)
    result = api.annotate(config)
    assert result.status == "COMPLETED"
    writer = _write_one_part(JobLayout(result.job_url).output_manifest)
    writer.kill()
    writer.wait(30)
    others = ["jobs/m/.lease/.tmp-lease-" + "0" * 32, "jobs/m2/manifests/output/.tmp-output.manifest-" + "0" * 32]
    for key in others:
        fs.call_s3("create_multipart_upload", Bucket=bucket, Key=key)
    assert len(_uploads(fs, bucket)) == 3
    state = Job.open(result.job_url).state
    state.status = "STOPPED"
    state.save()
    assert api.resume(result.job_url).status == "COMPLETED"
    assert _uploads(fs, bucket) == sorted(others)
