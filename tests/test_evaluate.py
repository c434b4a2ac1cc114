"""``evaluate`` end to end: known answers, every task type, lineage defaults, the CLI."""

from __future__ import annotations

import io
import json
import math
from collections import Counter
from pathlib import Path

import orjson
import pytest
from PIL import Image

from tests.evaluate_helpers import PRED, REF, make_review_chain, write_detection_manifest
from tests.jobs_helpers import run_cli
from tests.support.gt import GT_MANIFESTS as GT
from tests.support.gt import requires_gt
from tests.support.s3 import S3Endpoint
from totask_manifest._analytics.evaluate import evaluate_manifest, format_text
from totask_manifest._errors import ManifestError, NotAJobError, UsageError

pytestmark = requires_gt


def test_held_out_manifest_with_a_known_answer(tmp_path: Path) -> None:
    """Worked by hand: scores 0.9 (hit), 0.8 (false), 0.7 (hit) over two references.

    Recall 0.5, 0.5, 1.0 and precision 1, 1/2, 2/3 give the interpolated precision 1 for the 51
    recall points up to 0.50 and 2/3 for the 50 above: AP = (51 + 50 * 2/3) / 101 at every IoU.
    """
    images = [([("a", 10, 10, 20, 20, 0.9), ("a", 100, 100, 20, 20, 0.8)], [("a", 10, 10, 20, 20)]),
              ([("a", 50, 50, 30, 30, 0.7)], [("a", 50, 50, 30, 30)])]
    ev = evaluate_manifest(str(write_detection_manifest(tmp_path / "m", images)), predicted=PRED, reference=REF)
    det = ev.detection
    want = (51 + 50 * 2 / 3) / 101
    assert math.isclose(det["ap"], want, abs_tol=1e-12) and math.isclose(det["ap50"], want, abs_tol=1e-12)
    assert (det["true_positives"], det["false_positives"], det["missed"]) == (2, 1, 0)
    assert math.isclose(det["precision"], 2 / 3) and det["recall"] == 1.0
    line = det["sweep"]["line"]
    assert (line["items"], line["errors"]) == (2, 1)
    # line 1's confidence is its lowest box score, 0.8; the first threshold above it also routes line 2 (0.7)
    assert line["suggested"] == {"threshold": 0.81, "routed": 2, "errors_caught": 1}
    assert next(r for r in line["thresholds"] if r["threshold"] == 0.8)["routed"] == 1
    box = det["sweep"]["box"]
    assert box["suggested"] == {"threshold": 0.81, "routed": 2, "errors_caught": 1}  # boxes 0.8 and 0.7
    row = next(r for r in box["thresholds"] if r["threshold"] == 0.8)
    assert row == {"threshold": 0.8, "routed": 1, "errors_caught": 0}  # 0.7 only: "below" is strict
    assert [w["line"] for w in ev.to_dict()["worst_lines"]] == [1]


def test_share_option_moves_the_suggestion(tmp_path: Path) -> None:
    images = [([("a", 0, 0, 10, 10, c)], [("a", 200, 200, 10, 10)] if c < 0.5 else [("a", 0, 0, 10, 10)])
              for c in (0.1, 0.2, 0.3, 0.4, 0.6, 0.7, 0.8, 0.9)]
    path = str(write_detection_manifest(tmp_path / "m", images))
    all_ = evaluate_manifest(path, predicted=PRED, reference=REF)
    half = evaluate_manifest(path, predicted=PRED, reference=REF, share=0.5)
    # four wrong lines, at 0.1 to 0.4 (a false box and a missed one each): all need 0.41, half need 0.21
    assert all_.detection["sweep"]["line"]["suggested"] == {"threshold": 0.41, "routed": 4, "errors_caught": 8}
    assert half.detection["sweep"]["line"]["suggested"] == {"threshold": 0.21, "routed": 2, "errors_caught": 4}


def _lines(path: Path, records: list[dict]) -> Path:
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))
    return path


def _cls_label(cid: int, name: str, conf: float | None, human: str) -> tuple[int, dict]:
    meta = {"class-name": name, "type": "groundtruth/image-classification", "human-annotated": human,
            "job-name": "labeling-job/x", "creation-date": "2026-01-01T00:00:00.000000"}
    if conf is not None:
        meta["confidence"] = conf
    return cid, meta


def test_single_label_classification_on_a_real_manifest(tmp_path: Path) -> None:
    """The real labels as the reference; a prediction that swaps every third line's class."""
    src = GT / "image-classification__aws-amazon-sagemaker-examples__ic_data-output.manifest"
    records, expected = [], Counter()
    for i, raw in enumerate(src.read_bytes().splitlines()):
        rec = orjson.loads(raw)
        attr = next(k[:-9] for k in rec if k.endswith("-metadata"))
        ref_name = rec[attr + "-metadata"]["class-name"]
        pred_name = "other" if i % 3 == 0 else ref_name
        expected[(ref_name, pred_name)] += 1
        rec["model"], rec["model-metadata"] = _cls_label(9 if i % 3 == 0 else rec[attr], pred_name, 0.5 + i / 200,
                                                         "no")
        rec["truth"], rec["truth-metadata"] = rec.pop(attr), rec.pop(attr + "-metadata")
        records.append(rec)
    ev = evaluate_manifest(str(_lines(tmp_path / "c", records)))  # found by human-annotated yes / no
    assert (ev.predicted, ev.reference) == ("model", "truth")
    c = ev.classification
    n = len(records)
    assert c["lines"] == n and math.isclose(c["accuracy"], sum(v for (r, p), v in expected.items() if r == p) / n)
    cm = c["confusion_matrix"]
    for r, p in expected:
        assert cm["counts"][cm["classes"].index(r)][cm["classes"].index(p)] == expected[(r, p)]
    assert sum(map(sum, cm["counts"])) == n
    other = next(r for r in c["per_class"] if r["class"] == "other")
    assert other["precision"] == 0.0 and other["references"] == 0
    # the wrong lines have the lowest confidences only by accident of i: the sweep counts them all
    assert c["sweep"]["line"]["errors"] == n - c["correct"]


