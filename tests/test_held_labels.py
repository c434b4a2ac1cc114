"""A job's label attribute that lines already hold with something it must not pass over.

Ground Truth's selection rule passes over a line holding the attribute. Where that value was a
label of another task type (boxes, and the job a classifier), ``annotate`` wrote its labels
beside them, one attribute holding two kinds of label, exit 0; where it was an ordinary key
(``category-x: "cat"``, no ``category-x-metadata``), the job ended COMPLETED with ``total=0``
and nothing said. Both are refused before the job exists, in one line, exit 2.
"""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from totask_manifest._cli import main
from totask_manifest._jobs.scan_ranges import InputScan, add_range, scan_range
from totask_manifest._manifest.ranges import plan_ranges

from .jobs_helpers import output_of, run_cli, toy_job_args

BOXES = {"image_size": [{"width": 8, "height": 8, "depth": 3}], "annotations": []}
BOXES_META = {"objects": [], "class-map": {}, "type": "groundtruth/object-detection", "human-annotated": "no",
              "creation-date": "2024-01-01T00:00:00.000000", "job-name": "labeling-job/boxes"}
CLS_META = {"class-name": "bird", "confidence": 0.9, "type": "groundtruth/image-classification",
            "job-name": "labeling-job/human", "human-annotated": "yes", "creation-date": "2020-01-01T00:00:00.000000"}


def _write(path: Path, rows: list[dict]) -> Path:
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    return path


def _refused(capsys: pytest.CaptureFixture, argv: list[str]) -> str:
    assert main(argv) == 2
    _out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_annotate_onto_an_attribute_holding_another_task_types_labels_is_refused(tmp_path, capsys) -> None:
    rows = [{"source-ref": f"s3://b/{i}.jpg"} for i in range(3)]
    rows += [{"source-ref": f"s3://b/x{i}.jpg", "cls": BOXES, "cls-metadata": BOXES_META} for i in range(40)]
    inp = _write(tmp_path / "in.manifest", rows)
    line = _refused(capsys, toy_job_args(inp, tmp_path / "out"))
    assert "line 4" in line and "'cls'" in line and "object-detection" in line and "image-classification" in line, line
    assert "(40 such lines in all)" in line and "--label-attribute" in line, line
    assert not (tmp_path / "out").exists()


def test_an_appended_manifest_holding_another_task_types_labels_is_named(tmp_path, capsys) -> None:
    inp = _write(tmp_path / "in.manifest", [{"source-ref": "s3://b/0.jpg"}])
    more = _write(tmp_path / "more.manifest", [{"source-ref": "s3://b/1.jpg"},
                                               {"source-ref": "s3://b/2.jpg", "cls": BOXES, "cls-metadata": BOXES_META}])
    line = _refused(capsys, toy_job_args(inp, tmp_path / "out", "--append", str(more)))
    assert "--append manifest" in line and "more.manifest line 2" in line and "object-detection" in line, line
    assert not (tmp_path / "out" / "j").exists()


@pytest.mark.parametrize("meta", [None, {"note": "no type"}], ids=["no-metadata", "metadata-without-type"])
def test_annotate_onto_an_ordinary_key_is_refused_not_completed_with_nothing_labeled(tmp_path, capsys, meta) -> None:
    extra = {"cls-metadata": meta} if meta is not None else {}
    rows = [{"source-ref": f"s3://b/{i}.jpg", "cls": "cat", **extra} for i in range(20)]
    inp = _write(tmp_path / "in.manifest", rows)
    line = _refused(capsys, toy_job_args(inp, tmp_path / "out"))
    assert "line 1" in line and "'cls' is not a label" in line and "'cls-metadata'" in line, line
    assert "(20 such lines in all)" in line, line
    assert not (tmp_path / "out").exists()


def test_an_ordinary_key_on_some_lines_is_refused_too(tmp_path, capsys) -> None:
    """Labels would be written beside the plain values: one attribute, two kinds of value."""
    rows = [{"source-ref": f"s3://b/{i}.jpg", "cls": 1, "cls-metadata": CLS_META} for i in range(2)]
    rows += [{"source-ref": "s3://b/p.jpg", "cls": "cat"}, {"source-ref": "s3://b/q.jpg"}]
    line = _refused(capsys, toy_job_args(_write(tmp_path / "in.manifest", rows), tmp_path / "out"))
    assert "line 3" in line and "is not a label" in line and "such lines" not in line, line


