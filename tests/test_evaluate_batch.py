"""The fast lane (batches of detection lines matched in numpy) gives what reading line by line gives.

The reference is the driver's own line-by-line path (``_Run.line`` for every line, which never
enters the lane); both read the same real file, and every figure of ``to_dict`` and the worst
lines (boxes and all) must be equal. Hypothesis makes the matching hard: small integer canvases
(touching borders, identical boxes, IoU exactly at a threshold), tied scores, images without
predictions or without references, many boxes per class, float and int coordinates.
"""

from __future__ import annotations

import codecs
import random
from pathlib import Path

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.evaluate_helpers import PRED, REF, cocoeval, random_images, write_detection_manifest
from totask_manifest._analytics.evaluate import driver, evaluate_manifest
from totask_manifest._analytics.evaluate.batch import BatchedDetection
from totask_manifest._analytics.evaluate.columns import LIMIT


def line_by_line(path: Path, iou: float = 0.5) -> driver.Evaluation:
    """What ``evaluate_manifest`` found before the lane: every line through ``_Run.line``."""
    ev = driver.Evaluation(str(path), PRED, REF, "given", iou, 0.95)
    run = driver._Run(ev, {}, 12)
    number = 0
    for number, raw in enumerate(path.read_bytes().removeprefix(codecs.BOM_UTF8).split(b"\n")[:-1], start=1):
        run.line(number, raw)
    ev.total_lines = number
    run.finish()
    return ev


def same(path: Path, iou: float = 0.5) -> driver.Evaluation:
    fast = evaluate_manifest(str(path), predicted=PRED, reference=REF, iou=iou, workers=1)
    slow = line_by_line(path, iou)
    assert fast.to_dict() == slow.to_dict()
    assert [(w.line, w.source, w.errors, w.predicted, w.reference) for w in fast.worst] == \
        [(w.line, w.source, w.errors, w.predicted, w.reference) for w in slow.worst]
    return fast


coord = st.integers(min_value=0, max_value=30)
size = st.integers(min_value=1, max_value=16)
fcoord = st.floats(min_value=0, max_value=30, allow_nan=False).map(lambda v: round(v, 1))
score = st.sampled_from((0.1, 0.5, 0.5, 0.9, 0, 1))
box = st.tuples(st.sampled_from("abc"), st.one_of(coord, fcoord), coord, size, st.one_of(size, fcoord.filter(bool)))
scored = st.tuples(st.sampled_from("abc"), coord, st.one_of(coord, fcoord), size, size, score)
image = st.tuples(st.lists(scored, max_size=7), st.lists(box, max_size=7))


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(images=st.lists(image, min_size=1, max_size=8), iou=st.sampled_from((0.5, 0.75, 0.3, 0.95)))
@pytest.mark.slow
def test_batches_match_line_by_line(tmp_path_factory: pytest.TempPathFactory, images: list, iou: float) -> None:
    same(write_detection_manifest(tmp_path_factory.mktemp("h") / "m.manifest", images), iou)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(images=st.lists(image, min_size=1, max_size=6))
@pytest.mark.slow
def test_batches_match_cocoeval(tmp_path_factory: pytest.TempPathFactory, images: list) -> None:
    pytest.importorskip("pycocotools")
    det = same(write_detection_manifest(tmp_path_factory.mktemp("h") / "m.manifest", images)).detection
    want = cocoeval(images)
    if want.get("none") or det is None:
        return
    for got, ref in ((det["ap"], want["ap"]), (det["ap50"], want["ap50"])):
        assert (got is None and ref is None) or abs(got - ref) <= 1e-6, (got, ref)


