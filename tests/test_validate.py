"""``validate_manifest`` over the real Ground Truth files and over broken copies of them.

Every real manifest must pass (departures from the documented rules are warnings); each broken
copy, made by changing one thing in a real file, must fail with the rule, line and key of that
one thing and nothing else.
"""

from __future__ import annotations

import io
import itertools
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.gt import GT_MANIFESTS as GT
from tests.support.gt import gt_files, requires_gt
from tests.support.s3 import S3Endpoint
from totask_manifest._errors import InvalidInputError, ManifestError, StorageError, UsageError
from totask_manifest._manifest import line_check
from totask_manifest._manifest import ranges as ranges_module
from totask_manifest._manifest import validate as validate_module
from totask_manifest._manifest.io import iter_raw_lines, read_lines, write_lines
from totask_manifest._manifest.line import DELETE, Line
from totask_manifest._manifest.validate import (
    ValidationReport,
    check_range,
    iter_line_batches,
    validate_manifest,
)
from totask_manifest._storage import write_bytes_atomic

pytestmark = requires_gt

YOLO = "object-detection__aws-amazon-sagemaker-examples__yolov5-sample_output.manifest"
SEMSEG = "semantic-segmentation__aws-samples-lookout-for-vision-image-augmentation-pipeline__output.manifest"
DICE = "object-detection-chained-same-attribute__aws-samples-mxnet-dice-aim403-workshop__output.manifest"
PERSON = "video-object-tracking-two-label-attributes__iprivit-object-tracking-project__output.manifest"
OT = "pointcloud-object-tracking__aws-samples-groundtruth-immersionday__OT-adjustment-manifest.manifest"
CUSTOM = "custom-task__aws-samples-aws-legal-entity-extraction__output.manifest"

#: the whole-document schema for the real files that are not manifests
DOCUMENT_SCHEMA = {
    "video-object-tracking__iprivit-object-tracking-project__SeqLabel.jsonl": "seqlabel",
    "image-classification__aws-amazon-sagemaker-examples__ic_data-worker-response.jsonl": "worker-response",
}
REAL = [p.name for p in gt_files(".manifest", ".jsonl")]

#: what each real file departs from (warnings), as the reference and SOURCES.md describe. The
#: custom and 3D files write the bare lower-cased job name, as Ground Truth does for those types
#: (ground-truth.md 2.2, 2.12, 2.13): no departure
EXPECTED_WARNINGS = {
    PERSON: {"departure-ref-suffix": 1, "departure-job-name-missing": 1, "departure-creation-date-zone": 1},
    OT: {"departure-type-mismatch": 1},
}


def problems(report: ValidationReport) -> list[tuple[int | None, str, str]]:
    return [(p.line, p.key, p.rule) for p in report.problems]


@pytest.mark.parametrize("name", REAL, ids=lambda n: n[:60])
def test_every_real_file_is_accepted(name: str) -> None:
    report = validate_manifest(str(GT / name), schema=DOCUMENT_SCHEMA.get(name), workers=1)
    assert report.ok, problems(report)
    assert report.errors == 0
    assert report.counts_by_rule == EXPECTED_WARNINGS.get(name, {})
    assert report.lines == (GT / name).read_bytes().count(b"\n")


@pytest.mark.parametrize("name", sorted(EXPECTED_WARNINGS), ids=lambda n: n[:60])
def test_departures_fail_in_strict_mode(name: str) -> None:
    report = validate_manifest(str(GT / name), strict=True)
    assert not report.ok
    assert report.errors == sum(EXPECTED_WARNINGS[name].values()) and report.warnings == 0
    assert all(p.severity == "error" for p in report.problems)


def test_attribute_counts_on_real_files() -> None:
    report = validate_manifest(str(GT / DICE))
    stats = report.attributes["dice-labeling"]
    assert (stats.task_types, stats.labeled, stats.failed, stats.invalid) == (["object-detection"], 315, 0, 0)
    chained = validate_manifest(str(GT / "object-detection-chained-adjustment__YeongJun-Jeon-1to100_Korean__output.manifest"))
    assert sorted(chained.attributes) == ["suneung-korean-layout-detection-v2", "suneung-korean-layout-detection-v2-chain"]
    person = validate_manifest(str(GT / PERSON))
    assert sorted(person.attributes) == ["Person", "Person-ref"]
    assert person.summary().splitlines()[0].endswith("valid: 1 line, 0 errors, 3 warnings")


def test_job_name_form_follows_the_task_type(tmp_path: Path) -> None:
    """Custom and 3D output names the job bare (the real files pass without a warning); on a
    built-in 2D type a bare name is still a departure, and so is a prefixed one nowhere."""
    bare = broken_copy(tmp_path, YOLO, 3, lambda line: line.body.replace(b'"job-name":"labeling-job/', b'"job-name":"'))
    assert problems(validate_manifest(bare, workers=1)) == [(3, "category-metadata.job-name", "departure-job-name-prefix")]
    for name in (CUSTOM, OT):
        assert "departure-job-name-prefix" not in validate_manifest(str(GT / name), workers=1).counts_by_rule
    prefixed = broken_copy(tmp_path, CUSTOM, 2, lambda line: line.body.replace(b'"job-name":"', b'"job-name":"labeling-job/'))
    assert validate_manifest(prefixed, workers=1).counts_by_rule == {}


