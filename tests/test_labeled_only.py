"""``labeled``: a manifest of only the lines holding a label, with every line left out counted by
reason; on a real job's output, on mixed lines, through the CLI and on S3 (moto server mode)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.jobs_helpers import run_cli
from tests.support.gt import GT_MANIFESTS as GT
from tests.support.gt import requires_gt
from tests.support.s3 import S3Endpoint
from totask_manifest._analytics.labeled_only import labeled_only
from totask_manifest._errors import ManifestError

pytestmark = requires_gt

REPO = Path(__file__).resolve().parents[1]
YOLOV5 = GT / "object-detection__aws-amazon-sagemaker-examples__yolov5-sample_output.manifest"


def mixed(tmp_path: Path) -> tuple[Path, list[bytes]]:
    """Real labeled lines among failed, routed, missing, null and blank ones; returns the labeled lines."""
    real = YOLOV5.read_bytes().splitlines()[:3]
    failed = (b'{"source-ref":"s3://b/f.jpg","category-metadata":{"failure-reason":"fetch: HTTP 404",'
              b'"type":"groundtruth/object-detection","job-name":"labeling-job/j","creation-date":"2026-01-01T00:00:00.000000"}}')
    routed = (b'{"source-ref":"s3://b/r.jpg","category-metadata":{"review-status":"routed","review-reason":"low",'
              b'"type":"groundtruth/object-detection","job-name":"labeling-job/j","human-annotated":"no",'
              b'"creation-date":"2026-01-01T00:00:00.000000"}}')
    missing = b'{"source-ref":"s3://b/m.jpg","other":1}'
    null = b'{"source-ref":"s3://b/n.jpg","category":null}'
    body = (b"\xef\xbb\xbf" + real[0] + b"\r\n" + failed + b"\n" + routed + b"\n\n" + real[1] + b"\n" + missing
            + b"\n" + null + b"\n   \n" + real[2])  # no newline after the last line
    path = tmp_path / "mixed.manifest"
    path.write_bytes(body)
    return path, real


def test_keeps_labeled_lines_byte_for_byte_and_counts_the_rest(tmp_path):
    src, real = mixed(tmp_path)
    out = tmp_path / "view" / "labeled.manifest"
    result = labeled_only(str(src), str(out), "category")
    assert out.read_bytes() == real[0] + b"\r\n" + real[1] + b"\n" + real[2] + b"\n"
    assert result.kept == 3
    assert result.left_out == {"failed": 1, "routed": 1, "missing": 2, "blank": 2}
    assert result.first_line == {"failed": 2, "routed": 3, "blank": 4, "missing": 6}
    assert result.summary().endswith(
        "kept 3 of 9 lines labeled under 'category'; left out 6: failed 1 (first: line 2), routed 1 (first: "
        "line 3), missing 2 (first: line 6), blank 2 (first: line 4)")
    # what a consumer does with each line: index the label, which every kept line holds
    for raw in out.read_bytes().splitlines():
        assert json.loads(raw)["category"]["annotations"]


def test_a_routed_line_with_a_value_is_left_out(tmp_path):
    """A value beside ``review-status: routed`` was kept: training got a line a model was not sure
    of, which ``stats`` counts routed. It is left out and counted routed."""
    real = YOLOV5.read_bytes().splitlines()[:2]
    record = json.loads(real[1])
    record["category-metadata"]["review-status"] = "routed"
    src = tmp_path / "routed.manifest"
    src.write_bytes(real[0] + b"\n" + json.dumps(record).encode() + b"\n")
    out = tmp_path / "labeled.manifest"
    result = labeled_only(str(src), str(out), "category")
    assert out.read_bytes() == real[0] + b"\n"
    assert (result.kept, result.left_out["routed"], result.first_line) == (1, 1, {"routed": 2})
    assert "left out 1: routed 1 (first: line 2)" in result.summary()


def test_a_real_jobs_output(tmp_path, capsys, monkeypatch):
    from totask_manifest._cli import main

    monkeypatch.chdir(REPO)
    code = main(["annotate", "sample_data/manifest.jsonl", "--job-name", "view", "--label-attribute", "boxes",
                 "--task-type", "object-detection", "--method", "file", "--url-key", "annotation-ref",
                 "--class-names", "sample_data/class_names.txt", "--native", "convert", "--allow-root", "sample_data",
                 "--output", str(tmp_path / "out")])
    assert code == 0
    output = tmp_path / "out" / "view" / "manifests" / "output" / "output.manifest"
    capsys.readouterr()
    assert main(["labeled", str(output), "--label-attribute", "boxes", "-o", str(tmp_path / "l.manifest"),
                 "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["kept"] == 49 and report["left_out"] == {"failed": 1, "routed": 0, "missing": 0, "blank": 0}
    assert report["first_line"] == {"failed": 14}  # img_013.json, line 14
    kept = (tmp_path / "l.manifest").read_bytes().splitlines()
    assert kept == [raw for raw in output.read_bytes().splitlines() if b'"failure-reason"' not in raw]


@pytest.mark.slow
def test_cli_summary_and_refusals(tmp_path):
    src, _real = mixed(tmp_path)
    out = tmp_path / "l.manifest"
    proc = run_cli("labeled", str(src), "--label-attribute", "category", "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("\n") == 1 and "kept 3 of 9" in proc.stdout and "failed 1" in proc.stdout
    # a misspelt attribute: nothing written, one line saying what the lines hold
    proc = run_cli("labeled", str(src), "--label-attribute", "categroy", "-o", str(tmp_path / "none.manifest"))
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.count("\n") == 1 and "no line holds a label under 'categroy'" in proc.stderr
    assert "label attributes seen: category" in proc.stderr
    assert not (tmp_path / "none.manifest").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".tmp")] == []
    # into folders that are not there: refused the same, and they are not left behind, empty
    proc = run_cli("labeled", str(src), "--label-attribute", "categroy", "-o", str(tmp_path / "nr9" / "a" / "b.m"))
    assert proc.returncode == 1 and not (tmp_path / "nr9").exists(), proc.stderr
    # a broken line stops it, naming the line; no half-written file
    (tmp_path / "bad.manifest").write_bytes(YOLOV5.read_bytes().splitlines()[0] + b"\n{not json\n")
    proc = run_cli("labeled", str(tmp_path / "bad.manifest"), "--label-attribute", "category",
                   "-o", str(tmp_path / "half.manifest"))
    assert proc.returncode == 1 and "line 2" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "half.manifest").exists()
    proc = run_cli("labeled", str(tmp_path / "absent.manifest"), "--label-attribute", "category", "-o", str(out))
    assert proc.returncode == 2 and "no such file" in proc.stderr


@pytest.mark.slow
def test_reads_and_writes_s3(tmp_path, s3: S3Endpoint):
    bucket = s3.new_bucket("labeled")
    src, real = mixed(tmp_path)
    s3.filesystem().put(str(src), f"{bucket}/in/m.manifest")
    result = labeled_only(f"{bucket}/in/m.manifest", f"{bucket}/out/l.manifest", "category")
    assert result.kept == 3
    assert s3.filesystem().cat(f"{bucket}/out/l.manifest") == real[0] + b"\r\n" + real[1] + b"\n" + real[2] + b"\n"
    assert s3.filesystem().ls(f"{bucket}/out") == [f"{bucket}/out/l.manifest".removeprefix("s3://")]


@pytest.mark.parametrize(("content", "held"), [(b"", "no line"), (b"\n \n", "2 lines, all blank")])
def test_empty_manifest_is_refused(tmp_path, content, held):
    """Said as validate, convert and a job say it (``blank_held``): "blank 2" and "the manifest is
    empty" were labeled's own words for the same two files."""
    (tmp_path / "e.manifest").write_bytes(content)
    with pytest.raises(ManifestError, match=rf"so nothing was written \({held}; label attributes seen: none\)"):
        labeled_only(str(tmp_path / "e.manifest"), str(tmp_path / "o.manifest"), "a")
    assert not (tmp_path / "o.manifest").exists()