def test_multilabel_classification(tmp_path: Path) -> None:
    def label(ids: list[int], human: str, conf: dict | None = None) -> tuple[list, dict]:
        names = {0: "cat", 1: "dog", 2: "cow"}
        return ids, {"class-map": {str(i): names[i] for i in ids}, "confidence-map": conf or {str(i): 1 for i in ids},
                     "type": "groundtruth/image-classification-multilabel", "human-annotated": human,
                     "job-name": "labeling-job/x", "creation-date": "2026-01-01T00:00:00.000000"}

    rows = [([0, 1], [0, 1]), ([0], [0, 2]), ([1, 2], [2]), ([], [1])]
    records = []
    for i, (p, r) in enumerate(rows):
        pv, pm = label(p, "no", {str(k): 0.3 + 0.1 * i for k in p})
        rv, rm = label(r, "yes")
        records.append({"source-ref": f"s3://b/{i}", "m": pv, "m-metadata": pm, "h": rv, "h-metadata": rm})
    c = evaluate_manifest(str(_lines(tmp_path / "ml", records)), predicted="m", reference="h").classification_multilabel
    assert c["lines"] == 4 and c["accuracy"] == 0.25
    per = {r["class"]: r for r in c["per_class"]}
    assert (per["cat"]["true_positives"], per["cat"]["false_positives"], per["cat"]["missed"]) == (2, 0, 0)
    assert (per["dog"]["true_positives"], per["dog"]["false_positives"], per["dog"]["missed"]) == (1, 1, 1)
    assert (per["cow"]["true_positives"], per["cow"]["false_positives"], per["cow"]["missed"]) == (1, 0, 1)
    assert (per["cat"]["true_negatives"], per["dog"]["true_negatives"], per["cow"]["true_negatives"]) == (2, 1, 2)
    assert c["sweep"]["line"]["without_confidence"] == {"items": 1, "errors": 1}  # the empty prediction


def _mask_png(rows: list[str], colors: dict[str, str]) -> bytes:
    h, w = len(rows), len(rows[0])
    img = Image.new("RGB", (w, h))
    for y, row in enumerate(rows):
        for x, ch in enumerate(row):
            hx = colors[ch].lstrip("#")
            img.putpixel((x, y), (int(hx[0:2], 16), int(hx[2:4], 16), int(hx[4:6], 16)))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def test_semantic_segmentation_iou_per_class_from_masks(tmp_path: Path) -> None:
    """Two colour maps that disagree on colours and indices: classes are matched by name."""
    pred_cmap = {"0": {"class-name": "BACKGROUND", "hex-color": "#ffffff"}, "1": {"class-name": "car", "hex-color": "#ff0000"},
                 "2": {"class-name": "road", "hex-color": "#00ff00"}}
    ref_cmap = {"0": {"class-name": "BACKGROUND", "hex-color": "#ffffff"}, "1": {"class-name": "road", "hex-color": "#0000ff"},
                "2": {"class-name": "car", "hex-color": "#ffff00"}}
    (tmp_path / "p.png").write_bytes(_mask_png(["ccrr", "ccrr", "...."], {"c": "#ff0000", "r": "#00ff00", ".": "#ffffff"}))
    (tmp_path / "r.png").write_bytes(_mask_png(["c.rr", "ccrr", "..rr"], {"c": "#ffff00", "r": "#0000ff", ".": "#ffffff"}))
    common = {"type": "groundtruth/semantic-segmentation", "job-name": "labeling-job/x",
              "creation-date": "2026-01-01T00:00:00.000000"}
    rec = {"source-ref": "img.png", "p-ref": "p.png", "p-ref-metadata": {**common, "internal-color-map": pred_cmap,
                                                                            "human-annotated": "no"},
           "r-ref": str(tmp_path / "r.png"), "r-ref-metadata": {**common, "internal-color-map": ref_cmap,
                                                                  "human-annotated": "yes"}}
    path = _lines(tmp_path / "seg.manifest", [rec])
    seg = evaluate_manifest(str(path), fetch_options={"allow_root": str(tmp_path)}).segmentation
    per = {r["class"]: r for r in seg["per_class"]}
    # car: predicted 4 px, reference 3 px, 3 shared -> 3/4; road: 4 vs 6, 4 shared -> 4/6; background 4 vs 3, 2 shared
    assert per["car"]["iou"] == 3 / 4 and per["road"]["iou"] == 4 / 6 and per["BACKGROUND"]["iou"] == 2 / 5
    assert seg["pixels"] == 12 and seg["pixel_accuracy"] == 9 / 12
    assert math.isclose(seg["mean_iou"], (3 / 4 + 4 / 6 + 2 / 5) / 3)
    # without --allow-root the fetch policy refuses local masks: the line is counted apart, with the reason
    ev = evaluate_manifest(str(path))
    assert ev.segmentation is None and ev.evaluated == 0 and ev.skipped["both"]["unreadable"] == 1
    assert "--allow-root" in ev.examples[0]["reason"]


