"""``stats``' msgspec fast path against its generic count (one ``orjson.loads`` a line).

The generic count is the specification: whatever the lines, broken ones included, the fast path
must give the same numbers. msgspec is laxer than orjson in what it skips (invalid UTF-8 in a
skipped string, ``1e999`` in a skipped number), so the mixtures below put exactly such bytes in
every place a field could be skipped; and a silently disabled fast path would pass those checks,
so one test checks that bench-shaped lines do take it.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from dataclasses import asdict
from pathlib import Path

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from totask_manifest._analytics import stats_facts, stats_fast, stats_structs
from totask_manifest._analytics.stats import Tally, _count_lines
from totask_manifest._analytics.stats_fast import FastPath
from totask_manifest._analytics.stats_tables import ManifestStats, merge_partials

CLASSES = ["person", "car", "bicycle", "dog"]


def detection(rng: random.Random, attr: str = "boxes", *, i: int = 0) -> dict:
    """A line as Ground Truth writes a bounding-box label (the benchmark's shape)."""
    n = rng.choice((0, 1, 2, 3))
    anns = [{"class_id": rng.randrange(len(CLASSES)), "top": round(rng.uniform(0, 500), 2),
             "left": round(rng.uniform(0, 600), 2), "height": rng.randrange(10, 300), "width": rng.randrange(10, 300)}
            for _ in range(n)]
    return {
        "source-ref": f"s3://bucket/images/{i:08d}.jpg",
        attr: {"image_size": [{"width": 1024, "height": 768, "depth": 3}], "annotations": anns},
        f"{attr}-metadata": {
            "objects": [{"confidence": round(rng.random(), 2)} for _ in anns[: rng.choice((n, n, max(n - 1, 0)))]],
            "class-map": {str(a["class_id"]): CLASSES[a["class_id"]] for a in anns},
            "type": rng.choice(("groundtruth/object-detection", "object-detection")),
            "human-annotated": rng.choice(("yes", "no")),
            "creation-date": "2026-11-21T10:00:00.000000",
            "job-name": rng.choice(("labeling-job/a", "labeling-job/b")),
        },
    }


def failed(rng: random.Random, attr: str = "boxes") -> dict:
    meta: dict = {"failure-reason": rng.choice(("ClientError: fetch failed (404)", "no such key", "timeout"))}
    if rng.random() < 0.3:
        meta["failure-rule"] = rng.choice(("fetch-failed", ""))
    if rng.random() < 0.3:
        meta["type"] = "groundtruth/object-detection"
    return {"source-ref": "s3://bucket/x.jpg", f"{attr}-metadata": meta}


def classification(rng: random.Random) -> dict:
    return {"source-ref": "s3://b/c.jpg", "cls": rng.randrange(4),
            "cls-metadata": {"class-name": rng.choice(CLASSES), "confidence": rng.random(),
                             "type": "groundtruth/image-classification", "human-annotated": "no",
                             "job-name": "labeling-job/c"}}


def _set(record: dict, path: tuple, value) -> dict:
    node = record
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return record


#: (path into a detection record, a value) pairs that are valid JSON the fast path may refuse
ODD_VALUES = [
    (("boxes", "annotations"), [{"class_id": "2"}]),
    (("boxes", "annotations"), [{"class_id": 2.0}]),
    (("boxes", "annotations"), [{"class_id": True}]),
    (("boxes", "annotations"), [{"class_id": 2**63}]),
    (("boxes", "annotations"), [{"class_id": -(2**63)}, {"class_id": 2**64 - 1}]),
    (("boxes", "annotations"), [{"class_id": 1, "label": "x"}]),
    (("boxes", "annotations"), None),
    (("boxes", "annotations"), [1, None]),
    (("boxes",), 3),
    (("boxes",), None),
    (("boxes-metadata", "objects"), [{"confidence": True}, {"confidence": None}, {}]),
    (("boxes-metadata", "objects"), [{"confidence": 10**30}]),
    (("boxes-metadata", "objects"), [{"confidence": 1}]),
    (("boxes-metadata", "class-map"), {"1": ["a"], "2": 3}),
    (("boxes-metadata", "class-map"), {"01": "person", "x": "y"}),
    (("boxes-metadata", "class-map"), None),
    (("boxes-metadata", "type"), None),
    (("boxes-metadata", "type"), "groundtruth/image-classification"),
    (("boxes-metadata", "type"), "Object-Detection"),
    (("boxes-metadata", "human-annotated"), None),
    (("boxes-metadata", "human-annotated"), 1),
    (("boxes-metadata", "job-name"), {"a": 1}),
    (("boxes-metadata", "failure-reason"), None),
    (("boxes-metadata", "extra"), 1),
    (("boxes-metadata",), "not an object"),
    (("other-metadata",), {"type": "groundtruth/object-detection"}),
    (("id",), 7),
    (("note",), "text"),
]

#: byte-level edits that orjson refuses (or reads differently) and a lax skip would not notice
BREAKS = [
    (b'"s3://bucket', b'"s3://\xffbucket'),  # invalid UTF-8 in a string no count reads
    (b'"2026-11-21', b'"\xed\xa0\x802026'),  # an encoded surrogate
    (b'"2026-11-21', b'"\xc0\xaf2026'),  # an overlong encoding
    (b'"2026-11-21', b'"\\ud800 2026'),  # a lone surrogate escape
    (b'"depth":3', b'"depth":1e999'),  # a number that overflows a double
    (b'"depth":3', b'"depth":-1.8e308'),
    (b'"depth":3', b'"depth":' + b"1" * 400),
    (b'"width":1024', b'"width":1024,"width":1e400'),  # a duplicate key, the last one broken
    # in ``image_size``, which no count reads (a faster path that decodes it raw must still refuse these)
    (b'"depth":3', b'"depth": 1E999'),
    (b'"depth":3', b'"depth":[1,-2.5e+999]'),
    (b'"depth":3', b'"depth":"\xff"'),
    (b'"depth":3', b'"depth":' + b"[" * 1100 + b"]" * 1100),  # past orjson's depth limit
    (b'"depth":3', b'"depth":1e5'),
    (b'"depth":3', b'"depth":' + b"9" * 308),  # within a double's range
    (b'"type":"', b'"type":"groundtruth/image-classification","type":"'),  # duplicate: last wins
    (b'"type":"', b'"type":3,"type":"'),
    (b'{"source-ref"', b'{"a":"x\x01y","source-ref"'),  # a control character
    (b'"job-name"', b'"job-name":1,"job-name"'),
    (b"}", b"} x"),  # trailing bytes
    (b"{", b"{\n"),
]

RAW_LINES = [b"", b" ", b"\t", b"\r", b"\x0c", b"[]", b"1", b'"x"', b"null", b"{}", b"{} {}", b'{"a":', b"\xef\xbb\xbf{}",
             b'{"source-ref":"s3://b/1.jpg"}', b'{"boxes-metadata":{}}', b'{"boxes-metadata":{"type":"object-detection"}}',
             b'{"boxes":{"annotations":[]},"boxes-metadata":{}}']


@st.composite
def manifests(draw) -> list[bytes]:
    rng = random.Random(draw(st.integers(0, 2**32)))
    kinds = draw(st.lists(st.sampled_from(["det", "det", "det", "failed", "cls", "odd", "broken", "raw"]),
                          min_size=1, max_size=60))
    lines = []
    for i, kind in enumerate(kinds):
        if kind == "det":
            lines.append(orjson.dumps(detection(rng, i=i)))
        elif kind == "failed":
            lines.append(orjson.dumps(failed(rng)))
        elif kind == "cls":
            lines.append(orjson.dumps(classification(rng)))
        elif kind == "odd":
            path, value = rng.choice(ODD_VALUES)
            # json, not orjson: orjson writes no integer beyond 64 bits
            lines.append(json.dumps(_set(detection(rng, i=i), path, value), separators=(",", ":")).encode())
        elif kind == "broken":
            old, new = rng.choice(BREAKS)
            lines.append(orjson.dumps(detection(rng, i=i)).replace(old, new, 1))
        else:
            lines.append(rng.choice(RAW_LINES))
    return lines


def _stats(lines: list[bytes], attributes: list[str] | None, *, fast: bool, batch: int = 7) -> ManifestStats:
    batches = iter([(lines[i: i + batch], None) for i in range(0, len(lines), batch)])
    return merge_partials("m", [_count_lines(batches, attributes, fast=fast)], attributes)


def assert_equal(got: ManifestStats, want: ManifestStats) -> None:
    """Equal, the confidence mean to the last bits aside (the fast path gathers the values in another order)."""
    assert got.to_dict() | {"attributes": None} == want.to_dict() | {"attributes": None}
    assert list(got.attributes) == list(want.attributes)
    for name, a in want.attributes.items():
        b = got.attributes[name]
        assert b.confidence_mean == pytest.approx(a.confidence_mean)
        assert {**asdict(b), "confidence_mean": None} == {**asdict(a), "confidence_mean": None}


@pytest.mark.slow  # a hypothesis property (6 s); each break below runs in the fast lane too
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lines=manifests(), named=st.sampled_from([None, ["boxes"], ["boxes", "cls", "missing"]]))
def test_fast_path_counts_what_the_generic_count_counts(lines, named):
    assert_equal(_stats(lines, named, fast=True), _stats(lines, named, fast=False))


