"""A manifest replaced while its byte ranges are read by several processes (``validate``,
``stats``, ``evaluate`` and a job's input scan read it so): each process opens the file on its
own, and an object store pins each open to the version it found (s3fs reads with ``If-Match``),
so the ranges came from both versions, and the command counted lines of each, said "valid" and
exited 0 (a 300,000-line object replaced by a 250,000-line one read as 291,325 lines). The file
is now compared before and after the reads: one that changed is refused in one line naming
the URL (exit 2). Real parts: the moto S3 server on 127.0.0.1 and a local disk, forked workers."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.ranges_faults import lines_replacing_at_the_end, replaced_after_the_open
from tests.support.s3 import S3Endpoint
from totask_manifest._errors import StorageError
from totask_manifest._manifest.ranges import map_ranges
from totask_manifest._storage import AtomicWriter

OLD = b"".join(b'{"source-ref": "s3://b/img-%05d.jpg"}\n' % i for i in range(4096))
NEW = b"".join(b'{"source-ref": "s3://b/new-image-%05d.jpg", "k": 1}\n' % i for i in range(3000))


def _put(url: str, body: bytes) -> None:
    with AtomicWriter(url) as out:
        out.write(body)


def _read(url: str) -> list[int]:
    return map_ranges(lines_replacing_at_the_end, url, (len(OLD), NEW), workers=2, start_method="fork",
                      min_bytes=4096, per_worker=4)


@pytest.mark.slow  # a moto server; the local case below stays in the fast lane
def test_an_s3_object_replaced_between_the_ranges_is_refused(s3: S3Endpoint) -> None:
    url = f"{s3.new_bucket()}/in dir/ünï.manifest"
    _put(url, OLD)
    with pytest.raises(StorageError) as err:
        _read(url)
    assert str(err.value) == (f"cannot read {url}: the file changed while it was read (replaced or rewritten); "
                              "run the command again once it is no longer being written")


@pytest.mark.slow
def test_an_s3_object_replaced_under_an_open_read_is_refused_the_same_way(s3: S3Endpoint) -> None:
    """A range whose own read fails because the object it opened was replaced (s3fs: FileExpired,
    seen in a CI run when the replacement came between a worker's open and its read) gets the
    same one-line refusal, not the store's exception text."""
    url = f"{s3.new_bucket()}/replaced.manifest"
    _put(url, OLD)
    with pytest.raises(StorageError) as err:
        map_ranges(replaced_after_the_open, url, (len(OLD), NEW), workers=2, start_method="fork",
                   min_bytes=4096, per_worker=4)
    assert str(err.value) == (f"cannot read {url}: the file changed while it was read (replaced or rewritten); "
                              "run the command again once it is no longer being written")


def test_a_local_file_replaced_between_the_ranges_is_refused(tmp_path: Path) -> None:
    url = str(tmp_path / "in.manifest")
    _put(url, OLD)
    with pytest.raises(StorageError, match="the file changed while it was read"):
        _read(url)


@pytest.mark.slow
def test_a_file_left_alone_is_read_whole_in_ranges(tmp_path: Path) -> None:
    """The same ranges of a file nobody writes: every line counted once."""
    url = str(tmp_path / "in.manifest")
    _put(url, OLD)
    counts = map_ranges(lines_replacing_at_the_end, url, (-1, NEW), workers=2, start_method="fork",
                        min_bytes=4096, per_worker=4)
    assert len(counts) > 2 and sum(counts) == 4096



@pytest.mark.slow
def test_an_s3_manifest_replaced_under_a_single_read_is_refused_as_validate_refuses_it(
        s3: S3Endpoint, monkeypatch: pytest.MonkeyPatch) -> None:
    """``stats``, ``convert`` and ``labeled`` read a manifest in one process, through ``open_read``:
    an object replaced between two of its block reads printed s3fs's own words (``FileExpired:
    ... no longer exists``, the key without ``s3://``, nothing of what to do). One rule, one
    message: ``validate``'s. Blocks of 5 MiB (s3fs's least; 50 MiB unless told) over a 6 MiB
    manifest put the second read where the race with a 99 MiB one put it."""
    import fsspec

    from totask_manifest._storage import open_read

    monkeypatch.setitem(fsspec.config.conf, "s3", {**fsspec.config.conf["s3"], "default_block_size": 5 << 20})
    url = f"{s3.new_bucket()}/in dir/m.jsonl"
    _put(url, OLD * 40)
    with pytest.raises(StorageError) as err, open_read(url) as f:
        f.read(10)
        _put(url, NEW)
        f.read()
    assert str(err.value) == (f"cannot read {url}: the file changed while it was read (replaced or rewritten); "
                              "run the command again once it is no longer being written")
