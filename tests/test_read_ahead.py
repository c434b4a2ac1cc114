"""Parts read ahead (``_jobs.read_ahead``): the kernel told of the parts to come; the same
parts in the same order, and a damaged one still fails the commit."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.jobs_helpers import TOY, write_manifest
from totask_manifest import _api as api
from totask_manifest._errors import JobError
from totask_manifest._jobs import read_ahead
from totask_manifest._jobs.config import JobConfig
from totask_manifest._jobs.layout import JobLayout
from totask_manifest._jobs.read_ahead import advise_ahead


def test_the_kernel_is_told_of_the_parts_ahead(tmp_path, monkeypatch):
    urls = []
    for i in range(6):
        p = tmp_path / f"part-{i}"
        p.write_bytes(b"x" * (10_000 + i))
        urls.append(str(p))
    advised: list[tuple[int, int, int]] = []
    real = os.posix_fadvise

    def record(fd, offset, length, advice):
        advised.append((os.fstat(fd).st_size, offset, length))
        real(fd, offset, length, advice)
    monkeypatch.setattr(read_ahead.os, "posix_fadvise", record)
    got = []
    for url in advise_ahead([*urls, "s3://b/part-9", str(tmp_path / "gone")], ahead=2):
        got.append(url)
        if len(got) == 1:
            assert [a[0] for a in advised] == [10_001, 10_002]  # the next two, before the first is read
    assert got[:6] == urls and len(got) == 8
    assert sorted({a[0] for a in advised}) == [10_001 + i for i in range(5)]  # each once, the first not
    advised.clear()
    list(advise_ahead(urls[:2], tail=True, ahead=1))
    assert advised == [(10_001, 0, read_ahead.TAIL), (10_001, 10_001 - read_ahead.TAIL, 0)]


def test_a_damaged_part_fails_the_commit_through_the_thread_and_keeps_the_old_output(tmp_path):
    inp = write_manifest(tmp_path / "in.manifest", 40)
    config = JobConfig(job_name="j", input=str(inp), output_root=str(tmp_path / "out"), label_attribute="cls",
                       task_type="image-classification", method=TOY, checkpoint_every=4)
    result = api.annotate(config)
    assert result.status == "COMPLETED"
    before = Path(result.output_manifest).read_bytes()
    part = Path(JobLayout(result.job_url).parts()[5])
    part.write_bytes(part.read_bytes()[:-30])
    from totask_manifest._jobs.commit import write_output

    with pytest.raises(JobError, match=r"torn|corrupt"):
        write_output(str(inp), JobLayout(result.job_url), attribute="cls")
    assert Path(result.output_manifest).read_bytes() == before