def test_input_manifests_without_labels_are_valid() -> None:
    report = validate_manifest(str(GT / "image-classification-input__kkr4353-aws-product-development__dataset-20200530T121341.manifest"))
    assert report.ok and report.attributes == {} and report.lines == 50


# ---- broken copies of real files ----------------------------------------------------------------


def broken_copy(tmp_path: Path, name: str, number: int, edit: Callable[[Line], Line | bytes]) -> str:
    """A copy of a real file with line ``number`` replaced by ``edit(line)``."""
    out = []
    for line in read_lines(str(GT / name)):
        if line.number == number:
            changed = edit(line)
            line = changed if isinstance(changed, Line) else Line(line.number, changed, line.newline)
        out.append(line)
    target = tmp_path / name
    write_lines(str(target), out)
    return str(target)


def change(key_path: list[Any], value: Any) -> Callable[[Line], Line]:
    def edit(line: Line) -> Line:
        record = line.record()
        top = record[key_path[0]]
        node = top
        for part in key_path[1:-1]:
            node = node[part]
        node[key_path[-1]] = value
        return line.with_values({key_path[0]: top})

    return edit


def rename(pairs: dict[str, str]) -> Callable[[Line], Line]:
    def edit(line: Line) -> Line:
        record = line.record()
        updates: dict[str, Any] = {old: DELETE for old in pairs}
        updates.update({new: record[old] for old, new in pairs.items()})
        return line.with_values(updates)

    return edit


def only_problem(path: str, **kwargs: Any) -> tuple[int | None, str, str]:
    report = validate_manifest(path, **kwargs)
    assert not report.ok
    assert report.errors == 1, problems(report)
    return problems(report)[0]


def test_objects_count_differs_from_annotations(tmp_path: Path) -> None:
    # line 2 of the yolov5 sample has three boxes; drop one confidence entry
    path = broken_copy(tmp_path, YOLO, 2, change(["category-metadata", "objects"], [{"confidence": 0.88}, {"confidence": 0.75}]))
    assert only_problem(path) == (2, "category-metadata.objects", "objects-count")


def test_negative_box_size(tmp_path: Path) -> None:
    path = broken_copy(tmp_path, YOLO, 7, change(["category", "annotations", 0, "width"], -443.8))
    assert only_problem(path) == (7, "category.annotations[0].width", "schema-minimum")


def test_confidence_outside_zero_to_one(tmp_path: Path) -> None:
    path = broken_copy(tmp_path, YOLO, 50, change(["category-metadata", "objects", 0, "confidence"], 93))
    assert only_problem(path) == (50, "category-metadata.objects[0].confidence", "schema-maximum")


def test_attribute_named_with_metadata_suffix(tmp_path: Path) -> None:
    path = broken_copy(tmp_path, YOLO, 3, rename({"category": "x-metadata", "category-metadata": "x-metadata-metadata"}))
    assert only_problem(path) == (3, "x-metadata-metadata", "label-attribute-metadata-suffix")


def test_semantic_segmentation_attribute_without_ref(tmp_path: Path) -> None:
    path = broken_copy(tmp_path, SEMSEG, 1, rename({"S10-label3-ref": "S10-label3", "S10-label3-ref-metadata": "S10-label3-metadata"}))
    line, key, rule = only_problem(path)
    assert (line, key, rule) == (1, "S10-label3", "label-attribute-ref-required")


def test_line_with_both_source_and_source_ref(tmp_path: Path) -> None:
    path = broken_copy(tmp_path, DICE, 200, lambda line: line.with_values({"source": "a text object"}))
    assert only_problem(path) == (200, "", "line-source")