def test_the_scan_notes_them_in_every_range_as_one_scan_does(tmp_path) -> None:
    """The typed path takes a run of one shape whole: a shape holding another type's label is read
    line by line, so each line is counted, in whichever worker's range it lies."""
    rows = []
    for i in range(600):
        row: dict = {"source-ref": f"s3://b/{i:04d}.jpg"}
        if i < 250 or i % 7 == 0:  # runs of one shape, and shapes mixed
            row |= {"cls": 2, "cls-metadata": CLS_META}
        elif i >= 260:
            row |= {"cls": BOXES, "cls-metadata": BOXES_META}
        rows.append(row)
    url = str(_write(tmp_path / "in.manifest", rows))
    size = Path(url).stat().st_size
    for task_type, held in (("image-classification", {"object-detection": (292, 261)}),
                            ("object-detection", {"image-classification": (300, 1)}), (None, {})):
        scan = InputScan()
        for start, end in plan_ranges(size, 4, min_bytes=size // 8):
            add_range(scan, scan_range(url, start, end, "cls", task_type))
        assert {k: (scan.held.counts[k], scan.held.first[k]) for k in scan.held.counts} == held, task_type


def test_a_job_with_every_line_labeled_says_why_it_labels_nothing(tmp_path) -> None:
    """COMPLETED with ``total=0`` is Ground Truth's rule; it said only "every selected line is
    recorded; nothing to label", as if lines had been selected and labeled."""
    rows = [{"source-ref": f"s3://b/{i}.jpg", "cls": 1, "cls-metadata": CLS_META} for i in range(3)]
    done = run_cli(*toy_job_args(_write(tmp_path / "in.manifest", rows), tmp_path / "out"))
    assert done.returncode == 0, done.stderr
    out, err = done.stdout, done.stderr
    assert "COMPLETED" in out and "total=0" in out, out
    assert "nothing to label: every data line (3 lines read) already holds a label under 'cls'" in err, err
    assert "--label-attribute a new name" in err and "every selected line is recorded" not in err, err


def test_documents_kept_as_they_are_go_beside_any_task_types_labels(tmp_path) -> None:
    """A job of any task type writes a native document it keeps as Ground Truth's custom type
    (``--native keep``): chained onto its own attribute, it was refused as "holds custom labels"."""
    custom = {"type": "groundtruth/custom", "job-name": "j", "human-annotated": "no",
              "creation-date": "2024-01-01T00:00:00.000000"}
    rows = [{"source-ref": f"s3://b/{i}.jpg", "cls": {"any": i}, "cls-metadata": custom} for i in range(40)]
    rows += [{"source-ref": "s3://b/x.jpg", "cls": 1, "cls-metadata": CLS_META}, {"source-ref": "s3://b/u.jpg"}]
    url = str(_write(tmp_path / "in.manifest", rows))
    for task_type in ("image-classification", "custom", "object-detection"):
        held = scan_range(url, 0, None, "cls", task_type).held
        assert held.counts == ({"image-classification": 1} if task_type == "object-detection" else {}), task_type


def test_tracking_onto_ground_truths_own_point_cloud_tracking_sample_is_not_refused(tmp_path, gt_manifests) -> None:
    """Ground Truth's OT adjustment manifest declares point_cloud_object_detection on
    ``pointcloud-ref`` (a sequence file's reference): ``validate`` reads it as tracking, but a
    tracking job onto it was refused (exit 2) as "holds point_cloud_object_detection labels"."""
    inp = gt_manifests / "pointcloud-object-tracking__aws-samples-groundtruth-immersionday__OT-adjustment-manifest.manifest"
    argv = toy_job_args(inp, tmp_path / "out")
    argv[argv.index("cls")], argv[argv.index("image-classification")] = "pointcloud-ref", "point_cloud_object_tracking"
    done = run_cli(*argv)
    assert done.returncode == 0, done.stderr
    assert "point_cloud_object_detection labels" not in done.stderr, done.stderr
    assert "nothing to label" in done.stderr, done.stderr


def test_an_unknown_ground_truth_type_is_named_not_said_to_be_no_type(tmp_path, capsys) -> None:
    """It was said to have "no 'cls-metadata' declaring a Ground Truth task type", which it has."""
    meta = {**CLS_META, "type": "groundtruth/image-captioning"}
    rows = [{"source-ref": f"s3://b/{i}.jpg", "cls": "a bird", "cls-metadata": meta} for i in range(3)]
    line = _refused(capsys, toy_job_args(_write(tmp_path / "in.manifest", rows), tmp_path / "out"))
    assert "line 1" in line and "'cls-metadata' declares 'groundtruth/image-captioning'" in line, line
    assert "does not know" in line and "no 'cls-metadata' declaring" not in line, line


@pytest.mark.parametrize("where", [1, 2999], ids=["every-line", "one-line-among-thousands"])
@pytest.mark.parametrize("meta", [{"note": "user data"}, "x", [1]], ids=["object-without-type", "string", "list"])
def test_metadata_that_is_no_labels_on_a_line_the_job_labels_is_refused_not_replaced(tmp_path, capsys, meta, where):
    """A line without ``cls`` whose ``cls-metadata`` holds the user's own data: the job labeled the
    line and wrote its own ``cls-metadata`` over it, 50 lines of data lost, exit 0. A failed line's
    metadata (``failure-reason``) is Ground Truth's and is replaced as ever (next test). The typed
    path takes runs of lines of one shape whole: a shape with metadata where the job labels is read
    line by line, so one such line among thousands is found too."""
    rows = [{"source-ref": f"s3://b/{i}.jpg"} for i in range(3000)]
    for i in (range(3000) if where == 1 else [where - 1]):
        rows[i]["cls-metadata"] = meta
    line = _refused(capsys, toy_job_args(_write(tmp_path / "in.manifest", rows), tmp_path / "out"))
    assert f"line {where}: 'cls-metadata' is no label's metadata" in line, line
    assert ("(3000 such lines in all)" in line) == (where == 1) and "would be lost" in line, line
    assert not (tmp_path / "out").exists()


def test_a_failed_lines_metadata_is_labeled_again_as_ever(tmp_path) -> None:
    """Ground Truth's failed line: ``cls-metadata`` with a ``failure-reason`` and no ``cls``; a job
    labels it again and writes its own metadata there (what chaining onto failures does)."""
    failed = {"failure-reason": "ClientError: fetch failed", "job-name": "labeling-job/old"}
    rows = [{"source-ref": f"s3://b/{i}.jpg", "cls-metadata": failed} for i in range(3000)]
    r = run_cli(*toy_job_args(_write(tmp_path / "in.manifest", rows), tmp_path / "out"))
    assert r.returncode == 0, r.stderr


def test_an_empty_metadata_object_is_replaced_not_refused(tmp_path) -> None:
    """``cls-metadata: {}`` holds nothing the job's own metadata would lose: the line is labeled."""
    rows = [{"source-ref": f"s3://b/{i}.jpg", "cls-metadata": {}} for i in range(5)]
    r = run_cli(*toy_job_args(_write(tmp_path / "in.manifest", rows), tmp_path / "out"))
    assert r.returncode == 0, r.stderr


def _one_line_refusal(done) -> str:
    """The one line of a CLI process refused as a usage mistake (exit 2, no traceback)."""
    assert done.returncode == 2, (done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    return lines[0]


def test_a_chain_with_nothing_to_label_is_refused_as_it_would_record_the_attribute_as_its_own(tmp_path) -> None:
    """Every line holds the attribute (boxes, or an ordinary key): the chained classifier would
    label no line, its output byte-identical, but its job.json would record the attribute as
    image-classification labels, which ``validate --task-type`` refuses in that output (``apply``
    converts it so): still refused, exit 2, now saying it labels no line, where it said "to label
    the lines still unlabeled" of none."""
    rows = [{"source-ref": f"s3://b/{i}.jpg", "boxes": BOXES, "boxes-metadata": BOXES_META, "note": "x"}
            for i in range(3)]
    assert run_cli(*toy_job_args(_write(tmp_path / "in.manifest", rows), tmp_path / "out", job="first")).returncode == 0
    for attribute, held in (("boxes", "label attribute 'boxes' holds object-detection labels (3 such lines in all)"),
                            ("note", "'note' is not a label there")):
        line = _one_line_refusal(run_cli("chain", str(tmp_path / "out" / "first"), "--job-name", "second",
                                          "--label-attribute", attribute))
        assert f"first/manifests/output/output.manifest line 1: {held}" in line, line
        assert (f"the job would label no line, yet record {attribute!r} as image-classification labels in its "
                "job.json") in line, line
        assert "still unlabeled" not in line and "--label-attribute" in line, line
        assert not (tmp_path / "out" / "second").exists()
        checked = run_cli("validate", str(output_of(tmp_path / "out", "first")), "--label-attribute", attribute,
                          "--task-type", "image-classification")
        assert checked.returncode == 1, checked.stdout  # the output the job would claim does not validate


def test_with_append_a_refusal_for_another_types_labels_counts_the_combined_inputs_lines_to_label(tmp_path) -> None:
    """The input holds boxes on every line; an ``--append`` manifest brings one line to label: the
    job would write its classes beside the boxes, refused saying so (1 line), the held value
    weighed once every manifest is read, as a class-map clash is."""
    rows = [{"source-ref": f"s3://b/{i}.jpg", "boxes": BOXES, "boxes-metadata": BOXES_META} for i in range(3)]
    assert run_cli(*toy_job_args(_write(tmp_path / "in.manifest", rows), tmp_path / "out", job="first")).returncode == 0
    new = _write(tmp_path / "new.manifest", [{"source-ref": "s3://b/new.jpg"}])
    line = _one_line_refusal(run_cli("chain", str(tmp_path / "out" / "first"), "--job-name", "second",
                                     "--label-attribute", "boxes", "--append", str(new)))
    assert "input manifest" in line and "line 1: label attribute 'boxes' holds object-detection labels" in line, line
    assert "the job would label 1 line under 'boxes' beside them" in line, line
    assert "--task-type object-detection to label the lines still unlabeled" in line, line
    assert not (tmp_path / "out" / "second").exists()
