"""The checkpoint part format (headers + bodies + footer), parts of the format before it, the
job's selection (``selection.bin``) and the input scan over byte ranges."""

from __future__ import annotations

import os
from pathlib import Path

import orjson
import pytest

from tests.jobs_helpers import TOY, run_cli, write_manifest
from totask_manifest import _api as api
from totask_manifest._errors import JobError
from totask_manifest._jobs import scan_ranges
from totask_manifest._jobs.checkpoint import CheckpointWriter, iter_records, read_part, summarize
from totask_manifest._jobs.config import JobConfig
from totask_manifest._jobs.job import Job
from totask_manifest._jobs.layout import JobLayout
from totask_manifest._jobs.selection import LineSelection
from totask_manifest._manifest import ranges
from totask_manifest._manifest.line import BOM


def _config(inp: Path, out: Path, name: str, every: int = 4) -> JobConfig:
    return JobConfig(job_name=name, input=str(inp), output_root=str(out), label_attribute="cls",
                     task_type="image-classification", method=TOY, checkpoint_every=every)


def _stop_after_parts(job_url: str, keep: int) -> None:
    """As if the job had been stopped after its first ``keep`` parts."""
    for part in JobLayout(job_url).parts()[keep:]:
        Path(part).unlink()
    state = Job.open(job_url).state
    state.status = "STOPPED"
    state.save()


def _to_old_parts(job_url: str) -> None:
    """Rewrite every part in the format before this one: a JSON record per line, the new line
    body as a JSON string, part-NNNNNN.jsonl."""
    for url in JobLayout(job_url).parts():
        lines = []
        for rec in read_part(url):
            body = rec.body.removeprefix(BOM).rstrip(b"\r\n").decode()
            lines.append(orjson.dumps({"i": rec.index, "n": rec.number, "s": rec.status, "line": body, **rec.extra}))
        Path(url[: -len(".ckpt")] + ".jsonl").write_bytes(b"\n".join(lines) + b"\n")
        Path(url).unlink()


@pytest.fixture
def manifest(tmp_path):
    inp = write_manifest(tmp_path / "in.manifest", 40, bad_every=7, prelabeled_every=5)
    data = inp.read_bytes()
    inp.write_bytes(BOM + data[:-1])  # a byte order mark, and a last line without its terminator
    return inp


@pytest.fixture
def reference(tmp_path, manifest):
    result = api.annotate(_config(manifest, tmp_path / "ref", "j"))
    assert result.status == "COMPLETED"
    return Path(result.output_manifest).read_bytes()


def _same(a: bytes, b: bytes) -> None:
    """Outputs equal but for the creation dates the jobs wrote."""
    def norm(raw: bytes) -> list:
        out = []
        for line in raw.splitlines(keepends=True):
            rec = orjson.loads(line.removeprefix(BOM))
            meta = rec.get("cls-metadata")
            if isinstance(meta, dict) and meta.get("job-name") == "labeling-job/j":
                meta.pop("creation-date")
            out.append((line[:3] == BOM, line[-2:], rec))
        return out
    assert norm(a) == norm(b)


def test_parts_hold_the_output_lines_as_bytes_and_a_footer(tmp_path, manifest, reference):
    layout = JobLayout(str(tmp_path / "ref" / "j"))
    records = list(iter_records(layout))
    output = reference.splitlines(keepends=True)
    assert [r.index for r in records] == LineSelection.load(layout.selection).indices.tolist()
    for rec in records:
        assert rec.body == output[rec.index]  # the exact bytes written: prefix, escapes, terminator
        assert rec.in_bytes == len(manifest.read_bytes().splitlines(keepends=True)[rec.index])
    raw = Path(layout.parts()[0]).read_bytes()
    assert raw.startswith(b"totask-checkpoint/2\n") and b"\\u00e9" in raw  # the line's escape, not re-escaped
    last, counts, next_seq = summarize(layout)
    assert last == records[-1].index and next_seq == len(layout.parts())
    assert counts["labeled"] + counts["failed"] == len(records) and counts["failed"] == sum(
        r.status == "failed" for r in records)


@pytest.mark.slow
def test_a_torn_part_is_refused_in_one_line(tmp_path, manifest, reference):
    job = tmp_path / "ref" / "j"
    part = Path(JobLayout(str(job)).parts()[1])
    part.write_bytes(part.read_bytes()[:-7])  # what a store without atomic writes could leave
    with pytest.raises(JobError, match="torn"):
        summarize(JobLayout(str(job)))
    with pytest.raises(JobError, match="torn"):
        list(iter_records(JobLayout(str(job))))
    state = Job.open(str(job)).state
    state.status = "STOPPED"
    state.save()
    r = run_cli("resume", str(job))
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "torn" in r.stderr


def test_a_job_with_parts_of_the_old_format_resumes(tmp_path, manifest, reference):
    result = api.annotate(_config(manifest, tmp_path / "out", "j"))
    _stop_after_parts(result.job_url, 3)
    _to_old_parts(result.job_url)
    Path(JobLayout(result.job_url).selection).unlink()  # jobs before it kept no selection
    layout = JobLayout(result.job_url)
    assert all(p.endswith(".jsonl") for p in layout.parts())
    done = summarize(layout)[0]
    again = api.resume(result.job_url)
    assert again.status == "COMPLETED", api.load_job(result.job_url)["error"]
    _same(Path(again.output_manifest).read_bytes(), reference)
    parts = layout.parts()
    # the old parts are kept and read; the resume wrote new ones after them
    assert all(p.endswith(".jsonl") for p in parts[:3]) and parts[3:] and all(p.endswith(".ckpt") for p in parts[3:])
    assert summarize(layout)[0] > done
    assert LineSelection.load(layout.selection) is not None  # the resume kept the selection it found


