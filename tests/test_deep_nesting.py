"""A line nested deeper than orjson writes (it reads 1024 levels, writes about 254) is one bad line
among millions: ``validate``, a job's input scan and ``stats`` read past it and say what it is,
never stop with a traceback."""

from __future__ import annotations

import orjson

from tests.test_stats_fast import _stats, assert_equal, detection
from totask_manifest._analytics.stats_facts import TOO_DEEP
from totask_manifest._jobs.scan_ranges import _RangeScan, _scan_line, scan_range
from totask_manifest._manifest.io import iter_raw_lines
from totask_manifest._manifest.validate import validate_manifest

GOOD = orjson.dumps({"source-ref": "s3://b/a.jpg", "n": 1})


def nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def test_validate_and_the_job_scan_read_past_a_deep_line(tmp_path):
    deep = b'{"source-ref":"s3://b/d.jpg","x":' + nested(300) + b"}"
    path = tmp_path / "in.manifest"
    path.write_bytes(b"\n".join([GOOD] * 20 + [deep] + [GOOD] * 20) + b"\n")
    report = validate_manifest(str(path))
    assert report.lines == 41 and report.errors == 0
    for run_lines in (16, 1):
        scan = scan_range(str(path), 0, None, "category", run_lines=run_lines)
        assert scan.lines == 41 and len(scan.indices) == 41 and scan.problem_count == 0
    reference = _RangeScan()
    with open(path, "rb") as f:
        at = 0
        for raw in iter_raw_lines(f):
            _scan_line(reference, at, raw, "category")
            at += len(raw)
    assert list(reference.offsets) == list(scan.offsets)


def test_a_deep_repeated_key_is_still_found(tmp_path):
    deep = b'{"source-ref":"s3://b/d.jpg","x":' + nested(300) + b',"x":1}'
    path = tmp_path / "in.manifest"
    path.write_bytes(b"\n".join([GOOD] * 20 + [deep]) + b"\n")
    report = validate_manifest(str(path))
    assert [(p.line, p.rule) for p in report.problems] == [(21, "duplicate-key")]
    scan = scan_range(str(path), 0, None, "category")
    assert scan.problem_count == 1 and scan.problems[0][0] == 21


def test_stats_counts_a_deep_type_under_a_name_of_its_own():
    import random

    rng = random.Random(3)
    lines = [orjson.dumps(detection(rng, i=i)) for i in range(30)]
    for depth in (300, 1000):
        lines.append(b'{"source-ref":"s3://b/d.jpg","boxes-metadata":{"type":' + nested(depth) + b"}}")
    fast, generic = _stats(lines, None, fast=True), _stats(lines, None, fast=False)
    assert_equal(fast, generic)
    assert fast.lines == 32
    assert TOO_DEEP in str(fast.to_dict())  # 1000 levels: past what json writes too
