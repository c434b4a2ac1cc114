"""A job folder on a file system without locks (``flock`` fails, as on some network mounts) or
without hard links. The job lease takes its generation files with ``os.link`` and never uses
``flock``, so a job runs, is stopped and resumed there as anywhere; ``flock`` serves only the
atomic writer's temporaries (judged stale by ``convert``, kept when it fails). Where hard links
are missing the lease cannot be taken: the refusal names the folder, the reason and what to do,
and leaves no empty folder behind."""

from __future__ import annotations

import errno
import fcntl
import os

import pytest

from tests.jobs_helpers import TOY, write_manifest
from totask_manifest import _api as api
from totask_manifest._errors import StorageError
from totask_manifest._jobs import lease as lease_mod
from totask_manifest._jobs.config import JobConfig


@pytest.fixture
def no_flock(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []

    def flock(fd: int, op: int) -> None:
        calls.append(fd)
        raise OSError(errno.ENOLCK, os.strerror(errno.ENOLCK))

    monkeypatch.setattr(fcntl, "flock", flock)
    return calls


def _config(inp, out, name="j") -> JobConfig:
    return JobConfig(job_name=name, input=str(inp), output_root=str(out), label_attribute="cls",
                     task_type="image-classification", method=TOY, checkpoint_every=3)


def test_a_job_runs_and_resumes_where_flock_fails(tmp_path, no_flock):
    inp = write_manifest(tmp_path / "in.manifest", 12, bad_every=0)
    result = api.annotate(_config(inp, tmp_path / "out"))
    assert result.status == "COMPLETED" and result.metrics["success"] == 12
    assert no_flock  # flock was tried (the atomic writer's temporaries) and failed, with no effect on the job
    assert api.resume(result.job_url).status == "COMPLETED"


@pytest.mark.parametrize("code", [errno.EPERM, errno.EOPNOTSUPP])
def test_without_hard_links_the_lease_refusal_says_why_and_what_to_do(tmp_path, monkeypatch, code):
    def link(src, dst, **_kw):
        raise OSError(code, os.strerror(code), src, None, dst)

    monkeypatch.setattr(lease_mod.os, "link", link)
    inp = write_manifest(tmp_path / "in.manifest", 3, bad_every=0)
    job = tmp_path / "out" / "j"
    with pytest.raises(StorageError) as err:
        api.annotate(_config(inp, tmp_path / "out"))
    assert str(err.value) == (
        f"cannot take the lease on {job}: its file system does not support hard links ({os.strerror(code)}), "
        "which a job folder's lease needs (an atomic create); put the job on a local disk or on s3://")
    assert not job.exists()
