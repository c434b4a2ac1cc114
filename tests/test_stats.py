"""``stats`` against an independent plain-Python count, on the real manifests and on hard cases.

The count under test parses in worker processes over byte ranges and sums plain counts;
the reference below reads the whole file at once, one ``orjson.loads`` per line, one process.
"""

from __future__ import annotations

import itertools
import json
import math
import re
from collections import Counter
from dataclasses import asdict
from pathlib import Path

import fsspec
import orjson
import pytest

from tests.support.gt import GT_MANIFESTS as GT
from tests.support.gt import gt_files, requires_gt
from tests.support.s3 import S3Endpoint
from totask_manifest._analytics import stats as stats_module
from totask_manifest._analytics.stats import format_text, manifest_stats
from totask_manifest._annotators.failure_rules import rule_of
from totask_manifest._cli import main as cli_main
from totask_manifest._errors import ManifestError
from totask_manifest._manifest import ranges as ranges_module
from totask_manifest.testing.builders import lines_naming

pytestmark = requires_gt

DET = {"object-detection"}
SINGLE = {"image-classification", "text-classification", "label-verification", "video-classification"}
MULTI = {"image-classification-multilabel", "text-classification-multilabel"}
SEG = {"semantic-segmentation"}


def reference(path: Path, attrs: list[str] | None = None) -> dict:
    """Count with orjson, one line at a time: the specification the parallel count must meet."""
    raw_lines = path.read_bytes().removeprefix(b"\xef\xbb\xbf").split(b"\n")
    if raw_lines and raw_lines[-1] == b"":
        raw_lines.pop()
    records = []
    blank = invalid = 0
    for raw in raw_lines:
        if not raw.strip():
            blank += 1
            continue
        try:
            record = orjson.loads(raw)
        except orjson.JSONDecodeError:
            record = None
        if isinstance(record, dict):
            records.append(record)
        else:
            invalid += 1
    if attrs is None:
        attrs = sorted({k[: -len("-metadata")] for r in records for k, v in r.items()
                        if k.endswith("-metadata") and isinstance(v, dict)
                        and ("type" in v or "failure-reason" in v)} - {"source", "source-ref"})
    out = {"lines": len(raw_lines), "blank": blank, "invalid": invalid, "attributes": {}}
    for a in attrs:
        s = {"lines": 0, "labeled": 0, "failed": 0, "failures": Counter(), "types": Counter(), "human": Counter(),
             "jobs": Counter(), "classes": Counter(), "names": {}, "hist": [0] * 10, "conf": [],
             "per_image": Counter(), "pairs": Counter()}
        for r in records:
            meta = r.get(a + "-metadata")
            if not isinstance(meta, dict):
                continue
            s["lines"] += 1
            t = meta.get("type", "")
            t = t.removeprefix("groundtruth/") if isinstance(t, str) else t
            if t:
                s["types"][t] += 1
            if "failure-reason" in meta:
                s["failed"] += 1
                s["failures"][meta.get("failure-rule") or rule_of(meta["failure-reason"])] += 1
                continue
            if r.get(a) is None:  # missing or null: no value
                continue
            s["labeled"] += 1
            if "human-annotated" in meta:
                s["human"][meta["human-annotated"]] += 1
            if "job-name" in meta:
                s["jobs"][meta["job-name"]] += 1
            value = r[a]
            confs = []
            cmap = meta.get("class-map") if isinstance(meta.get("class-map"), dict) else {}
            if t in DET:
                ids = [x["class_id"] for x in value["annotations"]]
                s["classes"].update(ids)
                s["pairs"].update((i, cmap.get(str(i))) for i in ids)
                s["per_image"][len(ids)] += 1
                confs = [o["confidence"] for o in meta.get("objects", [])]
                for k, v in meta.get("class-map", {}).items():
                    s["names"].setdefault(int(k), set()).add(v)
            elif t in SINGLE:
                s["classes"][int(value)] += 1
                s["pairs"][(int(value), meta.get("class-name"))] += 1
                if "class-name" in meta:
                    s["names"].setdefault(int(value), set()).add(meta["class-name"])
                confs = [meta["confidence"]] if "confidence" in meta else []
            elif t in MULTI:
                s["classes"].update(value)
                s["pairs"].update((v, cmap.get(str(v))) for v in value)
                for k, v in meta.get("class-map", {}).items():
                    s["names"].setdefault(int(k), set()).add(v)
                cmap = meta.get("confidence-map", {})
                confs = [cmap[str(v)] for v in value if str(v) in cmap]
            elif t in SEG:  # each color map's classes, a line each; the background (0) left out
                for k, entry in meta.get("internal-color-map", {}).items():
                    if k != "0":
                        s["classes"][int(k)] += 1
                        s["pairs"][(int(k), entry["class-name"])] += 1
                        s["names"].setdefault(int(k), set()).add(entry["class-name"])
            for c in confs:
                s["hist"][min(max(math.floor(c * 10), 0), 9)] += 1
            s["conf"] += confs
        out["attributes"][a] = s
    return out