@pytest.mark.slow
def test_many_batches_and_crowded_images(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Thousands of lines (several batches of the reader), some with over 100 boxes of a class;
    the lane takes them all (counted by a spy on ``add_columns``)."""
    taken = []
    add_columns = BatchedDetection.add_columns

    def spy(self: BatchedDetection, cols: object, numbers: list, parsed: object) -> None:
        taken.extend(numbers)
        add_columns(self, cols, numbers, parsed)

    monkeypatch.setattr(BatchedDetection, "add_columns", spy)
    rng = random.Random(5)
    images = random_images(rng, 3000, tie_scores=True)
    for k in range(0, 3000, 700):
        refs = [("a", rng.uniform(0, 600), rng.uniform(0, 400), 30, 30) for _ in range(60)]
        images[k] = ([("a", r[1] + rng.uniform(-4, 4), r[2], 30, 30, 0.5) for r in refs for _ in range(2)], refs)
    ev = same(write_detection_manifest(tmp_path / "m.manifest", images))
    assert ev.detection["beyond_max_detections"] == 5 * 20 and ev.evaluated == 3000
    assert len(taken) >= 2999  # all but the first line (the usual reading learns the type from it)


def _mixed_lines(tmp_path: Path) -> Path:
    """Detection lines among every kind the lane leaves to the usual reading, in one file."""
    images = random_images(random.Random(3), 60)
    base = [orjson.loads(x) for x in write_detection_manifest(tmp_path / "m", images).read_bytes().splitlines()]
    odd = [dict(rec) for rec in base[:14]]
    odd[0][PRED + "-metadata"] = {"failure-reason": "fetch failed"}
    odd[0].pop(PRED)
    odd[1].pop(REF)
    odd[2][PRED] = {**odd[2][PRED], "annotations": [{**a, "left": True} for a in odd[2][PRED]["annotations"]] or
                    [{"class_id": 0, "left": True, "top": 1, "width": 2, "height": 3}]}
    odd[2][PRED + "-metadata"] = {**odd[2][PRED + "-metadata"], "objects": [{}] * len(odd[2][PRED]["annotations"])}
    odd[3][REF] = {"annotations": [{"class_id": 0, "left": "1", "top": 1, "width": 2, "height": 3}]}
    odd[4][REF] = {"annotations": [{"left": 1, "top": 1, "width": 2, "height": 3}]}  # no class_id: "#None"
    odd[5][PRED + "-metadata"] = {**odd[5][PRED + "-metadata"], "objects": [{"confidence": None}] * 9}
    odd[6][PRED + "-metadata"] = {**odd[6][PRED + "-metadata"], "class-map": {}}  # classes by id
    odd[7][REF] = {"annotations": [{"class_id": 0, "left": LIMIT, "top": 0, "width": 2 ** 40, "height": 3}]}
    odd[8][PRED + "-metadata"] = {**odd[8][PRED + "-metadata"], "type": "groundtruth/custom"}
    odd[9][PRED + "-metadata"] = {**odd[9][PRED + "-metadata"],
                                  "objects": [{"confidence": "high"} for _ in odd[9][PRED]["annotations"]]}
    odd[10][REF + "-metadata"] = {**odd[10][REF + "-metadata"], "class-map": {"0": ["not", "a", "name"]}}
    odd[11][PRED] = {"annotations": [{"class_id": 0, "left": 0, "top": 0, "width": 0, "height": 0}]}
    odd[11][PRED + "-metadata"] = {**odd[11][PRED + "-metadata"], "objects": [{"confidence": 0.4}]}
    odd[11][REF] = {"annotations": [{"class_id": 0, "left": 0, "top": 0, "width": 1e6, "height": 1e6}]}
    odd[12][PRED + "-metadata"] = {**odd[12][PRED + "-metadata"], "class-map": {"0": ""}}
    lines = [orjson.dumps(r) for r in base[14:]]
    for k, rec in enumerate(odd):
        lines.insert(3 * k + 1, orjson.dumps(rec))
    lines[5:5] = [b"", b"   ", b"{not json", b"[1, 2]", b'"text"']
    path = tmp_path / "mixed.manifest"
    path.write_bytes(b"\xef\xbb\xbf" + b"\n".join(lines) + b"\n")
    return path


def test_lines_the_lane_leaves_are_counted_and_ordered_as_before(tmp_path: Path) -> None:
    ev = same(_mixed_lines(tmp_path))
    assert ev.blank_lines == 2 and ev.invalid_lines == 3
    assert ev.skipped["predicted"]["failed"] == 1 and ev.skipped["reference"]["missing"] == 1
    assert ev.skipped["predicted"]["unreadable"] >= 2 and ev.examples == sorted(ev.examples, key=lambda e: e["line"])


def test_a_batch_with_one_odd_box_is_read_line_by_line(tmp_path: Path) -> None:
    """A string coordinate only shows when the batch's boxes are checked: the whole batch is read
    the usual way, and its one odd line is counted apart with the usual reason."""
    images = random_images(random.Random(9), 40)
    recs = [orjson.loads(x) for x in write_detection_manifest(tmp_path / "m", images).read_bytes().splitlines()]
    recs[20][PRED]["annotations"].append({"class_id": 0, "left": "7", "top": 1, "width": 2, "height": 3})
    recs[20][PRED + "-metadata"]["objects"].append({"confidence": 0.5})
    path = tmp_path / "odd.manifest"
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in recs))
    ev = same(path)
    assert ev.evaluated == 39 and ev.examples[0]["line"] == 21 and "numeric" in ev.examples[0]["reason"]


def test_image_sizes_differing_only_in_depth_stay_in_the_lane(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The lane leaves a line whose image sizes differ to the driver, which compares width and
    height only (``views._image_size``). Comparing the whole ``image_size`` (depth too, or a key
    one side omits) sent every such line the slow way: a reference with ``depth: 1`` for a model's
    ``depth: 3`` made the whole run about twice as slow, with the same figures."""
    images = random_images(random.Random(4), 40)
    recs = [orjson.loads(x) for x in write_detection_manifest(tmp_path / "m", images).read_bytes().splitlines()]
    for rec in recs:
        del rec[REF]["image_size"][0]["depth"]  # a reference that does not state it
    path = tmp_path / "depth.manifest"
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in recs))
    read_slowly: list[int] = []
    record = driver._Run.record
    monkeypatch.setattr(driver._Run, "record", lambda self, number, rec: (read_slowly.append(number),
                                                                         record(self, number, rec))[1])
    fast = evaluate_manifest(str(path), predicted=PRED, reference=REF, workers=1)
    assert fast.evaluated == 40 and not read_slowly
    monkeypatch.undo()
    assert same(path).evaluated == 40  # and the figures are the driver's


