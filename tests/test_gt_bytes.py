"""Ground Truth's byte conventions: a line the project labels from a Ground Truth label must be,
byte for byte, the line Ground Truth wrote, apart from the values of ``job-name``,
``creation-date`` and ``human-annotated``.

Every labeled line of every real output manifest in ``../shared/gt-manifests`` is rebuilt from
its own label: once through the writer's parts (``formats.groundtruth`` -> ``jobs.recorder`` ->
the splice in ``manifest.line``) and once through a whole ``annotate --method file`` job that
reads one label file per line.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from tests.support.gt import GT_MANIFESTS as GT
from tests.support.gt import HAVE_GT, real_cases, requires_gt
from totask_manifest._annotators.base import Item, Labeled
from totask_manifest._formats import coco_to_gt, from_groundtruth, to_groundtruth, yolo_to_gt
from totask_manifest._formats.model import FormatError
from totask_manifest._jobs.config import JobConfig
from totask_manifest._jobs.recorder import Recorder
from totask_manifest._manifest.line import DELETE, Line, gt_json
from totask_manifest._task_types import TASK_TYPES, order_metadata, task_type_of_metadata

REPO = Path(__file__).resolve().parents[1]
#: the three values a new job writes differently by design
JOB_VALUES = re.compile(rb'"(job-name|creation-date|human-annotated)":"[^"]*"')
#: Ground Truth itself typed this sequence result "point_cloud_object_detection" (SOURCES.md);
#: the project refuses a reference as a detection label rather than copy the mistake
MISTYPED = "pointcloud-object-tracking__aws-samples-groundtruth-immersionday__OT-adjustment-manifest.manifest"
#: the one file written before Ground Truth's 2022 key order (2019, Python 2 dict order)
OLD_ORDER = "object-detection-chained-same-attribute__aws-samples-mxnet-dice-aim403-workshop__output.manifest"

pytestmark = requires_gt


def gt_files() -> list[str]:
    """The output manifests: files holding at least one Ground Truth label."""
    if not HAVE_GT:
        return []
    names = sorted(p.name for p in GT.iterdir() if p.suffix == ".manifest" or p.name.endswith("excerpt.jsonl"))
    return [n for n in names if any(True for _ in labeled_lines(n))]


def normal(body: bytes) -> bytes:
    return JOB_VALUES.sub(rb'"\1":"*"', body)


def labeled_lines(name: str) -> Iterator[tuple[Line, str, str]]:
    """(line, attribute, task type) for each line with a Ground Truth label (the last one on the line)."""
    for number, raw in enumerate((GT / name).read_bytes().splitlines(), 1):
        record = orjson.loads(raw)
        attrs = [k[: -len("-metadata")] for k in record if k.endswith("-metadata") and k[: -len("-metadata")] in record]
        attrs = [a for a in attrs if task_type_of_metadata(record[a + "-metadata"]) is not None and a != "source-ref"]
        if attrs:
            meta = record[attrs[-1] + "-metadata"]
            yield Line(number, raw), attrs[-1], task_type_of_metadata(meta).name


class _NoWriter:
    def add(self, record: dict, body: bytes, input_bytes: int | None = None) -> None:
        pass


def rebuild(line: Line, attr: str, task_type: str, labeled: Labeled, job_name: str = "another-job") -> bytes:
    """The line a job named ``job_name`` writes when it labels ``line`` (its label removed) with ``labeled``."""
    before = line.with_values({attr: DELETE, attr + "-metadata": DELETE})
    config = JobConfig(job_name=job_name, input="in", output_root="out", label_attribute=attr,
                       task_type=task_type)
    recorder = Recorder(config, _NoWriter(), {"labeled": 0, "failed": 0, "routed": 0})
    status, updates, reason = recorder.updates_for(Item(line.number - 1, line.number, before.record()), labeled)
    assert status == "labeled", reason
    return before.with_values(updates).body


@pytest.mark.parametrize("name", real_cases(n for n in gt_files() if n != MISTYPED))
def test_every_labeled_line_rebuilds_byte_for_byte(name):
    count = 0
    for line, attr, task_type in labeled_lines(name):
        record = line.record()
        whole = from_groundtruth(record, task_type, label_attribute=attr)
        pair = from_groundtruth({"label": record[attr], "metadata": record[attr + "-metadata"]}, task_type)
        for labeled in (whole, pair):
            assert normal(rebuild(line, attr, task_type, labeled)) == normal(line.body), f"{name} line {line.number}"
        count += 1
    assert count > 0


@pytest.mark.parametrize("name", real_cases(n for n in gt_files() if n != MISTYPED))
def test_a_job_named_as_the_real_one_writes_its_job_name(name):
    """Ground Truth writes ``labeling-job/<lower-cased name>`` for the built-in 2D types and the
    lower-cased name alone for custom workflows and 3D point cloud jobs (the legal-entity and
    immersion day files): a job of the same name and task type writes the same value."""
    count = 0
    for line, attr, task_type in labeled_lines(name):
        record = line.record()
        real = record[attr + "-metadata"].get("job-name")
        if real is None:
            continue
        labeled = from_groundtruth(record, task_type, label_attribute=attr)
        named = real.removeprefix("labeling-job/").upper()  # Ground Truth lower-cases the name
        written = orjson.loads(rebuild(line, attr, task_type, labeled, job_name=named))[attr + "-metadata"]
        assert written["job-name"] == real, f"{name} line {line.number} ({task_type})"
        count += 1
    assert count > 0


@pytest.mark.parametrize("name", real_cases(n for n in gt_files() if n not in (MISTYPED, OLD_ORDER)))
def test_labels_without_ground_truths_own_metadata_order_get_the_types_order(name):
    """A label with only its type-specific metadata (what every converter returns) is written in
    the order Ground Truth uses for that type; the real files are the evidence."""
    for line, attr, task_type in labeled_lines(name):
        record = line.record()
        labeled = from_groundtruth(to_groundtruth(record[attr], record[attr + "-metadata"]), task_type)
        assert normal(rebuild(line, attr, task_type, labeled)) == normal(line.body), f"{name} line {line.number}"


def test_2019_box_lines_keep_their_order_and_new_ones_get_2022s():
    line, attr, task_type = next(labeled_lines(OLD_ORDER))
    meta = line.record()[attr + "-metadata"]
    assert list(meta) == ["job-name", "class-map", "human-annotated", "objects", "creation-date", "type"]
    fresh = from_groundtruth(to_groundtruth(line.record()[attr], meta), task_type)
    written = orjson.loads(rebuild(line, attr, task_type, fresh))[attr + "-metadata"]
    assert list(written) == ["objects", "class-map", "type", "human-annotated", "creation-date", "job-name"]


def test_mistyped_sequence_label_is_refused_not_copied():
    line, attr, task_type = next(labeled_lines(MISTYPED))
    assert task_type == "point_cloud_object_detection" and attr.endswith("-ref")
    before = line.with_values({attr: DELETE, attr + "-metadata": DELETE})
    config = JobConfig(job_name="j", input="in", output_root="out", label_attribute=attr, task_type=task_type)
    recorder = Recorder(config, _NoWriter(), {"labeled": 0, "failed": 0, "routed": 0})
    labeled = from_groundtruth(line.record(), task_type, label_attribute=attr)
    status, _updates, outcome = recorder.updates_for(Item(0, 1, before.record()), labeled)
    assert status == "failed" and outcome.reason.startswith("schema: ") and "label" in outcome.reason
    with pytest.raises(FormatError, match="point_cloud_object_detection"):
        from_groundtruth(line.record(), "point_cloud_object_tracking", label_attribute=attr)


def test_every_type_has_an_order_ending_in_the_common_fields():
    for tt in TASK_TYPES.values():
        assert {"type", "job-name", "human-annotated", "creation-date"} <= set(tt.metadata_order), tt.name


def test_boxes_from_other_formats_use_ground_truths_key_order():
    coco = {"images": [{"id": 1, "width": 100, "height": 50}],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [10, 5, 20, 30], "score": 0.00001}],
            "categories": [{"id": 1, "name": "cat"}]}
    for labeled in (coco_to_gt(coco, "object-detection"),
                    yolo_to_gt("0 0.2 0.4 0.2 0.6\n", "object-detection", image_size=(100, 50, 3), class_names=["cat"])):
        assert list(labeled.value) == ["image_size", "annotations"]
        assert list(labeled.value["annotations"][0]) == ["class_id", "top", "left", "height", "width"]
        meta = order_metadata("object-detection", {"job-name": "j", "creation-date": "d", "type": "t",
                                                   "human-annotated": "no", **labeled.metadata})
        assert list(meta) == ["objects", "class-map", "type", "human-annotated", "creation-date", "job-name"]


def test_numbers_take_pythons_forms():
    """Ground Truth writes numbers as Python's json does: 1e-05, 0, 0.0 and 164.60000000000002 as given."""
    assert gt_json({"c": [1e-05, 0, 0.0, 164.60000000000002, 1e16, 2.5e-7]}) == (
        b'{"c":[1e-05,0,0.0,164.60000000000002,1e+16,2.5e-07]}')
    assert gt_json({"t": "café \u2028"}) == '{"t":"café \u2028"}'.encode()
    line = Line(1, b'{"source-ref":"s3://b/a.jpg"}')
    assert line.with_values({"a": {"objects": [{"confidence": 1e-05}]}}).body == (
        b'{"source-ref":"s3://b/a.jpg","a":{"objects":[{"confidence":1e-05}]}}')