def assert_same(path: Path, attrs: list[str] | None = None, url: str | None = None, workers: int | None = None):
    got = manifest_stats(url or str(path), label_attributes=attrs, workers=workers)
    want = reference(path, attrs)
    assert (got.lines, got.blank_lines, got.invalid_lines) == (want["lines"], want["blank"], want["invalid"]), path.name
    assert set(got.attributes) == set(want["attributes"]), path.name
    for a, w in want["attributes"].items():
        g = got.attributes[a]
        where = f"{path.name} {a}"
        assert (g.lines, g.labeled, g.failed) == (w["lines"], w["labeled"], w["failed"]), where
        assert g.failures == dict(w["failures"]), where
        assert g.types == dict(w["types"]), where
        assert g.human_annotated == dict(w["human"]), where
        assert g.job_names == dict(w["jobs"]), where
        # by name where the line's class map names the class (else the one name its id has
        # elsewhere), by id otherwise
        want_classes: Counter = Counter()
        want_ids: dict = {}
        for (cid, name), k in w["pairs"].items():
            if name is None and len(w["names"].get(cid, ())) == 1:
                name = next(iter(w["names"][cid]))
            key = name if name is not None else ("id", cid)
            want_classes[key] += k
            want_ids.setdefault(key, set()).add(cid)
        assert {c.name if c.name is not None else ("id", c.class_id): c.count for c in g.classes} == \
            dict(want_classes), where
        assert {c.name if c.name is not None else ("id", c.class_id): set(c.class_ids) for c in g.classes} == \
            want_ids, where
        assert sum(c.count for c in g.classes) == sum(w["classes"].values()), where
        assert g.confidence_histogram == w["hist"], where
        assert g.confidence_count == len(w["conf"]), where
        if w["conf"]:
            assert g.confidence_mean == pytest.approx(sum(w["conf"]) / len(w["conf"])), where
        assert g.boxes_per_image == dict(w["per_image"]), where
        assert g.boxes == sum(w["classes"].values()) if w["per_image"] else g.boxes == 0, where
    return got


REAL = [p.name for p in gt_files(".manifest", ".jsonl")]


@pytest.mark.parametrize("name", REAL)
def test_real_manifest_matches_independent_count(name):
    assert_same(GT / name)


def test_real_corpus_has_what_the_counts_cover():
    # guard against a silently empty parametrisation
    assert len(REAL) >= 20
    korean = manifest_stats(str(GT / "object-detection-chained-adjustment__YeongJun-Jeon-1to100_Korean__output.manifest"))
    assert set(korean.attributes) == {"suneung-korean-layout-detection-v2", "suneung-korean-layout-detection-v2-chain"}
    dice = manifest_stats(str(GT / "object-detection-chained-same-attribute__aws-samples-mxnet-dice-aim403-workshop__output.manifest"))
    jobs = dice.attributes["dice-labeling"].job_names
    assert jobs == {"labeling-job/dice-labeling-chain4": 166, "labeling-job/dice-labeling": 149}
    assert dice.attributes["dice-labeling"].boxes_per_image[0] == 3
    custom = manifest_stats(str(GT / "custom-task__aws-samples-aws-legal-entity-extraction__output.manifest"))
    # "annotator-metadata" is an input key, not a label attribute
    assert list(custom.attributes) == ["legal-entity-label-job-labeling-job-20220104T172242"]


def _od(attr, ids, confs, *, human="no", job="labeling-job/j", names=None, extra_meta=None):
    names = names or {}
    return {
        attr: {"image_size": [{"width": 10, "height": 10, "depth": 3}],
               "annotations": [{"class_id": c, "left": 1, "top": 1, "width": 2, "height": 2} for c in ids]},
        attr + "-metadata": {"objects": [{"confidence": c} for c in confs],
                             "class-map": {str(c): names.get(c, f"c{c}") for c in ids},
                             "type": "groundtruth/object-detection", "human-annotated": human,
                             "creation-date": "2026-01-01T00:00:00.000000", "job-name": job, **(extra_meta or {})},
    }