def test_iou_exactly_at_each_threshold(tmp_path: Path) -> None:
    """IoU k/20 for k = 1..20 (0.5, 0.55, ... hit COCO's thresholds exactly, as doubles go): a
    detection exactly at a threshold is matched there, as ``coco.match_group`` decides."""
    images = [([("a", 0, 0, k, 1, k / 20)], [("a", 0, 0, 20, 1)]) for k in range(1, 21)]
    images += [([("b", 0.0, 0.0, k / 2, 1.0, 0.5)], [("b", 0.0, 0.0, 10.0, 1.0)]) for k in range(1, 21)]
    pytest.importorskip("pycocotools")
    ev = same(write_detection_manifest(tmp_path / "m.manifest", images))
    want = cocoeval(images)
    assert abs(ev.detection["ap"] - want["ap"]) <= 1e-6 and ev.detection["true_positives"] == 22


@pytest.mark.parametrize("max_codes", [4, 1 << 16])
def test_class_buffer_keeps_every_score_exactly(monkeypatch: pytest.MonkeyPatch, max_codes: int) -> None:
    """Scores coded in 16 bits (and as doubles past ``MAX_CODES`` distinct ones), ignored bits kept
    only where set: ``arrays()`` gives back exactly what was appended, one at a time or in bulk."""
    import numpy as np

    from totask_manifest._analytics.evaluate import buffers

    monkeypatch.setattr(buffers, "MAX_CODES", max_codes)
    rng = random.Random(2)
    scores = [rng.choice((0.5, 0.25, 1.0, 0.0, -0.0)) if i < 40 else rng.random() for i in range(90)]
    matched = [rng.randrange(1 << 11) for _ in scores]
    ignored = [rng.choice((0, 0, 0, 5)) for _ in scores]
    one, bulk = buffers.ClassBuffer(), buffers.ClassBuffer()
    for s, m, i in zip(scores[:50], matched[:50], ignored[:50], strict=True):
        one.append(s, m, i)
    one.extend_arrays(np.array(scores[50:]), np.array(matched[50:]), np.array(ignored[50:]))
    bulk.extend_arrays(np.array(scores[:30]), np.array(matched[:30]), np.array(ignored[:30]))
    for s, m, i in zip(scores[30:], matched[30:], ignored[30:], strict=True):
        bulk.append(s, m, i)
    for buf in (one, bulk):
        got_s, got_m, got_i = buf.arrays()
        assert got_s.tolist() == scores and got_m.tolist() == matched and got_i.tolist() == ignored
        assert (buf.raw is not None) == (max_codes == 4) and len(buf) == 90