def test_gt_json_writes_what_pythons_json_writes():
    """gt_json takes orjson's text where it is the same as json's: compare them on random floats
    of every magnitude, integers past 64 bits, every character up to U+07FF and the values
    orjson writes differently (NaN, infinity, keys that are not strings)."""
    import json
    import random
    import struct

    rng = random.Random(14)
    values: list = [struct.unpack("d", struct.pack("Q", rng.getrandbits(64)))[0] for _ in range(20_000)]
    values += [round(rng.uniform(0, 2000), rng.randint(0, 8)) for _ in range(5_000)]
    values += [rng.random() / 10 ** rng.randint(0, 9) for _ in range(5_000)]
    values += [float(f"{m}e{e}") for m in (1, 1.5, 9.999999, 123456789.123) for e in range(-330, 309)]
    values += [rng.randint(-2**70, 2**70) for _ in range(1_000)] + [2**63, 2**64, -2**63 - 1, -0.0, 5e-324]
    values += ["".join(map(chr, range(i, i + 64))) for i in range(0, 0x800, 64)] + ["\u2028\u2029\ufeff\U0001f600"]
    values += [{1: "a"}, {"k": None}, (1, 2.5), {"d": [1e-05, {"x": 1e22}]}, True, None]
    for value in values:
        if isinstance(value, float) and value != value:
            continue
        try:
            expected = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()
        except ValueError:
            with pytest.raises(ValueError):
                gt_json(value)
            continue
        assert gt_json(value) == expected, value
    for bad in (float("nan"), float("inf"), [float("-inf")]):
        with pytest.raises(ValueError):
            gt_json(bad)