def test_an_unreadable_mask_is_counted_under_its_own_side(tmp_path: Path) -> None:
    """A mask missing on one side only was counted ``both: unreadable``, its reason naming one
    file: each side is named, ``both`` only where neither side's mask can be read."""
    cmap = {"0": {"class-name": "BACKGROUND", "hex-color": "#ffffff"}, "1": {"class-name": "car", "hex-color": "#ff0000"}}
    (tmp_path / "ok.png").write_bytes(_mask_png(["c.", ".c"], {"c": "#ff0000", ".": "#ffffff"}))
    (tmp_path / "broken.png").write_bytes(b"no png")
    common = {"type": "groundtruth/semantic-segmentation", "job-name": "labeling-job/x",
              "creation-date": "2026-01-01T00:00:00.000000", "internal-color-map": cmap}
    pairs = [("ok.png", "gone-r.png"), ("gone-p.png", "ok.png"), ("gone-p.png", "gone-r.png"), ("broken.png", "ok.png"),
             ("ok.png", "ok.png")]
    path = _lines(tmp_path / "seg.manifest", [
        {"source-ref": "img.png", "p-ref": p, "p-ref-metadata": {**common, "human-annotated": "no"},
         "r-ref": r, "r-ref-metadata": {**common, "human-annotated": "yes"}} for p, r in pairs])
    run = run_cli("evaluate", str(path), "--allow-root", str(tmp_path), "--format", "json")
    assert run.returncode == 0, run.stderr
    lines = json.loads(run.stdout)["lines"]
    assert lines["evaluated"] == 1 and lines["skipped"] == {
        "predicted": {"unreadable": 2}, "reference": {"unreadable": 1}, "both": {"unreadable": 1}}, lines
    said = {e["line"]: (e["side"], e["reason"]) for e in lines["examples"]}
    assert said[1] == ("reference", f"no such file ({tmp_path / 'gone-r.png'})"), said
    assert said[2] == ("predicted", f"no such file ({tmp_path / 'gone-p.png'})"), said
    assert said[3] == ("both", f"predicted: no such file ({tmp_path / 'gone-p.png'}); "
                               f"reference: no such file ({tmp_path / 'gone-r.png'})"), said
    # a mask that is no image names its side and key: 'cannot read mask broken.png' said neither
    assert said[4] == ("predicted", "line 4, key 'p-ref': cannot read predicted mask broken.png: not a readable "
                                    "image (no image format Pillow knows) [mask]"), said


def test_masks_of_other_sizes_are_not_comparable(tmp_path: Path) -> None:
    """Masks of different sizes were counted ``both: unreadable`` (``mask sizes differ``): both
    were read, they are of other images, as detection's ``image sizes differ`` says of boxes."""
    cmap = {"0": {"class-name": "BACKGROUND", "hex-color": "#ffffff"}, "1": {"class-name": "car", "hex-color": "#ff0000"}}
    (tmp_path / "small.png").write_bytes(_mask_png(["c.", ".c"], {"c": "#ff0000", ".": "#ffffff"}))
    (tmp_path / "wide.png").write_bytes(_mask_png(["c..", ".c."], {"c": "#ff0000", ".": "#ffffff"}))
    common = {"type": "groundtruth/semantic-segmentation", "job-name": "labeling-job/x",
              "creation-date": "2026-01-01T00:00:00.000000", "internal-color-map": cmap}
    path = _lines(tmp_path / "seg.manifest", [
        {"source-ref": "img.png", "p-ref": p, "p-ref-metadata": {**common, "human-annotated": "no"},
         "r-ref": r, "r-ref-metadata": {**common, "human-annotated": "yes"}}
        for p, r in [("small.png", "wide.png"), ("small.png", "small.png")]])
    run = run_cli("evaluate", str(path), "--allow-root", str(tmp_path), "--format", "json")
    assert run.returncode == 0, run.stderr
    lines = json.loads(run.stdout)["lines"]
    assert lines["evaluated"] == 1 and lines["skipped"]["both"] == {"not comparable": 1}, lines
    assert [(e["line"], e["side"], e["kind"], e["reason"]) for e in lines["examples"]] == [
        (1, "both", "not comparable", "mask sizes differ: predicted 2x2, reference 3x2")], lines


def _dm_doc(boxes: list[tuple], classes: list[str]) -> dict:
    anns, data = [], []
    for i, (name, x, y, w, h, conf) in enumerate(boxes):
        anns.append({"id": f"b{i}", "tool": "bounding_box", "classification": {"class": name, "confidence": conf}})
        data.append({"id": f"b{i}", "coordinate": {"x": x, "y": y, "width": w, "height": h}})
    for i, name in enumerate(classes):
        anns.append({"id": f"c{i}", "tool": "classification", "classification": {"class": name}})
        data.append({"id": f"c{i}"})
    anns.append({"id": "p0", "tool": "polygon", "classification": {"class": "x"}})
    data.append({"id": "p0", "coordinate": [{"x": 1, "y": 1}, {"x": 5, "y": 1}, {"x": 5, "y": 5}]})
    return {"annotations": {"image_1": anns}, "annotationsData": {"image_1": data}}