@pytest.mark.parametrize(("old", "new"), BREAKS)
def test_each_break_is_counted_as_the_generic_count_does(old, new):
    rng = random.Random(3)
    good = [orjson.dumps(detection(rng, i=i)) for i in range(5)]
    broken = good[2].replace(old, new, 1)
    assert broken != good[2]
    lines = [*good[:2], broken, *good[3:]]
    for named in (None, ["boxes"]):
        want = _stats(lines, named, fast=False)
        assert_equal(_stats(lines, named, fast=True), want)
    assert want.lines == 5


@pytest.mark.parametrize("twist", ["failure-reason", "no type", "no metadata", "no label"])
def test_a_labeled_line_that_is_not_a_clean_detection_is_sorted_out_of_the_batch(twist):
    """``_add_all`` sorts a batch by flags (no failure reason, a label, a type): a labeled line
    whose metadata also holds a failure reason is a failure, one without a type is counted
    without a family. Among clean lines in one batch, each must be counted as the generic count
    does (a flag dropped from the sort would count it as a labeled box)."""
    rng = random.Random(5)
    lines = [detection(rng, i=i) for i in range(6)]
    odd = lines[3]
    if twist == "failure-reason":
        odd["boxes-metadata"]["failure-reason"] = "timeout"
    elif twist == "no type":
        del odd["boxes-metadata"]["type"]
    elif twist == "no metadata":
        del odd["boxes-metadata"]
    else:
        del odd["boxes"]
    raw = [orjson.dumps(x) for x in lines]
    for named in (None, ["boxes"]):
        fast = _stats(raw, named, fast=True, batch=6)
        assert_equal(fast, _stats(raw, named, fast=False, batch=6))
    assert fast.attributes["boxes"].failed == (twist == "failure-reason")