# ---------------------------------------------------------------- the same through a whole job


@pytest.mark.parametrize("name", real_cases(n for n in gt_files() if n != MISTYPED))
def test_file_job_rebuilds_every_line(tmp_path, name, capsys):
    from totask_manifest._cli import main

    lines = list(labeled_lines(name))
    attr, task_type = lines[0][1], lines[0][2]
    lines = [entry for entry in lines if entry[1] == attr]
    (tmp_path / "labels").mkdir()
    inputs = []
    for line, _attr, _tt in lines:
        record = line.record()
        doc = {"label": record[attr], "metadata": record[attr + "-metadata"]}
        (tmp_path / "labels" / f"{line.number}.json").write_bytes(orjson.dumps(doc))
        before = line.with_values({attr: DELETE, attr + "-metadata": DELETE, "u": f"labels/{line.number}.json"})
        inputs.append(before.body + b"\n")
    (tmp_path / "in.manifest").write_bytes(b"".join(inputs))
    code = main(["annotate", str(tmp_path / "in.manifest"), "--job-name", "rebuild", "--label-attribute", attr,
                 "--task-type", task_type, "--method", "file", "--url-key", "u", "--input-format", "groundtruth",
                 "--allow-root", str(tmp_path), "--output", str(tmp_path / "out")])
    assert code == 0, capsys.readouterr()
    written = (tmp_path / "out" / "rebuild" / "manifests" / "output" / "output.manifest").read_bytes().splitlines()
    assert len(written) == len(lines)
    for raw, (line, _attr, _tt) in zip(written, lines, strict=True):
        got = Line(line.number, raw).with_values({"u": DELETE}).body
        assert normal(got) == normal(line.body), f"{name} line {line.number}"