def test_dm_v1_custom_lines_against_ground_truth_boxes(tmp_path: Path) -> None:
    """A DM v1 document kept inline (custom type, ``format: dm-schema-v1``) is evaluated like the
    same boxes in Ground Truth form: equal AP, and its classification tool gives classes."""
    images = [([("a", 10, 10, 20, 20, 0.9), ("b", 100, 100, 20, 20, 0.8)], [("a", 12, 10, 20, 20), ("b", 0, 0, 5, 5)]),
              ([("a", 50, 50, 30, 30, 0.7)], [("a", 50, 52, 30, 30)])]
    gt_path = write_detection_manifest(tmp_path / "gt", images)
    records = []
    for raw, (preds, _) in zip(gt_path.read_bytes().splitlines(), images, strict=True):
        rec = orjson.loads(raw)
        rec[PRED] = _dm_doc(list(preds), ["indoor"])
        rec[PRED + "-metadata"] = {"type": "groundtruth/custom", "format": "dm-schema-v1", "human-annotated": "no",
                                   "job-name": "labeling-job/m", "creation-date": "2026-01-01T00:00:00.000000"}
        records.append(rec)
    dm = evaluate_manifest(str(_lines(tmp_path / "dm", records)), predicted=PRED, reference=REF)
    gt = evaluate_manifest(str(gt_path), predicted=PRED, reference=REF)
    assert dm.evaluated == 2
    for key in ("ap", "ap50", "precision", "recall", "true_positives", "false_positives"):
        assert dm.detection[key] == gt.detection[key], key
    assert dm.to_dict()["shapes_not_evaluated"] == {"polygon": 2}


def test_missing_failed_and_routed_lines_are_counted_apart(tmp_path: Path) -> None:
    images = [([("a", 0, 0, 10, 10, 0.9)], [("a", 0, 0, 10, 10)])] * 2
    lines = write_detection_manifest(tmp_path / "m", images).read_bytes().splitlines()
    ok = orjson.loads(lines[0])
    failed = {**ok, PRED + "-metadata": {"failure-reason": "HTTP 404"}}
    failed.pop(PRED)
    routed = {**ok, PRED + "-metadata": {"review-status": "routed", "confidence": 0.1}}
    routed.pop(PRED)
    unreviewed = dict(ok)
    unreviewed.pop(REF)
    unreviewed.pop(REF + "-metadata")
    path = tmp_path / "mixed"
    path.write_bytes(b"\n".join([lines[0], orjson.dumps(failed), orjson.dumps(routed), b"  ", b"[1]",
                                 orjson.dumps(unreviewed), lines[1]]) + b"\n")
    ev = evaluate_manifest(str(path), predicted=PRED, reference=REF)
    assert (ev.total_lines, ev.evaluated, ev.not_evaluated, ev.blank_lines, ev.invalid_lines) == (7, 2, 3, 1, 1)
    assert dict(ev.skipped["predicted"]) == {"failed": 1, "routed": 1}
    assert dict(ev.skipped["reference"]) == {"missing": 1}
    assert [(e["line"], e["kind"]) for e in ev.examples] == [(2, "failed"), (3, "routed"), (6, "missing")]
    text = format_text(ev)
    assert "7 total, 2 evaluated, 3 not evaluated" in text and "predicted: failed 1, routed 1" in text


@pytest.mark.parametrize("side", [PRED, REF])
def test_a_routed_line_with_a_value_is_counted_routed_not_scored(tmp_path: Path, side: str) -> None:
    """A value beside ``review-status: routed`` is no label (``stats`` counts the line routed,
    ``validate`` warns ``routed-with-label``, ``labeled`` and the exports leave it out), yet
    ``evaluate`` scored it: read the usual way when its metadata holds no boxes, by the fast lane
    when it does. Either way it is counted routed now, its boxes in no score."""
    images = [([("a", 0, 0, 10, 10, 0.9)], [("a", 0, 0, 10, 10)]), ([("a", 50, 50, 10, 10, 0.8)], [("a", 0, 0, 10, 10)])]
    lines = write_detection_manifest(tmp_path / "m", images).read_bytes().splitlines()
    kept = orjson.loads(lines[1])  # the whole metadata kept, review-status beside it (the fast lane's shape)
    kept[side + "-metadata"] = {**kept[side + "-metadata"], "review-status": "routed"}
    bare = orjson.loads(lines[1])  # the metadata a routing writes, beside an earlier job's value
    bare[side + "-metadata"] = {"type": "groundtruth/object-detection", "review-status": "routed",
                                "review-reason": "confidence 0.1 below 0.5"}
    for routed in (kept, bare):
        path = tmp_path / "routed"
        path.write_bytes(lines[0] + b"\n" + orjson.dumps(routed) + b"\n")
        ev = evaluate_manifest(str(path), predicted=PRED, reference=REF)
        assert (ev.evaluated, ev.not_evaluated) == (1, 1)
        assert dict(ev.skipped["predicted" if side == PRED else "reference"]) == {"routed": 1}
        assert [(e["line"], e["kind"]) for e in ev.examples] == [(2, "routed")]
        assert (ev.detection["true_positives"], ev.detection["false_positives"]) == (1, 0)


def test_attributes_cannot_be_guessed_without_human_annotated_or_lineage() -> None:
    path = GT / "object-detection-chained-adjustment__YeongJun-Jeon-1to100_Korean__output.manifest"
    with pytest.raises(UsageError, match="give --predicted and --reference"):
        evaluate_manifest(str(path))
    with pytest.raises(UsageError, match="same attribute"):
        evaluate_manifest(str(path), predicted="a", reference="a")