@pytest.mark.slow
def test_what_a_killed_labeled_left_is_removed_by_the_next_one(tmp_path):
    """``kill -9`` of a real ``labeled`` while it writes: the input is a FIFO held open, so the
    command waits for more lines with its partial output on disk. That hidden temporary stayed
    for good; the next ``labeled`` to that path removes it."""
    import os
    import time

    from tests.jobs_helpers import popen_cli

    line = (b'{"source-ref":"s3://b/x.jpg","boxes":{"annotations":[]},"boxes-metadata":'
            b'{"type":"groundtruth/object-detection","pad":"' + b"p" * 400 + b'"}}\n')
    fifo = tmp_path / "in.manifest"
    os.mkfifo(fifo)
    out = tmp_path / "out" / "train.manifest"
    out.parent.mkdir()
    proc = popen_cli("labeled", str(fifo), "--label-attribute", "boxes", "-o", str(out))
    try:
        with open(fifo, "wb") as feed:
            feed.write(line * 6_000)  # 2.6 MB: past the writer's 1 MiB buffer
            feed.flush()
            deadline = time.monotonic() + 120
            while not [p for p in out.parent.iterdir() if p.stat().st_size > 0]:
                assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
                time.sleep(0.05)
            proc.kill()
            proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    [left] = out.parent.iterdir()
    assert left.name.startswith(".tmp-train.manifest-") and not out.exists()
    stamp = left.stat().st_mtime - 60  # the next run a minute later, without waiting one
    os.utime(left, (stamp, stamp))
    fifo.unlink()
    fifo.write_bytes(line * 3)
    r = run_cli("labeled", str(fifo), "--label-attribute", "boxes", "-o", str(out))
    assert r.returncode == 0, r.stderr
    assert [p.name for p in out.parent.iterdir()] == ["train.manifest"] and out.read_bytes() == line * 3