def test_truncated_line(tmp_path: Path) -> None:
    path = broken_copy(tmp_path, DICE, 150, lambda line: line.body[: len(line.body) // 2])
    line, key, rule = only_problem(path)
    assert (line, key, rule) == (150, "", "line-json")


def test_invalid_utf8(tmp_path: Path) -> None:
    path = broken_copy(tmp_path, YOLO, 12, lambda line: line.body.replace(b"s3://", b"s3:\xff/", 1))
    report = validate_manifest(path)
    assert problems(report) == [(12, "", "line-utf8")]
    assert "not valid UTF-8" in report.problems[0].message


def test_class_missing_from_class_map(tmp_path: Path) -> None:
    path = broken_copy(tmp_path, DICE, 10, change(["dice-labeling-metadata", "class-map"], {"0": "one"}))
    report = validate_manifest(path)
    assert {rule for _, _, rule in problems(report)} == {"class-map-missing-class"}
    assert all(line == 10 for line, _, _ in problems(report))
    assert report.attributes["dice-labeling"].invalid == 1


def test_duplicate_top_level_key(tmp_path: Path) -> None:
    path = broken_copy(tmp_path, YOLO, 4, lambda line: line.body[:-1] + b',"category":{"image_size":[],"annotations":[]}}')
    report = validate_manifest(path)
    assert (4, "category", "duplicate-key") in problems(report)


def test_the_same_string_as_a_value_is_not_a_duplicate(tmp_path: Path) -> None:
    path = broken_copy(tmp_path, YOLO, 4, lambda line: line.with_values({"note": "category"}))
    assert validate_manifest(path).ok


def test_dollar_key_and_sizes(tmp_path: Path) -> None:
    path = broken_copy(tmp_path, YOLO, 5, lambda line: line.with_values({"$seq": 1, "notes": "x" * 20_001}))
    report = validate_manifest(path)
    assert sorted(problems(report)) == [(5, "$seq", "key-dollar"), (5, "notes", "attribute-too-long")]
    path = broken_copy(tmp_path, YOLO, 6, lambda line: line.with_values({f"n{i}": "é" * 19_000 for i in range(6)}))
    report = validate_manifest(path)
    assert problems(report) == [(6, "", "line-too-long")]
    assert "characters; Ground Truth allows at most 100,000" in report.problems[0].message


def test_blank_lines_warn_and_fail_when_strict(tmp_path: Path) -> None:
    path = broken_copy(tmp_path, YOLO, 9, lambda line: b"   ")
    report = validate_manifest(path)
    assert report.ok and report.blank_lines == 1 and problems(report) == [(9, "", "line-blank")]
    assert report.problems[0].severity == "warning"
    strict = validate_manifest(path, strict=True)
    assert not strict.ok and strict.errors == 1


def test_bom_and_crlf(tmp_path: Path) -> None:
    raw = (GT / YOLO).read_bytes()
    target = tmp_path / "bom.manifest"
    target.write_bytes(b"\xef\xbb\xbf" + raw.replace(b"\n", b"\r\n")[:-2])
    report = validate_manifest(str(target))
    assert report.ok and report.lines == 50 and report.attributes["category"].labeled == 50


@pytest.mark.parametrize("tail", [b"", b"\n", b"\r\n", b"  "])
def test_a_file_holding_only_a_bom_is_one_blank_line(tmp_path: Path, tail: bytes) -> None:
    # Notepad's "UTF-8 with BOM" of an empty file: the line reader, `stats` and a job's input
    # check count one blank line; `validate` said "0 lines" for a bare BOM. Such a file holds no
    # data object: validate refuses it as a job does, naming its one line
    from totask_manifest._analytics.stats import manifest_stats

    target = tmp_path / "bom-only.manifest"
    target.write_bytes(b"\xef\xbb\xbf" + tail)
    checked = check_range(str(target))
    assert (checked.lines, checked.blank) == (1, 1) == (len(list(read_lines(str(target)))),
                                                        manifest_stats(str(target)).blank_lines)
    assert [(p.line, p.key, p.rule) for p in checked.problems] == [(1, "", "line-blank")]
    with pytest.raises(InvalidInputError, match=r"holds no data object \(1 line, all blank\).*\[input-empty\]"):
        validate_manifest(str(target))


# ---- label attributes --------------------------------------------------------------------------------

OD_META = {"objects": [], "class-map": {}, "type": "groundtruth/object-detection", "human-annotated": "no",
           "creation-date": "2026-11-21T08:00:00.000000", "job-name": "labeling-job/dogs"}


def manifest(tmp_path: Path, records: list[dict]) -> str:
    target = tmp_path / "m.manifest"
    target.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))
    return str(target)


def test_failure_lines(tmp_path: Path) -> None:
    failed = {"source-ref": "s3://b/1.jpg", "dogs-metadata": {
        "failure-reason": "FetchError: HTTP 404", "type": "groundtruth/object-detection",
        "job-name": "labeling-job/dogs", "creation-date": "2026-11-21T08:00:00.000000"}}
    labeled = {"source-ref": "s3://b/2.jpg", "dogs": {"image_size": [{"width": 1, "height": 1}], "annotations": []},
               "dogs-metadata": OD_META}
    both = {**labeled, "dogs-metadata": {**failed["dogs-metadata"]}}
    report = validate_manifest(manifest(tmp_path, [failed, labeled, both]))
    assert report.ok
    assert problems(report) == [(3, "dogs", "failure-with-label")]
    stats = report.attributes["dogs"]
    assert (stats.labeled, stats.failed) == (1, 2)
    empty_reason = {"source-ref": "s3://b/1.jpg", "dogs-metadata": {"failure-reason": "", "type": "groundtruth/object-detection"}}
    assert problems(validate_manifest(manifest(tmp_path, [empty_reason]))) == [
        (1, "dogs-metadata.failure-reason", "schema-minLength")]


def test_routed_lines(tmp_path: Path) -> None:
    """A line a model left for human review: metadata with review-status and no label value."""
    routed = {"source-ref": "s3://b/1.jpg", "dogs-metadata": {
        "review-status": "routed", "confidence": 0.31, "review-threshold": 0.5,
        "review-reason": "confidence 0.310 is below --review-below 0.5", "type": "groundtruth/object-detection",
        "job-name": "labeling-job/dogs", "human-annotated": "no", "creation-date": "2026-11-21T08:00:00.000000"}}
    report = validate_manifest(manifest(tmp_path, [routed, routed]))
    assert report.ok and problems(report) == []
    assert (report.attributes["dogs"].routed, report.attributes["dogs"].labeled) == (2, 0)
    assert "2 routed to review" in report.summary()
    bad = {**routed, "dogs-metadata": {**routed["dogs-metadata"], "review-status": "pending", "confidence": 31}}
    assert sorted(problems(validate_manifest(manifest(tmp_path, [bad])))) == [
        (1, "dogs-metadata.confidence", "schema-maximum"), (1, "dogs-metadata.review-status", "schema-const")]