def test_hard_lines_count_the_same(tmp_path):
    lines = [
        {"source-ref": "s3://b/한글.jpg", **_od("A", [0, 1], [0.1, 0.95], names={0: "café", 1: "새"})},
        {"source-ref": "s3://b/2.jpg", **_od("A", [1], [1.0], human="yes", job="labeling-job/j-chain")},
        # failure-reason with braces and escaped quotes (a quoted error body)
        {"source-ref": "s3://b/3.jpg", "A-metadata": {"failure-reason": 'HTTP 500: {"error": "boom"'}},
        {"source-ref": "s3://b/4.jpg", "A-metadata": {"failure-reason": "timeout"}},
        {"source-ref": "s3://b/5.jpg", "A-metadata": {"failure-reason": "timeout"}},
        # an unbalanced brace in a class name, followed by another attribute
        {"source-ref": "s3://b/6.jpg", **_od("A", [2], [0.5], names={2: "a{b"}),
         **_od("B", [0, 0, 0], [0.2, 0.3, 0.4])},
        # metadata nested four levels deep
        {"source-ref": "s3://b/7.jpg", **_od("A", [0], [0.05], extra_meta={"x": {"y": {"z": {"w": 1}}}})},
        # the attribute name appears as a value before the key
        {"note": "A", "source-ref": "s3://b/8.jpg", **_od("A", [3], [0.7])},
        # classification and multi-label next to each other
        {"source": "text", "C": 2, "C-metadata": {"class-name": "pos\u00e9", "confidence": 0.61,
                                                   "type": "groundtruth/text-classification", "human-annotated": "yes",
                                                   "job-name": "labeling-job/c"},
         "M": [1, 4], "M-metadata": {"class-map": {"1": "x", "4": "y"}, "confidence-map": {"1": 0.3, "4": 0.9, "0": 0.1},
                                     "type": "groundtruth/text-classification-multilabel", "human-annotated": "no",
                                     "job-name": "labeling-job/m"}},
        {"source-ref": "s3://b/9.jpg", "C": "1", "C-metadata": {"class-name": "neg", "confidence": 1,
                                                                  "type": "groundtruth/text-classification"}},
        # structure-like text inside strings: unbalanced braces and quotes, a fake metadata key
        {"source-ref": "s3://b/10.jpg", **_od("A", [6], [0.33], names={6: 'a: { b'}, job='labeling-job/x"}',
                                               extra_meta={"note": '"A-metadata": {"failure-reason": "x"}',
                                                           "deep": [{"s": "}}]]"}]})},
        {"source-ref": "s3://b/11.jpg", "A-metadata": {"failure-reason": 'a: { b "c": [1}'}},
        # a metadata key whose value is not an object, and an input key ending in -metadata
        {"source-ref": "s3://b/12.jpg", "A-metadata": "not an object", "annotator-metadata": {"who": "me"}},
        # a label value without metadata, and metadata without a value (neither labeled nor failed)
        {"source-ref": "s3://b/13.jpg", "A": {"annotations": [{"class_id": 9}]}},
        {"source-ref": "s3://b/14.jpg", "A-metadata": {"type": "groundtruth/object-detection"}},
    ]
    body = b"".join(orjson.dumps(r) + b"\n" for r in lines)
    # a pretty-printed line (spaces around colons) and a blank line
    body += json.dumps(_od("A", [5], [0.25]), indent=None, separators=(", ", " : ")).encode() + b"\n\n"
    path = tmp_path / "hard.manifest"
    path.write_bytes(body)
    got = assert_same(path)
    a = got.attributes["A"]
    assert a.failures == {"timeout": 2, "http-500": 1, "failed": 1}  # grouped by rule
    assert (a.lines, a.labeled, a.failed) == (12, 7, 4)
    assert a.job_names['labeling-job/x"}'] == 1
    assert {c.name: c.class_ids for c in a.classes}["a: { b"] == [6]
    assert "annotator" not in got.attributes
    # two names for one id on different lines: counted apart, and the clash reported
    assert {c.name: c.count for c in a.classes if c.class_id == 0} == {"café": 1, "c0": 1}
    assert [(x.class_id, x.counts) for x in a.class_clashes] == [(0, {"c0": 1, "café": 1}), (1, {"c1": 1, "새": 1})]
    assert {c.name: c.class_ids for c in a.classes}["a{b"] == [2]
    assert got.attributes["B"].boxes == 3
    assert got.attributes["M"].confidence_count == 2  # class 0 is in the confidence-map but not chosen
    assert got.blank_lines == 1
    assert manifest_stats(str(path), label_attributes=["A"]).attributes["A"] == a


