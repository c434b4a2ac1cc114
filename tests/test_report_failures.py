"""``report`` of a folder without ``failures.jsonl`` lists the failed lines its manifest holds.

A real Ground Truth output put in ``FOLDER/manifests/output/output.manifest`` (the page's documented
way to look at one) has no ``failures.jsonl``: the page's label counts said ``failed 3`` beside a
failures table that said ``no failures``, and the command printed ``0 failures``. The table is now
read from the manifest's failed lines (their ``failure-reason`` and ``failure-rule``), and says so.
"""

from __future__ import annotations

from pathlib import Path

import orjson

from totask_manifest import write_report

META = {"type": "groundtruth/object-detection", "human-annotated": "no",
        "creation-date": "2026-01-01T00:00:00.000000", "job-name": "labeling-job/j"}


def _folder(tmp_path: Path) -> Path:
    """A job folder holding only an output manifest: one labeled line, two failed ones."""
    label = {"image_size": [{"width": 10, "height": 10, "depth": 3}],
             "annotations": [{"class_id": 0, "left": 1, "top": 1, "width": 3, "height": 3}]}
    lines = [
        {"source-ref": "s3://b/1.jpg", "a": label, "a-metadata": {"objects": [{}], "class-map": {"0": "cat"}, **META}},
        {"source-ref": "s3://b/2.jpg", "a-metadata": {"failure-reason": "ClientError: 404 Not Found",
                                                      "failure-rule": "http-404", **META}},
        {"source-ref": "s3://b/3.jpg?X-Amz-Signature=secret", "a-metadata": {"failure-reason": "timed out"}},
    ]
    out = tmp_path / "gt" / "manifests" / "output"
    out.mkdir(parents=True)
    (out / "output.manifest").write_bytes(b"".join(orjson.dumps(x) + b"\n" for x in lines))
    return tmp_path / "gt"


def test_a_folder_without_failures_jsonl_lists_its_manifests_failed_lines(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    result = write_report(str(folder), str(tmp_path / "r.html"), samples=0)
    page = (tmp_path / "r.html").read_text()
    assert result.failures == 2
    assert "no failures<" not in page and "Failures (2)" in page
    assert "ClientError: 404 Not Found" in page and "http-404" in page and "timed out" in page
    assert "s3://b/2.jpg" in page and "secret" not in page  # a source without its signature, as failures.jsonl
    assert "no failures.jsonl" in page  # where the rows come from, said


def test_a_jobs_own_failures_jsonl_is_still_what_the_table_shows(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    (folder / "failures.jsonl").write_bytes(b'{"line":2,"source":"s3://b/2.jpg","rule":"http-404","reason":"mine"}\n')
    result = write_report(str(folder), str(tmp_path / "r.html"), samples=0)
    page = (tmp_path / "r.html").read_text()
    assert result.failures == 1 and "mine" in page and "timed out" not in page
    assert "no failures.jsonl" not in page


def test_a_folder_without_job_json_reads_relative_images_beside_its_manifest(tmp_path: Path,
                                                                             monkeypatch) -> None:
    """Without ``job.json`` (no recorded input folder) a relative ``source-ref`` was read from the
    working directory: every tile said ``outside the allowed root`` or showed another folder's file.
    It is read against the manifest's folder, as every reader resolves a relative reference."""
    from PIL import Image

    from totask_manifest._analytics.report import render_report

    folder = _folder(tmp_path)
    out = folder / "manifests" / "output"
    Image.new("RGB", (10, 10), "red").save(out / "one.png")
    lines = (out / "output.manifest").read_bytes().splitlines(keepends=True)
    (out / "output.manifest").write_bytes(lines[0].replace(b"s3://b/1.jpg", b"one.png") + b"".join(lines[1:]))
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    html, tiles, _ = render_report(str(folder), samples=1, fetch_options={"allow_root": str(out)})
    assert tiles == 1 and "image not available" not in html and "data:image/" in html
