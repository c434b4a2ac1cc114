"""Detection AP against pycocotools' COCOeval: generated data, the real chained manifests, edge cases."""

from __future__ import annotations

import random
from pathlib import Path

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.evaluate_helpers import PRED, REF, cocoeval, random_images, write_detection_manifest
from tests.support.gt import GT_MANIFESTS as GT
from tests.support.gt import real_cases, requires_gt
from totask_manifest._analytics.evaluate import evaluate_manifest
from totask_manifest._analytics.evaluate.coco import box_iou, match_group

pytestmark = requires_gt

pytest.importorskip("pycocotools")

TOL = 1e-6


def check_against_coco(images: list, tmp_path: Path, name: str = "m.manifest") -> dict:
    path = write_detection_manifest(tmp_path / name, images)
    det = evaluate_manifest(str(path), predicted=PRED, reference=REF).detection
    ref = cocoeval(images)
    if ref.get("none"):  # pycocotools cannot load an empty result list
        return det
    _same(det["ap"], ref["ap"])
    _same(det["ap50"], ref["ap50"])
    for row in det["per_class"]:
        want = ref["per_class"].get(row["class"])
        if want is None:
            assert row["ap"] is None and row["ap50"] is None, row
        else:
            _same(row["ap"], want[0])
            _same(row["ap50"], want[1])
    return det


def _same(got: float | None, want: float | None) -> None:
    if want is None:
        assert got is None
    else:
        assert got is not None and abs(got - want) <= TOL, (got, want)


@pytest.mark.parametrize("seed", [0, 1, 2, pytest.param(3, marks=pytest.mark.slow), 4, 5])  # seed 3: 3x the work
def test_generated_images_match_cocoeval(tmp_path: Path, seed: int) -> None:
    images = random_images(random.Random(seed), 120, tie_scores=seed % 2 == 1, integer=seed >= 4)
    det = check_against_coco(images, tmp_path)
    assert det["lines"] == 120 and det["ap"] is not None and 0 < det["ap"] < 1


@pytest.mark.slow
def test_more_than_100_detections_per_image_and_class(tmp_path: Path) -> None:
    rng = random.Random(7)
    images = []
    for _ in range(3):
        refs = [("a", rng.uniform(0, 600), rng.uniform(0, 400), 30, 30) for _ in range(40)]
        preds = [("a", r[1] + rng.uniform(-5, 5), r[2] + rng.uniform(-5, 5), 30, 30, round(rng.random(), 3))
                 for r in refs for _ in range(3)]
        images.append((preds, refs))
    det = check_against_coco(images, tmp_path)
    assert det["beyond_max_detections"] == 3 * 20


def test_real_chained_adjustment_manifest(tmp_path: Path) -> None:
    """Both sides from the real adjustment job: every confidence is 0, so every score ties."""
    path = GT / "object-detection-chained-adjustment__YeongJun-Jeon-1to100_Korean__output.manifest"
    pred_attr, ref_attr = "suneung-korean-layout-detection-v2", "suneung-korean-layout-detection-v2-chain"
    images = []
    for raw in path.read_bytes().splitlines():
        rec = orjson.loads(raw)
        sides = []
        for attr in (pred_attr, ref_attr):
            cmap = rec[attr + "-metadata"]["class-map"]
            objs = rec[attr + "-metadata"]["objects"]
            sides.append([(cmap[str(a["class_id"])], a["left"], a["top"], a["width"], a["height"],
                           objs[i]["confidence"]) for i, a in enumerate(rec[attr]["annotations"])])
        images.append((sides[0], [s[:5] for s in sides[1]]))
    det = evaluate_manifest(str(path), predicted=pred_attr, reference=ref_attr).detection
    ref = cocoeval(images)
    _same(det["ap"], ref["ap"])
    _same(det["ap50"], ref["ap50"])
    for row in det["per_class"]:
        _same(row["ap"], ref["per_class"][row["class"]][0])
    assert det["lines"] == 50


@pytest.mark.parametrize("name", real_cases([
    "object-detection-chained-same-attribute__aws-samples-mxnet-dice-aim403-workshop__output.manifest",
    "object-detection__aws-amazon-sagemaker-examples__yolov5-sample_output.manifest",
    "object-detection-chained-adjustment__YeongJun-Jeon-1to100_Korean__output.manifest",
]))
def test_real_references_with_generated_predictions(tmp_path: Path, name: str) -> None:
    """The real files' boxes as the reference; predictions made from them (moved, dropped, invented)."""
    rng = random.Random(name)
    images = []
    for raw in (GT / name).read_bytes().splitlines():
        rec = orjson.loads(raw)
        attr = next(k[: -len("-metadata")] for k in rec if k.endswith("-metadata"))
        cmap = rec[attr + "-metadata"].get("class-map") or {}
        refs = [(cmap.get(str(a["class_id"]), f"#{a['class_id']}"), a["left"], a["top"], a["width"], a["height"])
                for a in rec[attr]["annotations"]]
        preds = []
        for r in refs:
            if rng.random() < 0.15:
                continue
            j = rng.uniform(0, 0.35)
            preds.append((r[0], r[1] + j * r[3] * rng.choice((-1, 1)), r[2] + j * r[4] * rng.choice((-1, 1)),
                          r[3] * (1 + rng.uniform(-j, j)), r[4], round(rng.random(), 2)))
        if refs and rng.random() < 0.3:
            r = rng.choice(refs)
            preds.append((r[0], r[1] + 3 * r[3], r[2], r[3], r[4], round(rng.random(), 2)))
        images.append((preds, refs))
    check_against_coco(images, tmp_path)