@pytest.mark.slow
def test_job_folder_chained_for_review_finds_both_attributes(tmp_path: Path) -> None:
    """A real model job, a real review job chained from it; ``evaluate JOB`` needs no attribute name."""
    machine = [[("cat", 10, 10, 50, 50, 0.95), ("dog", 100, 100, 40, 40, 0.35)], [("dog", 20, 20, 60, 60, 0.8)],
               [("cat", 0, 0, 30, 30, 0.6)]]
    review = [[("cat", 10, 10, 50, 50)], [("dog", 20, 22, 60, 60)], [("cat", 0, 0, 30, 30), ("dog", 150, 150, 20, 20)]]
    job = make_review_chain(tmp_path, machine, review)
    res = run_cli("evaluate", str(job), "--format", "json")
    assert res.returncode == 0, res.stderr
    d = json.loads(res.stdout)
    # the review job imports files (human-annotated "no" too): the model is the plugin, whichever came first
    assert (d["predicted"], d["reference"], d["attributes_from"]) == ("boxes", "review",
                                                                      "job lineage, the model's attribute: method "
                                                                      "tests.support.toy_annotators:RecordedDetector")
    det = d["detection"]
    assert d["lines"]["evaluated"] == 3
    assert (det["true_positives"], det["false_positives"], det["missed"]) == (3, 1, 1)
    # errors on line 1 (a false dog, lowest score 0.35) and line 3 (a missed dog, score 0.6)
    assert det["sweep"]["line"]["suggested"] == {"threshold": 0.61, "routed": 2, "errors_caught": 2}
    text = run_cli("evaluate", str(job))
    assert text.returncode == 0 and "AP@[.5:.95]" in text.stdout and "job lineage" in text.stdout


SAMPLE = Path(__file__).resolve().parents[1] / "sample_data"


@pytest.mark.slow
def test_readme_chain_scores_the_model_against_the_files(tmp_path: Path) -> None:
    """README's quick start (a file job) then its ``chain ... --method inference``: the file method
    writes human-annotated "no" too, and the lineage took the earlier attribute (the files) for the
    prediction: precision and recall swapped, exit 0. The model's attribute is the prediction now;
    two file imports alike (nothing human, both scored) are refused, exit 2, rather than guessed."""
    pytest.importorskip("torch")
    out = tmp_path / "out"
    files = ["--method", "file", "--url-key", "annotation-ref", "--class-names", str(SAMPLE / "class_names.txt"),
             "--native", "convert", "--allow-root", str(SAMPLE)]
    first = run_cli("annotate", str(SAMPLE / "manifest.jsonl"), "--job-name", "sample-boxes", "--label-attribute",
                    "boxes", "--task-type", "object-detection", "--output", str(out), *files)
    assert first.returncode == 0, first.stderr
    model = run_cli("chain", str(out / "sample-boxes"), "--job-name", "sample-model", "--method", "inference",
                    "--task-type", "object-detection", "--model", str(SAMPLE / "models" / "shapes-detector.pt"),
                    "--allow-root", str(SAMPLE))
    assert model.returncode == 0, model.stderr
    found = run_cli("evaluate", str(out / "sample-model"), "--format", "json")
    assert found.returncode == 0, found.stderr
    d = json.loads(found.stdout)
    assert (d["predicted"], d["reference"]) == ("sample-model", "boxes")
    assert d["attributes_from"] == "job lineage, the model's attribute: method inference"
    given = json.loads(run_cli("evaluate", str(out / "sample-model"), "--format", "json", "--predicted",
                               "sample-model", "--reference", "boxes").stdout)
    assert d["detection"] == given["detection"] and d["detection"]["precision"] > d["detection"]["recall"]
    # one side given: the pair's other attribute is the other side, whichever it is
    one = json.loads(run_cli("evaluate", str(out / "sample-model"), "--format", "json", "--reference", "boxes").stdout)
    assert (one["predicted"], one["reference"]) == ("sample-model", "boxes")
    again = run_cli("chain", str(out / "sample-boxes"), "--job-name", "again", *files)
    assert again.returncode == 0, again.stderr
    refused = run_cli("evaluate", str(out / "again"))
    assert refused.returncode == 2 and refused.stdout == "" and refused.stderr.count("\n") == 1, refused.stderr
    assert "cannot tell the prediction from the reference: 'boxes' (job 'sample-boxes') and 'again' (job " \
           "'again') were made both by method file" in refused.stderr
    assert refused.stderr.rstrip().endswith("give --predicted and --reference")


@pytest.mark.slow
def test_cli_errors_are_one_line(tmp_path: Path) -> None:
    res = run_cli("evaluate", str(tmp_path / "nope.manifest"), "--predicted", "a", "--reference", "b")
    assert res.returncode == 2 and res.stderr.count("\n") == 1 and "manifest not found" in res.stderr
    path = write_detection_manifest(tmp_path / "m", [([], [("a", 0, 0, 1, 1)])])
    res = run_cli("evaluate", str(path), "--predicted", PRED, "--reference", REF, "--iou", "0")
    assert res.returncode == 2 and "--iou" in res.stderr and "Traceback" not in res.stderr
    res = run_cli("evaluate", str(path), "--predicted", "nothing", "--reference", REF)
    assert res.returncode == 1 and res.stderr.count("\n") == 1 and "no line holds 'nothing'" in res.stderr