def _mixed_file(path: Path) -> Path:
    """Several real manifests (detection, chained, classification, multi-label) in one file, with
    a byte order mark, CRLF lines, blank lines, lines that are not JSON objects and a last line
    without a terminator: every kind of line sits on some range boundary when ranges are tiny."""
    names = [
        "object-detection-chained-same-attribute__aws-samples-mxnet-dice-aim403-workshop__output.manifest",
        "image-classification-output__kkr4353-aws-product-development__output.manifest",
        "text-classification-multilabel__aws-samples-amazon-comprehend-examples__DocumentClassifier-output.manifest",
        "object-detection-chained-adjustment__YeongJun-Jeon-1to100_Korean__output.manifest",
    ]
    out = [b"\xef\xbb\xbf"]
    for i, name in enumerate(names):
        for j, line in enumerate((GT / name).read_bytes().splitlines()):
            out.append(line + (b"\r\n" if (i + j) % 3 == 0 else b"\n"))
            if j % 17 == 5:
                out.append(b"\n   \r\n")
            if j % 29 == 7:
                out.append(b'not json {"x-metadata": {"type": "groundtruth/object-detection"}}\n[1, 2]\n')
    out.append(orjson.dumps(_od("tail", [1, 2], [0.5, 0.99])))  # no terminator
    path.write_bytes(b"".join(out))
    return path


@pytest.mark.slow
def test_byte_ranges_in_worker_processes_count_the_same(tmp_path, monkeypatch):
    path = _mixed_file(tmp_path / "mixed.manifest")
    # ranges of a few kilobytes: dozens of boundaries, inside lines, on CRLF, on blank lines
    monkeypatch.setattr(ranges_module, "MIN_RANGE_BYTES", 4096)
    size = path.stat().st_size
    ranges = ranges_module.plan_ranges(size, 3)
    assert len(ranges) == 3 * ranges_module.RANGES_PER_WORKER and ranges[0][0] == 0 and ranges[-1][1] == size
    assert all(a[1] == b[0] for a, b in itertools.pairwise(ranges))
    parallel = assert_same(path, workers=3)
    assert parallel.invalid_lines > 0 and parallel.blank_lines > 0
    assert set(parallel.attributes) >= {"dice-labeling", "tail", "suneung-korean-layout-detection-v2"}
    one = manifest_stats(str(path), workers=1)
    assert parallel.to_dict() | {"attributes": None} == one.to_dict() | {"attributes": None}
    for name, a in one.attributes.items():
        b = parallel.attributes[name]
        assert b.confidence_mean == pytest.approx(a.confidence_mean)
        assert {**asdict(b), "confidence_mean": None} == {**asdict(a), "confidence_mean": None}


def test_many_small_batches_fold_to_the_same_counts(tmp_path, monkeypatch):
    # in this process (one worker), so the patched batch size applies: dozens of partial folds
    monkeypatch.setattr(stats_module, "BATCH_LINES", 7)
    assert_same(_mixed_file(tmp_path / "mixed.manifest"), workers=1)
    assert_same(GT / "object-detection-chained-same-attribute__aws-samples-mxnet-dice-aim403-workshop__output.manifest",
                ["dice-labeling"], workers=1)


def test_lines_that_are_not_json_objects_are_counted_and_reported(tmp_path):
    path = tmp_path / "broken.manifest"
    path.write_bytes(b'{"source-ref": "s3://b/1.jpg"}\n{"source-ref": \n"text"\n\n' + orjson.dumps(_od("A", [1], [0.4])))
    got = assert_same(path)
    assert (got.lines, got.blank_lines, got.invalid_lines) == (5, 1, 2)
    assert got.attributes["A"].labeled == 1
    assert "lines that are not a JSON object: 2" in format_text(got)


@pytest.mark.slow
def test_manifest_on_s3_streams_through_the_same_counts(tmp_path, s3: S3Endpoint):
    src = _mixed_file(tmp_path / "mixed.manifest")
    bucket = s3.new_bucket("stats")
    s3.filesystem().put(str(src), f"{bucket}/out/mixed.manifest")
    assert_same(src, url=f"{bucket}/out/mixed.manifest")
    assert_same(src, ["dice-labeling", "tail"], url=f"{bucket}/out/mixed.manifest")