def test_routed_line_with_a_value_holds_no_label(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A value beside ``review-status: routed`` was counted labeled and valid (``stats`` counts it
    routed), and held to the attribute's task type: an image classification value under a boxes
    attribute was ``label-attribute-mixed-types``. Now ``routed-with-label``, as a failed line's."""
    routed_meta = {**OD_META, "review-status": "routed", "confidence": 0.31}
    routed_boxes = {**boxes_line(0), "boxes-metadata": routed_meta}
    routed_class = {**class_line(0), "boxes-metadata": {**IC_META, "review-status": "routed"}}
    for records in ([routed_class, *(boxes_line(n) for n in range(2, 40))],  # not the attribute's first label
                    [*(boxes_line(n) for n in range(1, 3)), routed_class, *(boxes_line(n) for n in range(4, 40))],
                    [*(boxes_line(n) for n in range(1, 20)), routed_boxes, *(boxes_line(n) for n in range(21, 40))]):
        report = same_reports(manifest(tmp_path, records), monkeypatch)  # the runs and typed path refuse it too
        assert [p[1:] for p in problems(report)] == [("boxes", "routed-with-label")], problems(report)
        assert report.ok
        stats = report.attributes["boxes"]
        assert (stats.labeled, stats.routed, stats.invalid) == (38, 1, 0)
    path = manifest(tmp_path, [boxes_line(1), routed_class])
    assert problems(validate_manifest(path, label_attribute="boxes")) == [(2, "boxes", "routed-with-label")]
    assert str(validate_manifest(path).problems[0]) == (
        "line 2: warning: boxes: the metadata says this object was routed to review (review-status: routed) but a "
        "label value is present [routed-with-label]")


def test_label_attribute_mode(tmp_path: Path) -> None:
    labeled = {"source-ref": "s3://b/2.jpg", "dogs": {"image_size": [{"width": 1, "height": 1}], "annotations": []},
               "dogs-metadata": OD_META}
    unlabeled = {"source-ref": "s3://b/3.jpg"}
    value_only = {"source-ref": "s3://b/4.jpg", "dogs": 1}
    meta_only = {"source-ref": "s3://b/5.jpg", "dogs-metadata": OD_META}
    path = manifest(tmp_path, [labeled, unlabeled, value_only, meta_only])
    report = validate_manifest(path, label_attribute="dogs")
    assert problems(report) == [(3, "dogs-metadata", "metadata-missing"), (4, "dogs", "label-missing")]
    assert report.unlabeled == 1
    wrong = validate_manifest(path, label_attribute="dogs", task_type="image-classification")
    assert (1, "dogs-metadata.type", "schema-const") in problems(wrong)
    with pytest.raises(ManifestError) as info:  # no attribute of that type in the file: nothing checked, not "valid"
        validate_manifest(path, task_type="image-classification")
    assert info.value.rule == "label-attribute-absent" and "dogs (object-detection)" in str(info.value)



def test_a_null_value_is_no_value(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``"dogs": null`` is no value, as the chain's selection reads it (``needs_label``: Ground
    Truth's "no data connected to that label attribute name", the line labeled again), and
    ``stats``, ``labeled`` and ``apply`` with it: without metadata the line is unlabeled (it was
    ``metadata-missing``), beside a type ``label-missing`` (it was the schema's ``null is not of
    type "object"``), beside a failure or a routing no ``failure-with-label`` or ``routed-with-label``."""
    labeled = {"source-ref": "s3://b/1.jpg", "dogs": {"image_size": [{"width": 1, "height": 1}], "annotations": []},
               "dogs-metadata": OD_META}
    unlabeled = {"source-ref": "s3://b/2.jpg", "dogs": None}
    typed = {"source-ref": "s3://b/3.jpg", "dogs": None, "dogs-metadata": OD_META}
    failed = {"source-ref": "s3://b/4.jpg", "dogs": None,
              "dogs-metadata": {"failure-reason": "FetchError: HTTP 404", "type": "groundtruth/object-detection"}}
    routed = {"source-ref": "s3://b/5.jpg", "dogs": None, "dogs-metadata": {**OD_META, "review-status": "routed"}}
    path = manifest(tmp_path, [labeled, unlabeled, typed, failed, routed])
    report = same_reports(path, monkeypatch, label_attribute="dogs")
    assert problems(report) == [(3, "dogs", "label-missing")]
    stats = report.attributes["dogs"]
    assert (report.unlabeled, stats.labeled, stats.failed, stats.routed) == (1, 1, 1, 1)
    assert problems(same_reports(path, monkeypatch)) == [(3, "dogs", "label-missing")]

def test_unknown_metadata_type_is_a_warning(tmp_path: Path) -> None:
    record = {"source-ref": "s3://b/1.jpg", "x": 1, "x-metadata": {"type": "groundtruth/future-task"},
              "y": 2, "y-metadata": {"kind": "not a label"}, "source-ref-metadata": {"format": "binary/xyzi"}}
    report = validate_manifest(manifest(tmp_path, [record]))
    assert report.ok and problems(report) == [(1, "x-metadata.type", "metadata-type-unknown")]
    strict = validate_manifest(manifest(tmp_path, [record]), label_attribute="y")
    assert problems(strict) == [(1, "y-metadata", "metadata-type-unknown")]
    # a task type's name without the 'groundtruth/' prefix was passed unchecked without a word
    bare = {"source-ref": "s3://b/1.jpg", "z": 1, "z-metadata": {"type": "image-classification", "class-name": 5}}
    report = validate_manifest(manifest(tmp_path, [bare]))
    assert report.ok and problems(report) == [(1, "z-metadata.type", "metadata-type-unknown")]
    assert "lacks the prefix Ground Truth writes ('groundtruth/image-classification')" in report.problems[0].message


def test_type_mismatch_departure_only_for_references(tmp_path: Path) -> None:
    inline = {"source-ref": "s3://b/0.txt", "pointcloud-ref": {"annotations": []}, "pointcloud-ref-metadata": {
        "objects": [], "class-map": {}, "type": "groundtruth/point_cloud_object_detection", "human-annotated": "yes",
        "creation-date": "2020-05-12T18:10:07.771620", "job-name": "labeling-job/pc"}}
    report = validate_manifest(manifest(tmp_path, [inline]))
    assert problems(report) == [(1, "pointcloud-ref", "label-attribute-ref-forbidden")]


def test_schema_option_checks_whole_lines(tmp_path: Path) -> None:
    seqlabel = GT / "video-object-tracking__iprivit-object-tracking-project__SeqLabel.jsonl"
    assert validate_manifest(str(seqlabel), schema="seqlabel").ok
    not_seqlabel = validate_manifest(str(GT / YOLO), schema="seqlabel")
    assert not_seqlabel.errors == 50 and {p.rule for p in not_seqlabel.problems} == {"schema-anyOf"}
    dm = {"annotations": {"image_1": [{"id": "a", "tool": "bounding_box"}]}, "annotationsData": {"image_1": []}}
    assert problems(validate_manifest(manifest(tmp_path, [dm]), schema="dm-schema-v1")) == [
        (1, "annotations.image_1[0]", "dm-annotation-data-missing")]
    with pytest.raises(UsageError, match="cannot be combined"):
        validate_manifest(str(seqlabel), schema="seqlabel", label_attribute="x")
    with pytest.raises(UsageError, match="unknown schema"):
        validate_manifest(str(seqlabel), schema="seqlabels")
    with pytest.raises(UsageError, match="unknown task type"):
        validate_manifest(str(seqlabel), task_type="bounding-box")
    with pytest.raises(UsageError, match="workers"):
        validate_manifest(str(seqlabel), workers=0)


def test_missing_file() -> None:
    with pytest.raises(StorageError, match="no such file"):
        validate_manifest(str(GT / "absent.manifest"))


# ---- scale: ranges in parallel, capped problems, flat memory ---------------------------------------


def big_broken_file(folder: Path, copies: int) -> tuple[str, list[tuple[int, str, str]]]:
    """The dice file repeated, with known errors planted at known lines."""
    lines = list(read_lines(str(GT / DICE)))
    out: list[bytes] = []
    planted: list[tuple[int, str, str]] = []
    for _ in range(copies):
        for line in lines:
            number = len(out) + 1
            if number % 997 == 0:
                record = line.record()
                label = record["dice-labeling"]
                if label["annotations"]:
                    label["annotations"][0]["height"] = -1
                    out.append(line.with_values({"dice-labeling": label}).raw)
                    planted.append((number, "dice-labeling.annotations[0].height", "schema-minimum"))
                    continue
            if number % 1999 == 0:
                out.append(line.body[:40] + b"\n")
                planted.append((number, "", "line-json"))
                continue
            out.append(line.raw)
    target = folder / f"big-{copies}.manifest"
    target.write_bytes(b"".join(out))
    return str(target), planted


@pytest.mark.slow
def test_parallel_ranges_report_the_same_lines(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path, planted = big_broken_file(tmp_path, 20)  # 6,300 lines, about 2.7 MB
    assert len(planted) > 6
    single = validate_manifest(path, workers=1)
    monkeypatch.setattr(ranges_module, "MIN_RANGE_BYTES", 1 << 15)
    parallel = validate_manifest(path, workers=3)
    assert problems(single) == planted
    assert problems(parallel) == planted
    assert parallel.lines == single.lines == 6300
    assert parallel.attributes == single.attributes
    assert parallel.attributes["dice-labeling"].labeled == 6300 - sum(1 for p in planted if p[2] == "line-json")


def test_memory_urls_stay_in_one_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path, planted = big_broken_file(tmp_path, 4)
    assert planted
    url = "memory://validate-test/big.manifest"
    write_bytes_atomic(url, Path(path).read_bytes())
    monkeypatch.setattr(ranges_module, "MIN_RANGE_BYTES", 1 << 9)
    report = validate_manifest(url, workers=2)  # a worker process could not see this file
    assert problems(report) == planted


@pytest.mark.slow
def test_problems_are_capped_but_counted(tmp_path: Path) -> None:
    path, planted = big_broken_file(tmp_path, 20)
    report = validate_manifest(path, max_problems=3)
    assert problems(report) == planted[:3]
    assert report.errors == len(planted)
    assert sum(report.counts_by_rule.values()) == len(planted)
    assert report.problems_dropped == len(planted) - 3
    assert f"({len(planted) - 3:,} more problems not listed)" in report.summary()


def traced_peak(path: str) -> tuple[ValidationReport, int]:
    tracemalloc.start()
    try:
        report = validate_manifest(path, workers=1, max_problems=5)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return report, peak


_PEAKS = """
import sys, orjson
from tests.test_validate import traced_peak
from totask_manifest._manifest.validate import validate_manifest
validate_manifest(sys.argv[1], workers=1)  # compile the schemas first
out = []
for path in sys.argv[1:]:
    report, peak = traced_peak(path)
    out.append([report.lines, report.errors, len(report.problems), peak])
print(orjson.dumps(out).decode())
"""


@pytest.mark.slow
def test_validation_memory_does_not_grow_with_the_file(tmp_path: Path) -> None:
    """Measured in a process of its own: tracemalloc counts every thread's allocations, and a
    thread an earlier test left running (a server, a pool) allocated a megabyte in this one's
    window once, in a full run."""
    import subprocess
    import sys

    from tests.jobs_helpers import REPO

    small, _ = big_broken_file(tmp_path, 10)
    large, planted = big_broken_file(tmp_path, 40)  # 12,600 lines, about 5.4 MB
    done = subprocess.run([sys.executable, "-c", _PEAKS, small, large], cwd=REPO, capture_output=True,
                          text=True, timeout=300, check=True)
    (small_lines, _, _, small_peak), (large_lines, large_errors, large_problems, large_peak) = orjson.loads(done.stdout)
    assert small_lines == 3_150 and large_lines == 12_600
    assert large_errors == len(planted) and large_problems == 5
    assert large_peak < 8 * (1 << 20), f"{large_peak / 2**20:.1f} MiB"
    assert large_peak < small_peak * 1.5, (small_peak, large_peak)


@pytest.mark.slow
def test_validate_on_s3(s3: S3Endpoint, monkeypatch: pytest.MonkeyPatch) -> None:
    bucket = s3.new_bucket()
    url = f"{bucket}/job/manifests/output/output.manifest"
    write_bytes_atomic(url, (GT / DICE).read_bytes())
    report = validate_manifest(url)
    assert report.ok and report.lines == 315
    monkeypatch.setattr(ranges_module, "MIN_RANGE_BYTES", 1 << 9)
    parallel = validate_manifest(url, workers=2)  # workers reopen the object through s3fs
    assert parallel.ok and parallel.lines == 315 and parallel.attributes == report.attributes


@pytest.mark.parametrize("chunk", [1, 2, 5, 1 << 20])
def test_batch_reader_partitions_like_iter_raw_lines(chunk: int) -> None:
    sample = b'\xef\xbb\xbf{"a":1}\r\n\n{"b": 2}\n   \r\n{"c":3}'
    for start in range(len(sample) + 1):
        for end in [*range(start, len(sample) + 1), None]:
            expected = [raw[:-1] if raw.endswith(b"\n") else raw
                        for raw in iter_raw_lines(io.BytesIO(sample), start=start, end=end)]
            got = list(itertools.chain.from_iterable(
                iter_line_batches(io.BytesIO(sample), start=start, end=end, chunk=chunk)))
            assert got == expected, (start, end)


# ---- the run-at-once fast path reports exactly what the per-line path reports ------------------------


def per_line_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(line_check.LineChecker, "_runs_possible", property(lambda self: False))


def same_reports(path: str, monkeypatch: pytest.MonkeyPatch, **kwargs: Any) -> ValidationReport:
    fast = validate_module.validate_manifest(path, workers=1, **kwargs)
    with monkeypatch.context() as m:
        per_line_only(m)
        slow = validate_module.validate_manifest(path, workers=1, **kwargs)
    assert fast.to_dict() == slow.to_dict()
    return fast


@pytest.mark.parametrize("name", [n for n in REAL if n not in DOCUMENT_SCHEMA], ids=lambda n: n[:60])
def test_runs_and_lines_agree_on_real_files(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    same_reports(str(GT / name), monkeypatch)


POOL = [line.raw for name in (YOLO, DICE, SEMSEG, PERSON, CUSTOM) for line in list(read_lines(str(GT / name)))[:3]]
BROKEN_POOL = [
    b'{"source-ref":"s3://a/b.jpg","source":"x"}\n',
    b"\n",
    b'{"source-ref":"s3://a/b.jpg","category":{"image_size":[{"width":1,"height":1}],"annotations":[]},'
    b'"category-metadata":{"objects":[{"confidence":1}],"class-map":{},"type":"groundtruth/object-detection",'
    b'"human-annotated":"yes","creation-date":"2022-09-12T09:51:00.148118","job-name":"labeling-job/x"}}\n',
    b'{"source-ref":"s3://a/b.jpg","source-ref":"s3://a/c.jpg"}\n',
    b'{"source-ref":"s3://a/b.jpg","category":1,"category-metadata":{"failure-reason":"timeout"}}\n',
    b'{"source-ref":"s3://a/b.jpg","category-metadata":{"failure-reason":"timeout"}}\n',
    b'{"source-ref":"s3://a/b.jpg","category-metadata":{"review-status":"routed"}}\n',
    b'{"source-ref":"s3://a/b.jpg","note":"category","category":{"image_size":[{"width":1,"height":1}],'
    b'"annotations":[]},"category-metadata":{"objects":[],"class-map":{},"type":"groundtruth/object-detection",'
    b'"human-annotated":"yes","creation-date":"2022-02-30T09:51:00","job-name":"labeling-job/x"}}\n',
    b'{"source-ref":"s3://a/b.jpg","x-metadata":{"type":"groundtruth/unknown"}}\n',
    b'[1, 2]\n',
    b'{"source-ref":"s3://a/\xff.jpg"}\n',
]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.sampled_from(POOL), min_size=1, max_size=40), st.lists(st.tuples(st.integers(0, 39), st.sampled_from(BROKEN_POOL)), max_size=4))
@pytest.mark.slow
def test_runs_and_lines_agree_on_mixed_files(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch,
                                             lines: list[bytes], broken: list[tuple[int, bytes]]) -> None:
    lines = list(lines)
    for at, raw in broken:
        lines.insert(min(at, len(lines)), raw)
    path = tmp_path_factory.mktemp("mixed") / "m.manifest"
    path.write_bytes(b"".join(lines))
    monkeypatch.setattr(line_check, "RUN_LINES", 7)  # several runs per file
    same_reports(str(path), monkeypatch)


def test_a_label_attribute_no_line_holds_is_an_error_from_python_too(tmp_path: Path) -> None:
    """``validate_manifest(path, label_attribute="dgos")`` returned a report with ``ok`` True and
    the summary "valid: 2 lines, 0 errors", where the CLI exits 1 naming the attributes the lines
    hold: a script checking ``report.ok`` passed a misspelt name."""
    labeled = {"source-ref": "s3://b/2.jpg", "dogs": {"image_size": [{"width": 1, "height": 1}], "annotations": []},
               "dogs-metadata": OD_META}
    path = manifest(tmp_path, [labeled, {"source-ref": "s3://b/3.jpg"}])
    with pytest.raises(ManifestError) as info:
        validate_manifest(path, label_attribute="dgos")
    assert info.value.rule == "label-attribute-absent"
    assert "no line holds 'dgos'" in str(info.value) and "dogs" in str(info.value)
    assert validate_manifest(path, label_attribute="dogs").ok


# ---- one label attribute, one task type ----------------------------------------------------------

MIXED = "label-attribute-mixed-types"
IC_META = {"class-name": "dog", "confidence": 0.9, "type": "groundtruth/image-classification",
           "job-name": "labeling-job/dogs", "human-annotated": "yes", "creation-date": "2026-11-21T08:00:00.000000"}


def boxes_line(n: int) -> dict:
    return {"source-ref": f"s3://b/{n}.jpg", "boxes": {"image_size": [{"width": 1, "height": 1}], "annotations": []},
            "boxes-metadata": OD_META}


def class_line(n: int) -> dict:
    return {"source-ref": f"s3://b/{n}.jpg", "boxes": 0, "boxes-metadata": IC_META}


def test_one_label_attribute_holds_one_task_type(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Line 9 held an image classification label under ``boxes``, whose line 1 holds boxes: valid,
    exit 0, both types in the summary. Ground Truth fills one attribute by one job of one type."""
    custom = {"source-ref": "s3://b/c.jpg", "boxes": {"any": "document"}, "boxes-metadata": {
        "type": "groundtruth/custom", "job-name": "dogs", "human-annotated": "no", "creation-date": "2026-11-21T08:00:00"}}
    failed = {"source-ref": "s3://b/f.jpg", "boxes-metadata": {"failure-reason": "FetchError: HTTP 404"}}
    unknown = {"source-ref": "s3://b/u.jpg", "boxes": 1, "boxes-metadata": {"type": "groundtruth/future-task"}}
    records = [boxes_line(n) for n in range(1, 9)] + [class_line(9), custom, failed, unknown, class_line(13)]
    report = same_reports(manifest(tmp_path, records), monkeypatch)  # runs and typed path agree with the per-line path
    assert not report.ok
    assert [p for p in problems(report) if p[2] != "metadata-type-unknown"] == [
        (9, "boxes-metadata.type", MIXED), (13, "boxes-metadata.type", MIXED)]
    assert str(report.problems[0]) == (
        "line 9: error: boxes-metadata.type: 'groundtruth/image-classification' differs from "
        "'groundtruth/object-detection' (line 1): one label attribute holds one task type [label-attribute-mixed-types]")
    assert report.attributes["boxes"].invalid == 2
    # a failed line holds no label: the first label's type is that of the line after it
    assert problems(validate_manifest(manifest(tmp_path, [failed, class_line(2), boxes_line(3)]))) == [
        (3, "boxes-metadata.type", MIXED)]
    # nor does a failed line that holds a value (``failure-with-label``): as ``stats``, it is no label,
    # neither the attribute's first (line 1 here) nor one that differs from it (line 3)
    failed_value = {**class_line(0), "boxes-metadata": {**IC_META, "failure-reason": "FetchError: HTTP 404"}}
    for records in ([failed_value, *(boxes_line(n) for n in range(2, 40))],
                    [*(boxes_line(n) for n in range(1, 3)), failed_value, *(boxes_line(n) for n in range(4, 40))]):
        report = same_reports(manifest(tmp_path, records), monkeypatch)
        assert [p[2] for p in problems(report)] == ["failure-with-label"], problems(report)
    # another attribute, another type: nothing to say; custom labels beside any type
    other = {**boxes_line(2), "kind": 0, "kind-metadata": IC_META}
    assert validate_manifest(manifest(tmp_path, [boxes_line(1), other, custom])).ok
    # --label-attribute (every line on the per-line path), and --task-type, say it the same way
    path = manifest(tmp_path, [boxes_line(1), class_line(2)])
    assert problems(validate_manifest(path, label_attribute="boxes")) == [(2, "boxes-metadata.type", MIXED)]
    assert (2, "boxes-metadata.type", MIXED) in problems(
        validate_manifest(path, label_attribute="boxes", task_type="object-detection"))


@pytest.mark.parametrize("first_range", ["boxes", "classes"])
def test_one_task_type_across_ranges(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, first_range: str) -> None:
    """Each range holds its lines to its own first label; a later range whose first label is of
    another type than the file's first is judged against the file's, and the messages name the
    file's first line, not the range's."""
    first, second = (boxes_line, class_line) if first_range == "boxes" else (class_line, boxes_line)
    # the file's first type; a range starting with the other; one with both, in the file's order
    records = ([first(n) for n in range(1, 301)] + [second(n) for n in range(301, 601)]
               + [first(n) if n % 2 else second(n) for n in range(601, 901)])
    path = manifest(tmp_path, records)
    single = validate_manifest(path, workers=1)
    monkeypatch.setattr(ranges_module, "MIN_RANGE_BYTES", 1 << 13)
    parallel = validate_manifest(path, workers=3, max_problems=10_000)
    wrong = [n for n in range(301, 901) if n <= 600 or n % 2 == 0]
    assert problems(single) == problems(parallel) == [(n, "boxes-metadata.type", MIXED) for n in wrong]
    assert [p.message for p in parallel.problems] == [p.message for p in single.problems]
    assert all("(line 1)" in p.message for p in parallel.problems)
    assert parallel.attributes == single.attributes and parallel.attributes["boxes"].invalid == len(wrong)


def test_an_attribute_first_met_in_a_later_range_is_named_by_its_line_in_the_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An attribute whose first label is in the second range or later: its messages named that
    label by its line in the range (``(line 24)``), not in the file (``(line 601)``); both when
    the range is not checked again and when another attribute's mix makes it checked again."""
    plain = [{"source-ref": f"s3://b/{n}.jpg", "other": 0, "other-metadata": IC_META} for n in range(1, 601)]
    later_boxes = {"source-ref": "s3://b/y.jpg", "y": boxes_line(0)["boxes"], "y-metadata": OD_META}
    later_class = {"source-ref": "s3://b/z.jpg", "y": 0, "y-metadata": IC_META}
    records = [*plain, later_class, later_boxes, later_class]
    path = manifest(tmp_path, records)
    single = validate_manifest(path, workers=1)
    monkeypatch.setattr(ranges_module, "MIN_RANGE_BYTES", 1 << 13)
    parallel = validate_manifest(path, workers=3, max_problems=10_000)
    assert problems(single) == problems(parallel) == [(602, "y-metadata.type", MIXED)]
    assert [p.message for p in parallel.problems] == [p.message for p in single.problems]
    assert "(line 601)" in parallel.problems[0].message, parallel.problems[0].message
    # and where that range is checked again for another attribute's mix: ``other`` holds boxes from
    # line 451 on, so the ranges after line 451 start with a type other than the file's first
    records = [*plain[:450], *({**line, "other": boxes_line(0)["boxes"], "other-metadata": OD_META}
                               for line in plain[450:]), later_class, later_boxes]
    path = manifest(tmp_path, records)
    single = validate_manifest(path, workers=1, max_problems=10_000)
    parallel = validate_manifest(path, workers=3, max_problems=10_000)
    assert problems(single) == problems(parallel) == [
        *((n, "other-metadata.type", MIXED) for n in range(451, 601)), (602, "y-metadata.type", MIXED)]
    assert [p.message for p in parallel.problems] == [p.message for p in single.problems]
    assert "(line 601)" in parallel.problems[-1].message and "(line 1)" in parallel.problems[0].message