@pytest.mark.slow
def test_nothing_evaluated_is_said_once_on_stderr_under_the_text_report(tmp_path: Path) -> None:
    """The text report ended in "nothing evaluated: ..." and the error line said it again."""
    (line,) = [orjson.loads(x) for x in write_detection_manifest(tmp_path / "m", [([], [("a", 0, 0, 1, 1)])])
               .read_bytes().splitlines()]
    del line[PRED]  # held, but failed: nothing to compare
    line[PRED + "-metadata"] = {"failure-reason": "fetch: 404", "type": "groundtruth/object-detection"}
    res = run_cli("evaluate", str(_lines(tmp_path / "f", [line])), "--predicted", PRED, "--reference", REF)
    assert res.returncode == 1
    assert "nothing evaluated" not in res.stdout and "lines" in res.stdout  # the report, without the verdict
    assert res.stderr.startswith("totask-manifest evaluate: error: nothing evaluated: no line has comparable labels")
    assert res.stderr.count("\n") == 1


def _hand_job(root: Path, name: str, attr: str, *, chained_from: str | None, manifest: bytes) -> Path:
    from totask_manifest._jobs.config import JobConfig
    from totask_manifest._jobs.state import JobState
    from totask_manifest._jobs.status import COMPLETED

    state = JobState(JobConfig(name, str(root / "in.manifest"), str(root), attr, "object-detection"),
                     status=COMPLETED, chained_from=chained_from)
    state.save()
    out = root / name / "manifests" / "output" / "output.manifest"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(manifest)
    return root / name


def test_lineage_is_oriented_by_human_annotated(tmp_path: Path) -> None:
    """A model job chained from people's labels: the later job is the prediction, not the reference."""
    images = [([("a", 0, 0, 10, 10, 0.9)], [("a", 0, 0, 10, 10)]), ([("a", 5, 5, 10, 10, 0.4)], [("a", 0, 0, 10, 10)])]
    raw = write_detection_manifest(tmp_path / "m", images).read_bytes()
    first = _hand_job(tmp_path, "people", REF, chained_from=None, manifest=raw)
    model = _hand_job(tmp_path, "model", PRED, chained_from=str(first), manifest=raw)
    ev = evaluate_manifest(str(model))
    assert (ev.predicted, ev.reference, ev.how_found) == (PRED, REF, "job lineage, oriented by human-annotated")
    assert ev.detection["true_positives"] == 1 and ev.detection["false_positives"] == 1
    # the first job alone has no lineage: human-annotated names both sides
    assert (evaluate_manifest(str(first)).predicted, evaluate_manifest(str(first)).reference) == (PRED, REF)


@pytest.mark.slow
def test_worker_processes_give_the_same_answer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Byte ranges in spawned processes, folded in file order: every figure, example and worst line
    (line numbers included) equals one process's, tied scores across ranges too."""
    import random

    from tests.evaluate_helpers import random_images
    from totask_manifest._manifest import ranges

    images = random_images(random.Random(3), 1500, tie_scores=True)
    raw = write_detection_manifest(tmp_path / "m", images).read_bytes().splitlines(keepends=True)
    failed = orjson.dumps({"source-ref": "s3://b/x.jpg", PRED + "-metadata": {"failure-reason": "404"}}) + b"\n"
    for i in range(0, len(raw), 97):
        raw[i] = failed if i % 2 else b"\n"
    path = tmp_path / "mixed.manifest"
    path.write_bytes(b"\xef\xbb\xbf" + b"".join(raw))
    one = evaluate_manifest(str(path), predicted=PRED, reference=REF, workers=1).to_dict()
    monkeypatch.setattr(ranges, "MIN_RANGE_BYTES", 16 << 10)
    assert len(ranges.plan_ranges(path.stat().st_size, 3)) > 8
    many = evaluate_manifest(str(path), predicted=PRED, reference=REF, workers=3).to_dict()
    assert many == one
    assert one["lines"]["skipped"]["predicted"] == {"failed": 8} and one["lines"]["blank"] == 8


@pytest.mark.slow
def test_manifest_and_masks_on_s3(tmp_path: Path, s3: S3Endpoint) -> None:
    """A manifest on a real S3 API (moto server mode), masks fetched from the same bucket through
    the fetch policy: same figures as the local copy."""
    images = [([("a", 0, 0, 10, 10, 0.9), ("a", 50, 50, 10, 10, 0.2)], [("a", 1, 0, 10, 10)])]
    local = write_detection_manifest(tmp_path / "m", images)
    bucket = s3.new_bucket("ev")
    fs = s3.filesystem()
    fs.pipe(f"{bucket}/m.manifest", local.read_bytes())
    remote = evaluate_manifest(f"{bucket}/m.manifest", predicted=PRED, reference=REF).to_dict()
    here = evaluate_manifest(str(local), predicted=PRED, reference=REF).to_dict()
    remote.pop("manifest"), here.pop("manifest")
    assert remote == here and remote["detection"]["false_positives"] == 1
    colors = {"0": {"class-name": "BACKGROUND", "hex-color": "#ffffff"}, "1": {"class-name": "car", "hex-color": "#ff0000"}}
    fs.pipe(f"{bucket}/p.png", _mask_png(["rr..", "...."], {"r": "#ff0000", ".": "#ffffff"}))
    fs.pipe(f"{bucket}/r.png", _mask_png(["r...", "...."], {"r": "#ff0000", ".": "#ffffff"}))
    meta = {"type": "groundtruth/semantic-segmentation", "internal-color-map": colors, "job-name": "labeling-job/x",
            "creation-date": "2026-01-01T00:00:00.000000"}
    rec = {"source-ref": f"{bucket}/img.png", "p-ref": "p.png", "p-ref-metadata": {**meta, "human-annotated": "no"},
           "r-ref": f"{bucket}/r.png", "r-ref-metadata": {**meta, "human-annotated": "yes"}}
    fs.pipe(f"{bucket}/seg.manifest", orjson.dumps(rec) + b"\n")  # "p.png" resolves against the manifest's folder
    seg = evaluate_manifest(f"{bucket}/seg.manifest").segmentation
    assert {r["class"]: r["iou"] for r in seg["per_class"]} == {"BACKGROUND": 6 / 7, "car": 1 / 2}
    refused = evaluate_manifest(f"{bucket}/seg.manifest", fetch_options={"allow_hosts": ["elsewhere"]})
    assert refused.evaluated == 0 and "allow-host" in refused.examples[0]["reason"]