def test_resume_trusts_the_fingerprint_and_rehashes_a_touched_input(tmp_path, manifest, reference, monkeypatch):
    result = api.annotate(_config(manifest, tmp_path / "out", "j"))
    _stop_after_parts(result.job_url, 2)
    hashed = []
    real = scan_ranges.sha256_of
    monkeypatch.setattr(scan_ranges, "sha256_of", lambda url: hashed.append(url) or real(url))
    assert api.resume(result.job_url).status == "COMPLETED"
    assert hashed == []  # the input was not read again for its checksum
    _stop_after_parts(result.job_url, 2)
    os.utime(manifest, ns=(1, 1))  # same bytes, another modification time: checked, and accepted
    again = api.resume(result.job_url)
    assert again.status == "COMPLETED" and hashed == [str(manifest)]
    _same(Path(again.output_manifest).read_bytes(), reference)
    _stop_after_parts(result.job_url, 2)
    manifest.write_bytes(manifest.read_bytes().replace(b"img00039", b"img00099"))
    with pytest.raises(JobError, match="changed since"):
        api.resume(result.job_url)


def test_a_damaged_selection_is_found_again(tmp_path, manifest, reference):
    result = api.annotate(_config(manifest, tmp_path / "out", "j"))
    _stop_after_parts(result.job_url, 1)
    Path(JobLayout(result.job_url).selection).write_bytes(b"totask-selection/1\n{}\n")
    again = api.resume(result.job_url)
    assert again.status == "COMPLETED"
    _same(Path(again.output_manifest).read_bytes(), reference)


@pytest.mark.slow
def test_the_scan_over_ranges_in_workers_equals_one_pass(tmp_path, monkeypatch):
    inp = write_manifest(tmp_path / "in.manifest", 3000, bad_every=0, prelabeled_every=3)
    lines = inp.read_bytes().splitlines(keepends=True)
    lines[10] = b"   \n"  # blank
    lines[1500] = b'{"source-ref": "a", "source": "b"}\n'  # two source keys: a line validate refuses
    lines[2999] = lines[2999].rstrip(b"\n")
    inp.write_bytes(BOM + b"".join(lines))
    one = scan_ranges.scan_input(str(inp), "cls", workers=1)
    monkeypatch.setattr(ranges, "MIN_RANGE_BYTES", 1000)  # many ranges, most starting inside a line
    assert len(ranges.plan_ranges(inp.stat().st_size, 2)) > 2
    many = scan_ranges.scan_input(str(inp), "cls", workers=2)
    assert (many.lines, many.selected, many.sha256, many.problems, many.problem_count) == (
        one.lines, one.selected, one.sha256, one.problems, one.problem_count)
    assert many.selection.indices == one.selection.indices and many.selection.offsets == one.selection.offsets
    assert one.lines == 3000 and one.problem_count == 1 and "line 1501" in one.problems[0]
    data = inp.read_bytes()
    for index, offset in zip(one.selection.indices, one.selection.offsets, strict=True):
        assert data[offset:].startswith(lines[index].removeprefix(BOM) if index else BOM + lines[0])
    assert 0 not in one.selection.indices and 10 not in one.selection.indices and 1 in one.selection.indices


def test_writer_records_round_trip(tmp_path):
    layout = JobLayout(str(tmp_path / "w"))
    writer = CheckpointWriter(layout, next_seq=0, every=2, seconds=60)
    writer.add({"i": 0, "s": "labeled"}, b'{"a":1}\r\n', 9)
    writer.add({"i": 2, "s": "failed", "reason": "x", "rule": "internal-error", "task_id": 7}, b'{"b":2}', 7)
    writer.add({"i": 5, "s": "routed", "reason": "low"}, BOM + b"{}\n", 3)
    writer.flush()
    got = [(r.index, r.status, r.body, r.in_bytes, r.extra) for r in iter_records(layout)]
    assert got == [(0, "labeled", b'{"a":1}\r\n', 9, {}),
                   (2, "failed", b'{"b":2}', 7, {"reason": "x", "rule": "internal-error", "task_id": 7}),
                   (5, "routed", BOM + b"{}\n", 3, {"reason": "low"})]
    assert [(r.index, r.body) for r in iter_records(layout, bodies=False)] == [(0, b""), (2, b""), (5, b"")]
    assert summarize(layout) == (5, {"labeled": 1, "failed": 1, "routed": 1, "dropped": 0, "warnings": 0}, 2)


@pytest.mark.parametrize(("index", "lengths", "after", "refusal"), [
    ([4, 6, 5], [1, 1, 1], -1, "out of order at line index 5"),
    ([4, 5, 5, 6], [1, 1, 1, 1], -1, "out of order at line index 5"),  # the span of consecutive lines, not them
    ([6, 4, 5, 7], [1, 1, 1, 1], -1, "out of order at line index 4"),
    ([3, 4, 5], [1, 1, 1], 3, "out of order at line index 3"),  # not after the previous part
    ([3, 4, 5], [1, -1, 1], -1, "wrong field types"),  # a negative body length
])
def test_heads_out_of_order_or_with_a_negative_length_are_refused(index, lengths, after, refusal):
    from totask_manifest._errors import JobError
    from totask_manifest._jobs.checkpoint import Part, _checked

    part = Part("p", index, "l" * len(index), lengths, [1] * len(index), {})
    with pytest.raises(JobError, match=refusal):
        _checked(part, after)
    assert _checked(Part("p", [3, 4, 5], "lll", [2, 3, 4], [1, 1, 1], {}), 2) == 9
    assert _checked(Part("p", [3, 7, 9], "lll", [2, 3, 4], [1, 1, 1], {}), 2) == 9