# -- matching edge cases ----------------------------------------------------------------------

coord = st.integers(min_value=0, max_value=40)
size = st.integers(min_value=1, max_value=20)
box = st.tuples(st.sampled_from("ab"), coord, coord, size, size)
scored = st.tuples(st.sampled_from("ab"), coord, coord, size, size, st.sampled_from((0.1, 0.5, 0.5, 0.9)))
image = st.tuples(st.lists(scored, max_size=6), st.lists(box, max_size=6))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(images=st.lists(image, min_size=1, max_size=5))
@pytest.mark.slow
def test_small_integer_scenes_match_cocoeval(tmp_path_factory: pytest.TempPathFactory, images: list) -> None:
    """Integer boxes on a small canvas: touching borders, identical boxes, IoU exactly 0.5, tied scores."""
    check_against_coco(images, tmp_path_factory.mktemp("h"))


def test_no_predictions_gives_zero_ap_and_full_misses(tmp_path: Path) -> None:
    images = [([], [("a", 0, 0, 10, 10), ("b", 5, 5, 10, 10)]), ([], [])]
    det = check_against_coco(images, tmp_path)
    assert det["ap"] == 0.0 and det["ap50"] == 0.0
    assert det["missed"] == 2 and det["precision"] is None and det["recall"] == 0.0
    assert det["sweep"]["line"]["errors"] == 2


def test_no_references_gives_no_ap_and_every_box_a_false_positive(tmp_path: Path) -> None:
    images = [([("a", 0, 0, 10, 10, 0.9), ("a", 1, 1, 10, 10, 0.2)], []), ([], [])]
    det = check_against_coco(images, tmp_path)
    assert det["ap"] is None and det["ap50"] is None and det["classes_with_references"] == 0
    assert det["false_positives"] == 2 and det["precision"] == 0.0 and det["recall"] is None
    assert det["per_class"][0]["ap"] is None


def test_tied_scores_keep_the_order_given() -> None:
    """Two detections with the same score over one reference: the first one listed takes it."""
    m = match_group([0.5, 0.5], [(0, 0, 10, 10), (0, 0, 10, 10)], [(0, 0, 10, 10)], [0.5])
    assert m.order == [0, 1] and m.matched == [1, 0]


def test_touching_borders_do_not_overlap_and_iou_half_matches_at_half() -> None:
    assert box_iou((0, 0, 10, 10), (10, 0, 10, 10)) == 0.0  # sharing an edge: no intersection
    assert box_iou((0, 0, 10, 10), (0, 10, 10, 10)) == 0.0
    half = box_iou((0, 0, 10, 10), (0, 0, 20, 10))
    assert half == 0.5
    m = match_group([0.9], [(0, 0, 10, 10)], [(0, 0, 20, 10)], [0.5, 0.55])
    assert m.matched == [0b01]  # matched at exactly 0.5, not at 0.55


def test_equal_iou_takes_the_last_reference() -> None:
    """COCOeval keeps the later reference when two have the same IoU (``>=`` moves the best)."""
    m = match_group([0.9], [(5, 0, 10, 10)], [(0, 0, 10, 10), (10, 0, 10, 10)], [0.3])
    assert m.ref_matched == [0, 1]


def test_boxes_outside_cocos_area_range_are_ignored_as_cocoeval_does(tmp_path: Path) -> None:
    """A reference over 1e10 px² is one COCO ignores: a detection on it is neither true nor false,
    a detection on a regular reference is preferred; a huge unmatched detection is ignored too."""
    huge = 2e5
    images = [
        ([("a", 0, 0, huge, huge, 0.9), ("a", 0, 0, 10, 10, 0.8)], [("a", 0, 0, huge, huge), ("a", 0, 0, 10, 10)]),
        ([("a", 5e5, 5e5, huge, huge, 0.7), ("a", 0, 0, 10, 10, 0.6)], [("a", 0, 0, 10, 10)]),
        ([("a", 0, 0, 10, 10, 0.95)], [("a", 0, 0, huge, huge), ("a", 1, 1, 10, 10)]),
    ]
    det = check_against_coco(images, tmp_path)
    assert det["references"] == 3  # the two huge references are not counted


@settings(max_examples=80, deadline=None)
@given(items=st.lists(st.tuples(st.one_of(st.none(), st.floats(0, 1), st.sampled_from((0.0, 0.29, 0.5, 1.0))),
                                st.integers(0, 3)), max_size=40),
       share=st.sampled_from((0.5, 0.9, 0.95, 1.0)))
@pytest.mark.slow
def test_sweep_counts_match_a_brute_force_count(items: list, share: float) -> None:
    """Routed at threshold t means confidence < t, exactly as typed (0.29 routes 0.28999 but not 0.29)."""
    from totask_manifest._analytics.evaluate.sweep import Sweep

    s = Sweep("line")
    for conf, errors in items:
        s.add(conf, errors)
    res = s.result(share)
    total = sum(e for _, e in items)
    for row in res.rows:
        routed = [(c, e) for c, e in items if c is not None and c < row.threshold]
        assert (row.routed, row.errors_caught) == (len(routed), sum(e for _, e in routed))
    if res.suggested is not None:
        assert res.suggested.errors_caught >= share * total - 1e-9
        earlier = [r for r in res.rows if r.threshold < res.suggested.threshold]
        assert all(r.errors_caught < share * total - 1e-9 for r in earlier)
    else:
        assert total == 0 or res.rows[-1].errors_caught < share * total - 1e-9