def test_unreadable_labels_are_counted_with_their_reason(tmp_path: Path) -> None:
    images = [([("a", 0, 0, 10, 10, 0.9)], [("a", 0, 0, 10, 10)])] * 3
    lines = [orjson.loads(x) for x in write_detection_manifest(tmp_path / "m", images).read_bytes().splitlines()]
    lines[1][PRED]["annotations"][0]["left"] = "12"  # a string is no coordinate
    lines[2][PRED + "-metadata"]["type"] = "groundtruth/custom"  # custom without a format we read
    ev = evaluate_manifest(str(_lines(tmp_path / "u", lines)), predicted=PRED, reference=REF)
    assert ev.evaluated == 1 and dict(ev.skipped["predicted"]) == {"unreadable": 2}
    reasons = [e["reason"] for e in ev.examples]
    assert "object-detection label: annotations[0] needs numeric left, top, width, height" in reasons[0]
    assert reasons[1].startswith("custom label: custom label of format None")


@pytest.mark.slow
@pytest.mark.parametrize("option", ["--predicted", "--reference"])
def test_a_misspelt_attribute_is_answered_with_the_attributes_the_lines_hold(tmp_path: Path, option: str) -> None:
    """As stats, validate, convert and labeled do: the name typed is wrong, so one line says which
    exist, and no report. A report of 50 lines came first (``0 evaluated``, ``predicted: missing
    50``, five examples), the error naming no attribute that was absent last."""
    path = write_detection_manifest(tmp_path / "m", [([("a", 0, 0, 1, 1, 0.9)], [("a", 0, 0, 1, 1)])] * 50)
    given = {"--predicted": PRED, "--reference": REF, option: "nothing"}
    res = run_cli("evaluate", str(path), *[x for pair in given.items() for x in pair])
    assert res.returncode == 1
    assert res.stdout == ""
    assert res.stderr.splitlines() == [
        f"totask-manifest evaluate: error: {path}: no line holds 'nothing' or 'nothing-metadata' (label attributes "
        f"seen: {', '.join(sorted((PRED, REF)))}); check {option} [label-attribute-absent]"], res.stderr


@pytest.mark.slow
@pytest.mark.parametrize("option", ["--predicted", "--reference"])
def test_a_misspelt_attribute_given_alone_for_a_job_is_said_as_with_both_flags(tmp_path: Path, option: str) -> None:
    """``evaluate JOB --predicted boxs``: a name on neither side of the job's pair fell through to
    "cannot tell the attributes to compare; give --reference" (exit 2), blaming a flag not given,
    where with both flags the same typo is refused as absent (exit 1). One line, the same in both forms."""
    job = make_review_chain(tmp_path, [[("cat", 10, 10, 50, 50, 0.9)]] * 2, [[("cat", 10, 10, 50, 50)]] * 2)
    alone = run_cli("evaluate", str(job), option, "boxs")
    other = {"--predicted": ["--reference", "review"], "--reference": ["--predicted", "boxes"]}[option]
    both = run_cli("evaluate", str(job), option, "boxs", *other)
    assert (alone.returncode, alone.stdout) == (1, ""), alone.stderr
    assert alone.stderr.splitlines() == [
        f"totask-manifest evaluate: error: {job}/manifests/output/output.manifest: no line holds 'boxs' or "
        f"'boxs-metadata' (label attributes seen: boxes, review); check {option} [label-attribute-absent]"]
    assert (both.returncode, both.stderr) == (1, alone.stderr)


def test_labels_that_cannot_be_compared_are_not_called_absent(tmp_path: Path) -> None:
    """Both attributes held, every predicted line failed: the report says why, not 'no line holds'."""
    lines = [orjson.loads(x) for x in
             write_detection_manifest(tmp_path / "m", [([("a", 0, 0, 1, 1, 0.9)], [("a", 0, 0, 1, 1)])] * 3)
             .read_bytes().splitlines()]
    for line in lines:
        del line[PRED]
        line[PRED + "-metadata"] = {"failure-reason": "fetch: 404", "type": "groundtruth/object-detection"}
    res = run_cli("evaluate", str(_lines(tmp_path / "f", lines)), "--predicted", PRED, "--reference", REF)
    assert res.returncode == 1
    assert "predicted: failed 3" in res.stdout, res.stdout
    assert res.stderr.splitlines()[-1].startswith("totask-manifest evaluate: error: nothing evaluated: "), res.stderr


def _one_box_a_class(names: list[str]) -> list[dict]:
    """A line a class name: one box of that class, predicted (``p``) and referenced (``r``) alike."""
    rows = []
    for i, name in enumerate(names):
        label = {"image_size": [{"width": 10, "height": 10, "depth": 3}],
                 "annotations": [{"class_id": i, "left": 1, "top": 1, "width": 2, "height": 2}]}
        meta = {"class-map": {str(i): name}, "type": "groundtruth/object-detection",
                "creation-date": "2024-01-01T00:00:00.000000", "job-name": "labeling-job/j"}
        rows.append({"source-ref": f"s3://b/{i}.jpg", "p": label, "p-metadata": {**meta, "human-annotated": "no"},
                     "r": label, "r-metadata": {**meta, "human-annotated": "yes"}})
    return rows