def test_named_attributes_only_and_a_remote_url(tmp_path):
    src = GT / "object-detection-chained-adjustment__YeongJun-Jeon-1to100_Korean__output.manifest"
    attr = ["suneung-korean-layout-detection-v2-chain"]
    with fsspec.open("memory://stats/korean.manifest", "wb") as f:
        f.write(src.read_bytes())
    assert_same(src, attr, url="memory://stats/korean.manifest")
    with pytest.raises(ManifestError, match="no line holds 'nope'") as exc:  # as the CLI: not a result of zeros
        manifest_stats(str(src), label_attributes=["nope"])
    assert exc.value.rule == "label-attribute-absent"


def test_cli_json_and_text(tmp_path, capsys):
    src = GT / "object-detection__aws-amazon-sagemaker-examples__yolov5-sample_output.manifest"
    assert cli_main(["stats", str(src), "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    cat = data["attributes"]["category"]
    assert (data["lines"], cat["labeled"], cat["boxes"]) == (50, 50, 129)
    assert cat["classes"] == [{"class_id": 0, "name": "Bird", "count": 129, "class_ids": [0]}]
    assert cat["class_clashes"] == []
    assert sum(cat["confidence_histogram"]) == 129
    assert cli_main(["stats", str(src)]) == 0
    text = capsys.readouterr().out
    assert "label attribute 'category'" in text and "129" in text and "[0.9, 1.0]" in text
    assert cli_main(["stats", str(tmp_path / "missing.manifest")]) == 2
    assert "no such file" in capsys.readouterr().err
    assert cli_main(["stats", str(src), "--workers", "1", "--label-attribute", "category", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["attributes"] == data["attributes"]
    assert cli_main(["stats", str(src), "--workers", "0"]) == 2
    assert "workers must be at least 1" in capsys.readouterr().err


def test_classes_are_counted_by_name_and_clashes_reported(tmp_path, capsys):
    """A file that reuses id 4 for 'cat' and 'dog' (two jobs, two label lists) and writes 'cat'
    under ids 4 and 7: counts go to names, never to 'cat|dog'."""
    lines = [
        {"source-ref": "s3://b/1.jpg", **_od("A", [4, 4], [0.9, 0.8], names={4: "cat"})},
        {"source-ref": "s3://b/2.jpg", **_od("A", [4], [0.7], names={4: "dog"})},
        {"source-ref": "s3://b/3.jpg", **_od("A", [7, 1], [0.6, 0.5], names={7: "cat", 1: "bird"})},
    ]
    path = tmp_path / "clash.manifest"
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in lines))
    a = assert_same(path).attributes["A"]
    assert [(c.name, c.count, c.class_ids) for c in a.classes] == [("cat", 3, [4, 7]), ("bird", 1, [1]),
                                                                   ("dog", 1, [4])]
    assert [(x.class_id, x.name, x.counts) for x in a.class_clashes] == [
        (4, None, {"cat": 2, "dog": 1}), (None, "cat", {"4": 2, "7": 1})]
    assert cli_main(["stats", str(path)]) == 0
    text = capsys.readouterr().out
    assert "cat|dog" not in text
    assert "class id 4 has several names: 'cat' (2), 'dog' (1)" in text
    assert "class 'cat' has several ids: 4 (2), 7 (1)" in text
    assert re.search(r"\b3 +4,7 cat\b", text)


def test_names_that_would_break_or_hide_in_the_text_are_shown_escaped(tmp_path, capsys):
    """Class names, job names and failure rules come from the file. A class named ``two\\nlines``
    split the class table over two lines, a NUL or a right-to-left override (U+202E) went raw to
    the terminal, and an empty name read ``?`` as a class with no name does. The text form now
    shows such a value as its Python literal; ``--format json`` is unchanged (JSON escapes)."""
    names = ["two\nlines", "\x00cat", "\u202eevil", "", "\u732b"]
    lines = lines_naming(names, "labeling-job/a\nb")
    src = tmp_path / "in.manifest"
    src.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in lines))
    assert cli_main(["stats", str(src), "--workers", "1"]) == 0
    out = capsys.readouterr().out
    assert "\x00" not in out and "\u202e" not in out and "a\nb" not in out, out
    table = out.split("labels per class:\n")[1].split("\n  boxes:")[0].splitlines()
    assert len(table) == len(names), table  # one line per class
    for name in names[:4]:
        assert any(repr(name) in row for row in table), (name, table)
    assert any(" \u732b " in row for row in table), table  # a printable name stays as it is
    assert "jobs: 'labeling-job/a\\nb' (5)" in out, out