def test_a_line_orjson_refuses_is_unreadable_in_both():
    rng = random.Random(4)
    line = orjson.dumps(detection(rng)).replace(b'"depth":3', b'"depth":1e999')
    got = _stats([line, b"", orjson.dumps(detection(rng))], None, fast=True)
    assert (got.lines, got.blank_lines, got.invalid_lines) == (3, 1, 1)
    assert got.attributes["boxes"].lines == 1


def _bench_lines(tmp_path: Path, n: int) -> list[bytes]:
    from benchmarks.stats_bench import generate

    path = tmp_path / "bench.manifest"
    generate(path, n)
    return path.read_bytes().splitlines()


@pytest.mark.parametrize("named", [None, ["boxes"]])
def test_bench_shaped_lines_take_the_fast_path(tmp_path, named):
    lines = _bench_lines(tmp_path, 3000)
    tally, fast = Tally(named), FastPath(named)
    for i in range(0, len(lines), 1000):
        fast.count(lines[i: i + 1000], tally)
    # only lines with a job or class name not seen before go generic, until it is learned
    assert fast.fast_lines + fast.generic_lines == 3000 and fast.generic_lines <= 30
    tally.part.lines = len(lines)  # ``_count_lines`` counts the lines; here only the facts are compared
    tally.flush()
    got = merge_partials("m", [tally.part], named)
    assert got.attributes["boxes"].failed == 60
    assert_equal(got, _stats(lines, named, fast=False, batch=1000))