def test_class_names_that_would_break_the_text_tables_are_shown_escaped(tmp_path):
    """A class named ``two\\nlines`` split its row of the per-class table, and a NUL or a
    right-to-left override reached the terminal raw; such names are now shown as literals, as
    ``stats`` shows them."""
    names = ["two\nlines", "\x00cat", "\u202eevil", "dog"]
    rows = _one_box_a_class(names)
    src = tmp_path / "in.manifest"
    src.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    text = format_text(evaluate_manifest(str(src), predicted="p", reference="r", workers=1))
    assert "\x00" not in text and "\u202e" not in text and "two\nlines" not in text, text
    table = [row for row in text.splitlines() if row.endswith("1.0000  1.0000")]
    assert len(table) == len(names), text
    for name in names[:3]:
        assert any(row.startswith("  " + repr(name)) for row in table), (name, table)


def test_the_text_tables_line_up_under_korean_and_cjk_class_names(tmp_path):
    """A class named 고양이 or 正方形 takes two terminal columns a character: the per-class table
    and the confusion matrix were padded by characters, so every column after such a name stood
    one to three columns off those of the Latin names' rows. Padded by terminal columns now, as
    ``stats``' bars are."""
    from totask_manifest._analytics.stats import columns

    names = ["고양이", "正方形", "dog"]
    rows = _one_box_a_class(names)
    src = _lines(tmp_path / "in.manifest", rows)
    text = format_text(evaluate_manifest(str(src), predicted="p", reference="r", workers=1)).splitlines()
    header = next(i for i, row in enumerate(text) if row.lstrip().startswith("class ") and "refs" in row)
    table = text[header:header + 2 + len(names)]  # header, rule, a row a class
    assert {row.split()[0] for row in table[2:]} == set(names), table
    assert len({columns(row) for row in table}) == 1, table  # every row as wide as the rule under the header
    starts = {columns(row[:row.index("1.0000")]) for row in table[2:]}
    assert len(starts) == 1, table  # the precision column starts at one terminal column on every row


def test_a_folder_that_is_no_job_is_named_as_such(tmp_path):
    """``evaluate some-folder/`` said ``manifest not found: some-folder``, though the folder is
    there: it now says what a job folder holds, as ``report`` says it."""
    (tmp_path / "data").mkdir()
    with pytest.raises(NotAJobError, match=r"is not a job folder: no job\.json and no manifests/output/output\.manifest"):
        evaluate_manifest(str(tmp_path / "data"))
    with pytest.raises(UsageError, match="manifest not found"):
        evaluate_manifest(str(tmp_path / "missing.manifest"))


def test_evaluate_names_job_folders_and_a_gone_or_changed_output_as_status_does(tmp_path, capsys):
    """``evaluate out/`` (an output root) did not name the job folders in it, ``evaluate JOB/manifests``
    not the job folder it is inside; a job's deleted output was "no output manifest yet", and a
    changed one was evaluated without a word. Each is said now as ``status`` and ``report`` say it."""
    from tests.jobs_helpers import sample_job_args
    from totask_manifest._cli import main

    out = tmp_path / "out"
    assert main(sample_job_args("boxes", out)) == 0
    job = out / "boxes"
    with pytest.raises(NotAJobError, match=r"it holds job folder boxes: give one"):  # exit 2, as in status
        evaluate_manifest(str(out))
    with pytest.raises(NotAJobError, match="is a folder inside job folder"):
        evaluate_manifest(str(job / "manifests"))
    output = job / "manifests" / "output" / "output.manifest"
    kept = output.read_bytes()
    output.unlink()
    with pytest.raises(UsageError, match=r"output manifest .* is gone \(deleted or moved since job 'boxes' wrote it\)"):
        evaluate_manifest(str(job), predicted="boxes", reference="boxes-x")
    output.write_bytes(kept[: len(kept) // 2].rpartition(b"\n")[0] + b"\n")
    capsys.readouterr()
    main(["evaluate", str(job)])
    err = capsys.readouterr().err
    assert err.count("changed since job 'boxes' wrote it") == 1, err


def test_a_jobs_own_file_given_for_a_manifest_names_the_job_folder(tmp_path, capsys):
    """``evaluate JOB/job.json`` (or the job's ``failures.jsonl``, or a checkpoint file) was read as a
    manifest: "81 not a JSON object", exit 1, or "cannot tell the attributes to compare". It names
    the job folder to give now (exit 2); the job's own manifests are still read as manifests."""
    from tests.jobs_helpers import sample_job_args
    from totask_manifest._cli import main

    out = tmp_path / "out"
    assert main(sample_job_args("boxes", out)) == 0
    job = out / "boxes"
    capsys.readouterr()
    for own in (job / "job.json", job / "failures.jsonl", next((job / "manifests" / "intermediate").iterdir())):
        assert main(["evaluate", str(own), "--predicted", "boxes", "--reference", "x"]) == 2, own
        err = capsys.readouterr().err
        assert err == (f"totask-manifest evaluate: error: {own} is a file of job folder {job}, not a manifest: give "
                       "the job folder (its output manifest is evaluated) or a manifest\n"), err
    output = job / "manifests" / "output" / "output.manifest"
    with pytest.raises(ManifestError, match="no line holds 'x'"):  # read as the manifest it is
        evaluate_manifest(str(output), predicted="boxes", reference="x")