def test_bars_after_wide_class_names_line_up_on_a_terminal(tmp_path):
    """Korean names took one column a character (``str.ljust``): their bars began 2-4 columns left
    of the others'. Each row's bar now starts at the same terminal column, a name longer than the
    table's 24 columns included (its row's bar stood that much to the right of the others')."""
    import unicodedata

    rows = []
    names = [(0, "삼각형"), (1, "원"), (2, "square"), (3, "e\u0301t\u00e9"), (4, "a-class-name-of-thirty-columns")]
    for i, (cid, name) in enumerate(names):
        rows.append(orjson.dumps({
            "source-ref": f"s3://b/{i}.jpg", "boxes": {"annotations": [{"class_id": cid}]},
            "boxes-metadata": {"class-map": {str(cid): name}, "type": "groundtruth/object-detection",
                               "human-annotated": "no", "creation-date": "2026-01-01T00:00:00", "job-name": "j"}}))
    path = tmp_path / "ko.manifest"
    path.write_bytes(b"\n".join(rows) + b"\n")
    text = format_text(manifest_stats(str(path)))
    bars = [line for line in text.splitlines() if line.endswith("#") and "labels" not in line][:len(names)]

    def column(line: str) -> int:
        before = line[: line.index("#")]
        return sum(2 if unicodedata.east_asian_width(c) in "WF" else 0 if unicodedata.combining(c) else 1 for c in before)

    assert len(bars) == len(names) and len({column(line) for line in bars}) == 1, bars


def test_an_attribute_of_two_task_types_is_said_so(tmp_path, capsys):
    """``boxes`` held boxes and, on line 3, an image classification label: the counts mixed them
    (classes of both, one histogram), exit 0, nothing said beyond the two types listed. Such lines
    are invalid data (``validate``: label-attribute-mixed-types): the counts are still given, and
    the mix is said in them, on stderr, with exit 1. Custom labels and failed lines mix nothing."""
    classified = {"source-ref": "s3://b/3.jpg", "boxes": 0, "boxes-metadata": {
        "class-name": "dog", "confidence": 0.9, "type": "groundtruth/image-classification",
        "job-name": "labeling-job/j", "human-annotated": "yes", "creation-date": "2026-01-01T00:00:00.000000"}}
    custom = {"source-ref": "s3://b/4.jpg", "boxes": {"any": 1}, "boxes-metadata": {"type": "groundtruth/custom"}}
    failed = {"source-ref": "s3://b/5.jpg", "boxes-metadata": {"failure-reason": "timeout",
                                                               "type": "groundtruth/image-classification"}}
    one = [{"source-ref": f"s3://b/{n}.jpg", **_od("boxes", [1], [0.4])} for n in (1, 2)]
    path = tmp_path / "m.manifest"
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in [*one, custom, failed]))
    assert manifest_stats(str(path)).attributes["boxes"].mixed_task_types == []
    assert cli_main(["stats", str(path)]) == 0
    assert "several task types" not in capsys.readouterr().out
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in [*one, classified, custom, failed]))
    got = manifest_stats(str(path))
    assert got.attributes["boxes"].types == {"object-detection": 2, "image-classification": 2, "custom": 1}
    assert got.attributes["boxes"].mixed_task_types == ["image-classification", "object-detection"]
    assert cli_main(["stats", str(path)]) == 1
    out, err = capsys.readouterr()
    assert "several task types under one label attribute (image-classification, object-detection)" in out
    assert err == ("totask-manifest stats: error: label attribute 'boxes' holds labels of 2 task types "
                   "(image-classification, object-detection): one label attribute holds one task type "
                   "[label-attribute-mixed-types] (totask-manifest validate names the lines); its counts mix them\n")
    assert cli_main(["stats", str(path), "--format", "json"]) == 1
    assert json.loads(capsys.readouterr().out)["attributes"]["boxes"]["mixed_task_types"] == [
        "image-classification", "object-detection"]


@pytest.mark.parametrize("name", REAL)
def test_real_manifests_hold_one_task_type_an_attribute(name):
    assert all(not a.mixed_task_types for a in manifest_stats(str(GT / name), workers=1).attributes.values())