def test_a_block_is_cut_into_slices_of_one_size_and_counted_as_the_generic_count_does(tmp_path):
    """A block is decoded in as few slices as ``SLICE_LINES`` allows, all of one size: a slice
    costs its fixed steps whatever its lines, and 540 lines cut at 512 paid them twice, once for
    28. A block of 2,500 lines (three slices of 834, 834 and 832) counts what the generic count does."""
    size = stats_fast.SLICE_LINES
    assert [stats_fast._slice_size(n) for n in (0, 1, 540, size, size + 1, 2500)] == [
        1, 1, 540, size, (size + 2) // 2, 834]
    lines = _bench_lines(tmp_path, 2500)
    tally, fast = Tally(None), FastPath(None)
    fast.count(lines, tally)
    assert fast.fast_lines + fast.generic_lines == 2500 and fast.generic_lines <= 30
    tally.part.lines = len(lines)
    tally.flush()
    assert_equal(merge_partials("m", [tally.part], None), _stats(lines, None, fast=False, batch=2500))


@pytest.mark.parametrize("end", [b"\n", b"\r\n"])
def test_lines_as_stats_reads_them_take_the_fast_path(tmp_path, end):
    """``count_range`` hands the fast path each line with its ``\n`` (``ranges`` with
    ``newlines=True``; a CRLF file's with ``\r\n``), while the tests above feed bare lines: a
    fast path that refused the terminator would send every line of a real file to the generic
    count, the figures still right, with no test failing."""
    lines = _bench_lines(tmp_path, 3000)
    tally, fast = Tally(None), FastPath(None)
    for i in range(0, len(lines), 1000):
        fast.count([line + end for line in lines[i: i + 1000]], tally)
    assert fast.fast_lines + fast.generic_lines == 3000 and fast.generic_lines <= 30
    tally.part.lines = len(lines)
    tally.flush()
    assert_equal(merge_partials("m", [tally.part], None), _stats(lines, None, fast=False, batch=1000))


def test_unknown_keys_are_learned_and_other_shapes_stay_generic():
    rng = random.Random(5)
    det = [orjson.dumps({**detection(rng, i=i), "id": f"n{i}"}) for i in range(40)]
    cls = [orjson.dumps(classification(rng)) for _ in range(40)]
    tally, fast = Tally(None), FastPath(None)
    fast.count(det, tally)  # the first line teaches ``id``: every line is decoded fast
    assert (fast.fast_lines, fast.generic_lines) == (40, 0)
    fast.count(cls, tally)  # another task type: counted generically, then a rest from the fast path
    assert fast.generic_lines == 40 and fast.resting > 0
    tally.part.lines = 80
    tally.flush()
    assert_equal(merge_partials("m", [tally.part], None), _stats(det + cls, None, fast=False, batch=40))


def test_many_distinct_job_names_and_class_maps_fall_back_to_plain_strings_and_reads(monkeypatch):
    monkeypatch.setattr(stats_fast, "MAX_LITERALS", 8)
    monkeypatch.setattr(stats_structs, "CLASS_MAP_CACHE", 3)  # the maps past it read each time
    rng = random.Random(6)
    lines = []
    for i in range(600):
        record = detection(rng, i=i)
        record["boxes-metadata"]["job-name"] = f"labeling-job/{i}"
        record["boxes-metadata"]["class-map"] = {str(a["class_id"]): f"class {i}" for a in record["boxes"]["annotations"]}
        lines.append(orjson.dumps(record))
    tally, fast = Tally(None), FastPath(None)
    for i in range(0, len(lines), 200):
        fast.count(lines[i: i + 200], tally)
    assert fast.literals["job-name"] is None  # past MAX_LITERALS: decoded as plain strings
    assert fast.fast_lines > 500
    tally.part.lines = len(lines)
    tally.flush()
    assert_equal(merge_partials("m", [tally.part], None), _stats(lines, None, fast=False, batch=200))


@pytest.mark.parametrize("twist", ["none", "unnamed box", "two names", "both"])
def test_boxes_are_named_by_their_own_line_s_class_map(twist):
    """The fast path counts ids alone when every box's id is in its own line's class map and no
    key has two names (``stats_boxes.BoxCount._classes``); a box its map does not name, or a key named twice,
    takes the box-by-box count. Each way must give the generic count's ``(id, name)`` pairs."""
    rng = random.Random(8)
    lines = []
    for i in range(300):
        record = detection(rng, i=i)
        class_map = record["boxes-metadata"]["class-map"]
        if twist in ("unnamed box", "both") and i % 37 == 5 and class_map:
            class_map.pop(next(iter(class_map)))  # a box whose id its line's map does not hold
        if twist in ("two names", "both") and i % 41 == 9:
            class_map.update({k: "another name" for k in class_map})
        lines.append(orjson.dumps(record))
    tally, fast = Tally(None), FastPath(None)
    for i in range(0, len(lines), 100):
        fast.count(lines[i: i + 100], tally)
    assert fast.generic_lines <= 10  # the lines teaching a new name; the rest are decoded fast
    tally.part.lines = len(lines)
    tally.flush()
    got = merge_partials("m", [tally.part], None)
    assert_equal(got, _stats(lines, None, fast=False, batch=100))
    pairs = tally.part.attributes["boxes"].class_n  # (id, name its line gives it) -> boxes
    assert any(name is None for _, name in pairs) == (twist in ("unnamed box", "both"))
    assert any(name == "another name" for _, name in pairs) == (twist in ("two names", "both"))


@pytest.mark.parametrize("unlabeled", [1, 25, 26, 60])
def test_lines_without_a_label_are_set_apart_by_position(unlabeled):
    """``FastPath._add_labeled`` takes the lines without a label (failed ones, typed ones the job
    did not label, a failed one whose metadata still holds a class map and objects) out of a
    slice by their positions, up to a quarter of it (more: ``_add_all``); a failed or untyped
    line that has a label, or a line without this metadata, sends the slice to ``_add_all``.
    Each mixture must count as the generic count does."""
    rng = random.Random(unlabeled)
    for twist in ("none", "failed with a label", "untyped with a label", "no metadata"):
        lines = [detection(rng, i=i) for i in range(100)]
        for i in rng.sample(range(100), unlabeled):
            record = lines[i]
            kind = i % 4
            if kind == 0:
                record = lines[i] = failed(rng)
            elif kind == 1:
                record["boxes-metadata"]["failure-reason"] = "timeout"  # class map and objects kept
                del record["boxes"]
            else:
                del record["boxes"]
                if kind == 3:
                    del record["boxes-metadata"]["type"]
        if twist == "failed with a label":
            lines[50]["boxes-metadata"]["failure-reason"] = "no such key"
        elif twist == "untyped with a label":
            lines[50]["boxes-metadata"].pop("type")
        elif twist == "no metadata":
            lines[50] = {"source-ref": "s3://b/x.jpg"}
        raw = [orjson.dumps(x) for x in lines]
        tally, fast = Tally(None), FastPath(None)
        fast.count(raw, tally)
        assert fast.generic_lines <= 10
        tally.part.lines = len(raw)
        tally.flush()
        assert_equal(merge_partials("m", [tally.part], None), _stats(raw, None, fast=False, batch=100))



def test_a_null_label_beside_its_metadata_is_no_label():
    """``"boxes": null`` is no value: the chain's selection labels the line again (``needs_label``,
    Ground Truth's "no data connected to that label attribute name"), so stats counts its
    metadata and no label, on both paths; the generic count took the key's presence for a label
    (a detection of no boxes, its job and human-annotated counted), and the fast path with it."""
    rng = random.Random(5)
    lines = [detection(rng, i=i) for i in range(100)]
    for i in range(0, 100, 10):
        lines[i]["boxes"] = None
    raw = [orjson.dumps(x) for x in lines]
    for fast in (True, False):
        boxes = _stats(raw, None, fast=fast, batch=100).attributes["boxes"]
        assert (boxes.lines, boxes.labeled, boxes.failed) == (100, 90, 0), fast
        assert sum(boxes.human_annotated.values()) == sum(boxes.boxes_per_image.values()) == 90, fast

def test_ids_and_box_counts_outside_a_byte_are_counted_as_the_generic_count_does():
    """Class ids and boxes per line are counted through ``bytes`` and numpy's ``bincount`` when all
    lie in 0-255 (``stats_facts.small_counts``), by a ``Counter`` otherwise: ids 255, 256, -1 and
    the 64-bit ends, lines with 255 and 300 boxes, each among ordinary lines."""
    rng = random.Random(9)
    odd_ids = [255, 256, -1, 2**63 - 1, -(2**63), 0]
    lines = []
    for i in range(120):
        record = detection(rng, i=i)
        anns, meta = record["boxes"]["annotations"], record["boxes-metadata"]
        if i % 10 == 3:
            class_id = odd_ids[i // 10 % len(odd_ids)]
            anns.append({"class_id": class_id, "top": 1.5, "left": 2.5, "height": 3, "width": 4})
            meta["class-map"][str(class_id)] = "odd"
        if i in (40, 90):
            anns += [{"class_id": j % 3, "top": 1.0, "left": 1.0, "height": 1, "width": 1} for j in range(255 + 45 * (i == 90))]
            meta["class-map"].update({str(j): CLASSES[j] for j in range(3)})
        lines.append(orjson.dumps(record))
    tally, fast = Tally(None), FastPath(None)
    for i in range(0, len(lines), 60):
        fast.count(lines[i: i + 60], tally)
    assert fast.generic_lines <= 10
    tally.part.lines = len(lines)
    tally.flush()
    got = merge_partials("m", [tally.part], None)
    assert_equal(got, _stats(lines, None, fast=False, batch=60))
    assert {255, 300} <= set(got.attributes["boxes"].boxes_per_image)


@pytest.mark.parametrize("column", [[], ["no"] * 5, ["yes", "no", "no"], ["no", "no", "yes"], [None, "a", None],
                                    [f"job-{i % 11}" for i in range(40)], [stats_fast.UNSET, "object-detection"]])
def test_a_column_of_literals_is_counted_as_a_counter_counts_it(column):
    """``_counts``: one ``list.count`` where the first value holds throughout, else a ``set`` and a
    count a value, else (more than ``FEW_VALUES``) a ``Counter``; each as ``Counter`` counts."""
    assert dict(stats_fast._counts(column)) == Counter(column)
    counter = Counter({"no": 2})
    stats_fast._tally(counter, column)
    assert counter == Counter({"no": 2}) + Counter(column)


def test_small_counts_are_a_counter_s_counts():
    values = [0, 255, 3, 3, 0, 7] * 5
    assert dict(stats_facts.small_counts(values)) == Counter(values)
    for odd in (256, -1, 2**63 - 1):
        assert dict(stats_facts.small_counts([*values, odd])) == Counter([*values, odd])
    assert stats_facts.small_counts([]) == []