def test_imported_lines_are_written_in_ground_truths_order(tmp_path):
    """``convert`` from COCO and YOLO writes whole lines itself: the same conventions."""
    from totask_manifest._analytics.convert import convert

    src = GT / "object-detection__aws-amazon-sagemaker-examples__yolov5-sample_output.manifest"
    convert(str(src), str(tmp_path / "c.json"), to="coco")
    convert(str(src), str(tmp_path / "yolo"), to="yolo")
    for i, back in enumerate((tmp_path / "from-coco.manifest", tmp_path / "from-yolo.manifest")):
        convert(str(tmp_path / ("c.json" if i == 0 else "yolo")), str(back), to="manifest")
        for n, raw in enumerate(back.read_bytes().splitlines()):
            record = orjson.loads(raw)
            # input keys before the labels, as Ground Truth keeps the input manifest's: the COCO image's id,
            # and on the first line the document's own sections (its info: coco_document)
            coco = [*["coco-document"] * (n == 0), "coco-image"] if i == 0 else []
            assert list(record) == ["source-ref", *coco, "label", "label-metadata"]
            assert list(record["label"]) == ["image_size", "annotations"]
            assert all(list(a) == ["class_id", "top", "left", "height", "width"] for a in record["label"]["annotations"])
            assert list(record["label-metadata"]) == ["objects", "class-map", "type", "human-annotated",
                                                      "creation-date", "job-name"]
            assert b'": ' not in raw and b'],"' in raw  # compact separators, as Ground Truth writes


def test_a_number_json_cannot_write_fails_its_line():
    """Ground Truth's writer (Python's json) refuses NaN and infinity; so does the job, per line."""
    line = Line(1, b'{"source-ref":"s3://b/a.jpg"}')
    config = JobConfig(job_name="j", input="in", output_root="out", label_attribute="c", task_type="custom")
    counts = {"labeled": 0, "failed": 0, "routed": 0}
    recorder = Recorder(config, _NoWriter(), counts)
    status = recorder.accept(line, Item(0, 1, line.record()), Labeled({"score": float("inf")}))
    assert status == "failed" and counts == {"labeled": 0, "failed": 1, "routed": 0}
    with pytest.raises(ValueError):
        gt_json(float("nan"))


def test_a_label_without_scores_stays_unscored_and_a_copied_zero_stays_zero():
    """Ground Truth writes ``"confidence":0`` when no consolidation score exists (2022, 2025 files):
    a label copied from such a line keeps it byte for byte; a label whose source has no score at
    all gets none (issue 11: a missing score is not a score of 0, and ``stats`` counts it unscored)."""
    real = (GT / "object-detection-chained-adjustment__YeongJun-Jeon-1to100_Korean__output.manifest").read_bytes()
    assert b'{"confidence":0}' in real and b'{"confidence":0.0}' not in real
    labeled = yolo_to_gt("0 0.5 0.5 0.2 0.2\n", "object-detection", image_size=(10, 10, 3), class_names=["a"])
    line = Line(1, b'{"source-ref":"s3://b/a.jpg"}')
    body = rebuild(line.with_values({"a": 1, "a-metadata": {}}), "a", "object-detection", labeled)
    assert b'"objects":[{}]' in body and b'"confidence"' not in body




#: types no real output file in ../shared/gt-manifests holds: the order of Ground Truth's documented
#: example (reference/ground-truth.md §2.4, §2.7, §2.10), the only evidence there is
DOCUMENTED_ORDER = {
    "image-classification-multilabel": ["job-name", "class-map", "human-annotated", "creation-date",
                                        "confidence-map", "type"],
    "label-verification": ["class-name", "confidence", "type", "job-name", "human-annotated", "creation-date",
                           "worker-feedback"],
    "video-object-detection": ["class-map", "job-name", "human-annotated", "creation-date", "type"],
}


@pytest.mark.parametrize(("task_type", "order"), DOCUMENTED_ORDER.items())
def test_types_without_a_real_file_follow_the_documented_example(task_type, order):
    assert task_type not in {tt for n in gt_files() for _, _, tt in labeled_lines(n)}
    shuffled = {key: "v" for key in reversed(order)}
    assert list(order_metadata(task_type, shuffled)) == order
