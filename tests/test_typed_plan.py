"""``validate``'s typed path (``_manifest/typed_plan.py``): every run it accepts is one the full
per-line path finds no problem in (no error, no warning), and it is taken on the lines it is for.

The property test mutates real lines (the bench's bounding boxes, ``../shared/gt-manifests``) in
the ways a typed decoder could miss: wrong types, out-of-range and huge numbers, 1e999, floats
written as ints, escapes, non-ASCII, extra/missing/repeated/reordered keys, failure-reason, bad
dates, lines split across the run's joins; it asserts accept => the per-line path reports nothing.
"""

from __future__ import annotations

import copy
import importlib.util
import io
import json
import random
import re
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.gt import GT_MANIFESTS, HAVE_GT
from totask_manifest._manifest import line_check, semantics, typed_plan
from totask_manifest._manifest.blocks import iter_blocks
from totask_manifest._manifest.line_check import LineChecker
from totask_manifest._manifest.patterns import Unsupported, batched
from totask_manifest._manifest.problems import Collector
from totask_manifest._manifest.typed_plan import TypedPlan
from totask_manifest._manifest.validate import validate_manifest

_BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "validate_bench.py"


def _bench_module() -> Any:
    spec = importlib.util.spec_from_file_location("validate_bench", _BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def bench_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("bench") / "bbox-2000.manifest"
    _bench_module().generate(path, 2000)
    return path


def _checker() -> tuple[LineChecker, Collector]:
    out = Collector(False, 1000)
    return LineChecker(None, None, None, out), out


def _full_path_problems(body: bytes) -> tuple[int, int, list]:
    """What the per-line path (no run, no typed path) finds in one line."""
    checker, out = _checker()
    checker._lines([body], 0, None)
    return out.errors, out.warnings, out.problems


def _plan_for(line: bytes) -> TypedPlan | None:
    """The typed plan of ``line``'s shape, as validate builds it from a run of that line."""
    checker, _ = _checker()
    ok, _records = checker._try_run([line] * 4)
    return checker._last.typed if ok and checker._last is not None else None


def _seed_lines() -> list[bytes]:
    rng = random.Random(3)
    lines: list[bytes] = []
    if HAVE_GT:
        for path in sorted(GT_MANIFESTS.glob("object-detection*")) + sorted(GT_MANIFESTS.glob("image-classification-input*")):
            body = [b for b in path.read_bytes().split(b"\n") if b.strip()]
            lines += rng.sample(body, min(4, len(body)))
    return lines


# ---- the typed path is taken where it should be -----------------------------------------------


def test_typed_path_takes_the_bench_lines(bench_file: Path) -> None:
    checker, out = _checker()
    with open(bench_file, "rb") as f:
        checker.run(iter_blocks(f))
    assert out.lines == 2000 and out.errors == 0 and out.warnings == 0
    # every run but the first (which builds the shape's plans) goes the typed way, and but those
    # naming a class first (``class-map-conflict``: the per-line path notes its name; a run of them here)
    assert checker.typed_lines >= 2000 - 2 * line_check.RUN_LINES
    stats = out.attributes["category"]
    assert stats.labeled == 2000


def test_typed_path_reports_like_the_per_line_path(bench_file: Path, tmp_path: Path) -> None:
    """A file with broken lines among typed runs: same counts, same problems, same line numbers."""
    lines = bench_file.read_bytes().split(b"\n")[:300]
    lines[40] = lines[40].replace(b'"class_id":', b'"class_id":7,"class_id":', 1)
    lines[77] = lines[77].replace(b'"human-annotated":"yes"', b'"human-annotated":"maybe"')
    lines[250] = lines[250].replace(b'"job-name":"labeling-job/', b'"job-name":"')
    lines[120] = b""
    lines[130] = lines[130] + b"\r"  # a CRLF line: valid, only written otherwise
    path = tmp_path / "m.manifest"
    path.write_bytes(b"\n".join(lines) + b"\n")
    report = validate_manifest(str(path), workers=1)
    assert [(p.line, p.rule) for p in report.problems] == [
        (41, "duplicate-key"), (78, "schema-enum"), (121, "line-blank"), (251, "departure-job-name-prefix")]
    assert report.attributes["category"].labeled == 299 and report.lines == 300


def _failed_every(lines: list[bytes], every: int, offset: int) -> list[bytes]:
    """``lines`` with every ``every``-th one (from ``offset``) a failed line of a chained job:
    no label, its metadata only a failure-reason (another shape, which the typed path refuses)."""
    out = list(lines)
    for i in range(offset, len(out), every):
        record = orjson.loads(out[i])
        del record["category"]
        record["category-metadata"] = {"failure-reason": "ClientError: fetch failed (404)"}
        out[i] = orjson.dumps(record)
    return out


@pytest.mark.parametrize("offset", [0, 7, 15, 16, 31])
def test_one_failed_line_among_typed_ones_costs_its_neighbours_little(bench_file: Path, offset: int,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """A chained job's output: 2% failed lines among labeled ones. The typed path takes all but
    a couple of lines around each failed one (a run holding one went line by line whole), and
    the counts and problems are the per-line path's."""
    lines = _failed_every(bench_file.read_bytes().split(b"\n")[:2000], 50, offset)
    for i in (333, 334):  # two neighbours broken: a pair of the halves fails whole
        lines[i] = lines[i].replace(b'"human-annotated":"', b'"human-annotated":"maybe-')
    # a blank line before failed ones in its piece (the decoder's line index skips blank lines)
    # and a CRLF line: each line still checked once, where the per-line path checks it
    lines[520:521] = [b"", lines[520]]
    lines[700] += b"\r"

    def check() -> tuple[LineChecker, Collector]:
        checker, out = _checker()
        checker.run(iter_blocks(io.BytesIO(b"\n".join(lines) + b"\n")))
        return checker, out

    checker, out = check()
    failed = len(range(offset, 2000, 50))
    assert checker.typed_lines >= 2000 - 3 * failed - 4 - 2 * line_check.RUN_LINES
    monkeypatch.setattr(line_check, "_typed_plan", lambda *args: None)
    line_by_line, expected = check()
    assert line_by_line.typed_lines == 0
    assert (out.lines, out.errors, out.warnings, [(p.line, p.rule) for p in out.problems]) == (
        expected.lines, expected.errors, expected.warnings, [(p.line, p.rule) for p in expected.problems])
    assert [(p.line, p.rule) for p in out.problems][:3] == [(334, "schema-enum"), (335, "schema-enum"),
                                                            (521, "line-blank")]
    assert out.attributes["category"] == expected.attributes["category"]
    assert out.attributes["category"].labeled == 2000 - failed and out.attributes["category"].invalid == 2


def test_a_second_shape_takes_the_typed_path_too(bench_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A file whose lines change shape (labels under another attribute from its middle on): the
    second shape's lines are refused by the first shape's typed path one after another; they
    learn their own rather than each going line by line to the range's end (1000 of these 2000
    lines did), and the counts and problems are the per-line path's."""
    lines = bench_file.read_bytes().split(b"\n")[:2000]
    lines[1000:] = [line.replace(b'"category', b'"other') for line in lines[1000:]]
    lines[1500] = lines[1500].replace(b'"human-annotated":"', b'"human-annotated":"maybe-')

    def check() -> tuple[LineChecker, Collector]:
        checker, out = _checker()
        checker.run(iter_blocks(io.BytesIO(b"\n".join(lines) + b"\n"), chunk=64 << 10))
        return checker, out

    checker, out = check()
    assert checker.typed_lines >= 2000 - 3 - 4 * line_check.RUN_LINES
    monkeypatch.setattr(line_check, "_typed_plan", lambda *args: None)
    _, expected = check()
    assert (out.lines, out.errors, [(p.line, p.rule) for p in out.problems]) == (
        expected.lines, expected.errors, [(p.line, p.rule) for p in expected.problems]) == (2000, 1, [
            (1501, "schema-enum")])
    assert out.attributes == expected.attributes


@pytest.mark.parametrize("named", [9999, 3, 0])
def test_a_line_index_in_the_lines_own_text_splits_nothing_wrong(bench_file: Path, named: int) -> None:
    """The decoder's error quotes the refused value before its path: a value that reads like a
    path (``at `$[9999]```) must not be taken for the line it names. ``validate`` raised
    ``ValueError: subsection not found`` (a traceback) on such a line."""
    lines = bench_file.read_bytes().split(b"\n")[:200]
    lines[100] = lines[100].replace(b'"human-annotated":"', b'"human-annotated":"at `$[%d]` ' % named)
    text = b"\n".join(lines) + b"\n"
    checker, out = _checker()
    checker.run(iter_blocks(io.BytesIO(text)))
    by_line, expected = _checker()
    by_line._lines(text.split(b"\n")[:-1], 0, None)
    assert [(p.line, p.rule) for p in out.problems] == [(p.line, p.rule) for p in expected.problems] == [
        (101, "schema-enum")]
    assert out.lines == 200 and out.attributes["category"] == expected.attributes["category"]


@pytest.mark.skipif(not HAVE_GT, reason="../shared/gt-manifests not found")
def test_typed_path_takes_real_object_detection_output() -> None:
    for path in GT_MANIFESTS.glob("object-detection*"):
        checker, out = _checker()
        with open(path, "rb") as f:
            checker.run(iter_blocks(f))
        assert out.errors == 0
        assert checker.typed_lines >= out.lines - 2 * line_check.RUN_LINES, path.name


# ---- known traps, one by one -------------------------------------------------------------------


LINE = (b'{"source-ref":"s3://a/b.jpg","category":{"image_size":[{"width":10,"height":20,"depth":3}],'
        b'"annotations":[{"class_id":0,"top":1.5,"left":2.0,"height":3.0,"width":4.5}]},'
        b'"category-metadata":{"objects":[{"confidence":0.5}],"class-map":{"0":"Bird"},'
        b'"type":"groundtruth/object-detection","human-annotated":"yes",'
        b'"creation-date":"2022-09-12T01:05:00.148118","job-name":"labeling-job/x"}}')


@pytest.mark.parametrize("old, new", [
    (b'"class_id":0', b'"class_id":0,"class_id":1'),  # a repeated key
    (b'"class-map":{"0":"Bird"}', b'"class-map":{"0":"Bird","0":"Cat"}'),  # repeated in a map
    (b'"top":1.5', b'"top":1e999'),
    (b'"top":1.5', b'"top":18446744073709551616'),  # orjson reads it as a float
    (b'"class_id":0', b'"class_id":18446744073709551616'),
    (b'"class-map":{"0"', b'"class-map":{"00"'),
    (b'"class-map":{"0"', b'"class-map":{"-0"'),
    (b'"class-map":{"0"', b'"class-map":{"\\u0030"'),
    (b'"job-name":"labeling-job/x"', b'"job-name":"labeling-job\\/x"'),
    (b'"confidence":0.5', b'"confidence":1.5'),
    (b'"creation-date":"2022-09-12T01:05:00.148118"', b'"creation-date":"2022-02-30T01:05:00"'),
    (b'"creation-date":"2022-09-12T01:05:00.148118"', b'"creation-date":"2022-09-12T01:05:00\\n2022-09-12T01:05:00"'),
    (b'"job-name":"labeling-job/x"', b'"job-name":"x\\nlabeling-job/x"'),
    (b'"human-annotated":"yes"', b'"human-annotated":"yes","failure-reason":"x"'),
    (b'"width":10', b'"width":10.0'),
    (b'"objects":[{"confidence":0.5}]', b'"objects":[]'),
    (b'"class_id":0', b'"class_id":1'),
    (b'{"source-ref"', b'{"$source-ref":"x","source-ref"'),
    (b'"type":"groundtruth/object-detection"', b'"type":"groundtruth/Object-detection"'),
    # repeated keys: optional fields (in a list item, in metadata), in a map, at the top level
    (b'"depth":3', b'"depth":3,"depth":3'),
    (b'"job-name":"labeling-job/x"', b'"job-name":"labeling-job/x","confidence":0.5,"confidence":0.5'),
    (b'"class-map":{"0":"Bird"}', b'"class-map":{"0":"Bird","0":"Bird"}'),
    (b'{"source-ref":"s3://a/b.jpg"', b'{"source-ref":"s3://a/b.jpg","source-ref":"s3://a/b.jpg"'),
    (b'"class-map":{"0"', b'"class-map":{"-00"'),
    # traps for a proof that counts keys in the text instead of writing it back: a key's colon
    # spaced off its quote, or a colon, quote or brace inside a string, must not balance a
    # repeated key; a record must not touch another or span a line
    (b'"class_id":0', b'"class_id" :0,"class_id":0'),
    (b'"class_id":0', b'"class_id"\t:0,"class_id":0'),
    (b'"class_id":0', b'"class_id"\r:0,"class_id":0'),
    (b'"class-map":{"0":"Bird"}', b'"class-map":{"0" :"Bird","0":"Cat"}'),
    (b'"source-ref":"s3://a/b.jpg"', b'"source-ref":"s3://a/b.jpg\":","source-ref":"x"'),
    (b'"source-ref":"s3://a/b.jpg"', b'"source-ref":"s3://a/b.jpg\\","source-ref":"x"'),
    (b'"source-ref":"s3://a/b.jpg"', b'"source-ref":"}{","source-ref":"s3://a/b.jpg"'),
    (b'"source-ref":"s3://a/b.jpg"', rb'"source-ref":":\u00e9\u2028","source-ref":"s3://a/b.jpg"'),
    (b'"source-ref":"s3://a/b.jpg"', '"source-ref":"é:\u2028","source-ref":"s3://a/b.jpg"'.encode()),
    (b'"class-map":{"0":"Bird"}', b'"class-map":{"0":"Bird":"Cat"}'),  # no JSON at all
    (b'"class-map":{"0":"Bird"}', b'"class-map":{"0":"Bird","-0":"Bird"}'),
    (b'"class-map":{"0":"Bird"}', b'"class-map":{}'),
    (b'"objects":[{"confidence":0.5}]', b'"objects":[{"confidence":0.5,"confidence":0.5,"confidence":0.5}]'),
    (b'"objects":[{"confidence":0.5}]', b'"objects":[{"confidence":0.5,"confidence":0.5}]'),
    (b'"image_size":[{"width":10,"height":20,"depth":3}]', b'"image_size":[{"width":10,"height":20},{"width":10,"width":10,"height":20}]'),
    (b'{"source-ref"', b'{}\n{"source-ref"'),
    (b'{"source-ref"', b'{}{"source-ref"'),
    (b'{"source-ref"', b' {"source-ref"'),
    # a class map is kept as its text and read once per distinct text (``_RawMaps``): whatever its
    # reading would let through that the dict written back did not
    (b'"class-map":{"0":"Bird"}', b'"class-map":{"0":"Bird" }'),
    (b'"class-map":{"0":"Bird"}', b'"class-map":{ "0":"Bird"}'),
    (b'"class-map":{"0":"Bird"}', b'"class-map":{"0":" "}'),  # a name of spaces: the pattern \S
    (b'"class-map":{"0":"Bird"}', b'"class-map":{"0":""}'),
    (b'"class-map":{"0":"Bird"}', b'"class-map":{"0":"B\xffird"}'),  # invalid UTF-8 in a name
    (b'"class-map":{"0":"Bird"}', b'"class-map":{"0":"B\\u0069rd"}'),  # an escape
    (b'"class-map":{"0":"Bird"}', b'"class-map":{"0":"B\tird"}'),  # a control character
    (b'"class-map":{"0":"Bird"}', b'"class-map":{"0":7}'),
    (b'"class-map":{"0":"Bird"}', b'"class-map":{"0":"Bird","1":"a\nb"}'),
    (b'"class-map":{"0":"Bird"}', b'"class-map":["Bird"]'),
    (b'"class-map":{"0":"Bird"}', b'"class-map":{"0":"Bird"},"class-map":{"0":"Bird"}'),
])
def test_traps_are_not_accepted(old: bytes, new: bytes) -> None:
    plan = _plan_for(LINE)
    assert plan is not None and plan.accepts(LINE) == 1
    bad = LINE.replace(old, new, 1)
    assert bad != LINE
    assert plan.accepts(LINE + b"\n" + bad) != 2
    assert plan.accepts(bad + b"\n" + bad) == 0  # twice: a text refused is not kept as read
    assert plan.accepts(LINE + b"\n" + LINE) == 2


def _two_attributes(line: bytes) -> bytes:
    """``line`` with its label and metadata copied under a second attribute, ``other``."""
    record = orjson.loads(line)
    record["other"], record["other-metadata"] = copy.deepcopy(record["category"]), copy.deepcopy(record["category-metadata"])
    return orjson.dumps(record)


@pytest.mark.parametrize("line, old, new", [
    (LINE, b'"class-map":{"0":"Bird"}', b'"class-map":{"1":"Bird"}'),  # a class the class-map does not name
    (LINE, b'"objects":[{"confidence":0.5}]', b'"objects":[{"confidence":0.5},{"confidence":0.5}]'),  # counts differ
    (LINE, b'"annotations":[{', b'"annotations":[{"class_id":0,"top":1,"left":2,"height":3,"width":4},{'),
    (_two_attributes(LINE), b'"other-metadata":{"objects":[{"confidence":0.5}],"class-map":{"0"',
     b'"other-metadata":{"objects":[{"confidence":0.5}],"class-map":{"7"'),  # the second attribute's rule
    (_two_attributes(LINE), b'"category-metadata":{"objects":[{"confidence":0.5}]',
     b'"category-metadata":{"objects":[]'),  # the first's, the second's holding
])
def test_rules_written_into_the_loop_decide_as_the_per_line_path(line: bytes, old: bytes, new: bytes) -> None:
    """The task types' typed rules are written into the loop over a run's structs
    (``semantics.TYPED_BODIES``), not called: a rule broken on one line of a run, under either of
    two attributes whose rules share names, still refuses the run, as the per-line path does."""
    plan = _plan_for(line)
    assert plan is not None and plan.accepts(b"\n".join([line] * 3)) == 3
    assert "rule0" not in getattr(plan._rows, "func", plan._rows).__code__.co_names  # written in (bound: the names)
    bad = line.replace(old, new, 1)
    assert bad != line and _full_path_problems(line)[:2] == (0, 0)
    assert _full_path_problems(bad)[0] >= 1
    assert plan.accepts(b"\n".join([line, bad, line])) == 0
    assert plan.accepts(bad) == 0


def test_a_rule_whose_body_would_overwrite_the_loop_is_called() -> None:
    """A body assigning a name of the generated loop (``line``) would end the loop's own reads;
    such a rule is called instead, and decides the same."""
    rule = semantics._typed_rule("line = label.annotations\nfor box in line:\n"
                                 "    if box.class_id != 0:\n        return False\n")
    check = typed_plan._row_check([("category", "category_metadata", rule)], [])
    assert "rule0" in check.__code__.co_names
    plan = _plan_for(LINE)
    records = plan._decode_lines(LINE + b"\n" + LINE.replace(b'"class_id":0', b'"class_id":1'))
    assert check(records[:1]) is True and check(records) is False


@pytest.mark.parametrize("coco_id", [b"397133", b'"ann-7"', b"7.5"])
def test_a_coco_id_of_either_kind_takes_the_typed_path(coco_id: bytes) -> None:
    """The objects' ``coco-id`` (``"type": ["number", "string"]``, kept by a COCO import) was a
    keyword the plan could not compile; since every task type's schema shares ``_defs.json``, no
    shape had a plan and every line of every manifest left the typed path."""
    line = LINE.replace(b'"objects":[{"confidence":0.5}]', b'"objects":[{"confidence":0.5,"coco-id":' + coco_id + b'}]')
    plan = _plan_for(line)
    assert plan is not None and plan.accepts(line) == 1
    assert _plan_for(LINE) is not None
    for bad in (b"true", b"null", b"[1]", b'{"a":1}'):  # what the schema refuses the plan refuses too
        wrong = line.replace(b'"coco-id":' + coco_id, b'"coco-id":' + bad)
        assert plan.accepts(wrong) == 0 and _full_path_problems(wrong)[0] == 1, bad


def test_a_run_ending_in_a_blank_line_is_not_accepted() -> None:
    checker, out = _checker()
    checker.run(iter([b"\n".join([LINE] * 40) + b"\n", LINE + b"\n\n", LINE + b"\n"]))
    assert (out.lines, out.blank, out.warnings) == (43, 1, 1)
    assert checker.typed_lines >= 40 - line_check.RUN_LINES  # the first run builds the plans


def test_lines_that_are_not_one_object_each_are_not_accepted() -> None:
    """The write-back is one record a line: two objects on a line, or an object over two lines
    (each line alone is no JSON object), cannot equal it; a last line without its newline can."""
    plan = _plan_for(LINE)
    assert plan is not None
    assert plan.accepts(LINE + b"\n" + LINE) == 2 and plan.accepts(LINE + b"\n" + LINE + b"\n") == 2
    assert plan.accepts(LINE + b" " + LINE + b"\n" + LINE + b"\n") == 0
    assert plan.accepts(LINE + LINE + b"\n") == 0
    assert plan.accepts(LINE.replace(b',"category-metadata"', b',\n"category-metadata"') + b"\n") == 0
    assert plan.accepts(LINE + b"\n " + LINE + b"\n") == 0  # spacing the per-line path allows: not the write-back
    # as many newlines as records, but one record over two lines and two on one: ``decode_lines``
    # reads whitespace anywhere as a separator, only the write-back refuses these
    cut = LINE.index(b',"category-metadata"') + 1
    assert plan.accepts(LINE[:cut] + b"\n" + LINE[cut:] + LINE + b"\n") == 0
    assert plan.accepts(LINE + b"\n\n" + LINE) == 0 and plan.accepts(b"\n" + LINE + b"\n" + LINE) == 0


def test_ranges_of_one_process_share_a_plan_only_for_the_same_key_order(tmp_path: Path) -> None:
    """Plans are compiled once a process (``line_check._typed_plan``) for each sample skeleton: a
    range whose lines write their keys in another order gets its own plan and stays typed."""
    other = LINE.replace(b'{"width":10,"height":20,"depth":3}', b'{"depth":3,"width":10,"height":20}')
    path = tmp_path / "m.manifest"
    path.write_bytes((LINE + b"\n") * 200 + (other + b"\n") * 200)
    cut = (len(LINE) + 1) * 200
    for start, end in ((0, cut), (cut, None), (0, cut)):
        checker, out = _checker()
        with open(path, "rb") as f:
            checker.run(iter_blocks(f, start=start, end=end))
        assert (out.lines, out.errors, out.warnings) == (200, 0, 0)
        assert checker.typed_lines >= 200 - line_check.RUN_LINES


def test_a_line_split_across_the_join_is_not_accepted() -> None:
    """Two lines that are one JSON text only when joined by a comma (as the write-back once was)."""
    plan = _plan_for(LINE)
    cut = LINE.index(b"labeling-job/") + 5
    first = LINE[:cut]
    second = LINE[cut:] + b"," + LINE
    assert plan is not None and plan.accepts(first + b"\n" + second) != 2


@pytest.mark.parametrize("pattern", ["^a|b$", "(?i)a", "[[:alpha:]]", "\\d", "a(?=b)", "[a-z&&b]", "x{,3}"])
def test_patterns_outside_the_shared_subset_are_unsupported(pattern: str) -> None:
    with pytest.raises(Unsupported):
        batched(pattern)


@pytest.mark.parametrize("pattern, value, expected", [
    ("^labeling-job/", "labeling-job/x", True), ("^labeling-job/", "x/labeling-job/", False),
    ("^[^A-Z]*$", "ab", True), ("^[^A-Z]*$", "aB", False), ("^(0|[1-9][0-9]*)$", "01", False),
    ("b", "abc", True), ("b$", "bc", False), ("^a.c$", "abc", True), ("^a.c$", "a\rc", False),
    ("^a.c$", "a\u2028c", False),
])
def test_batched_patterns_match_as_search(pattern: str, value: str, expected: bool) -> None:
    assert (batched(pattern)(value) is not None) is expected
    assert (batched(pattern)("\n".join([value, value])) is not None) is expected


# ---- the property: accepted => the per-line path finds nothing ----------------------------------

_VALUES = st.one_of(  # copied: a drawn dict is mutated in place by later steps
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=6), st.lists(st.integers(-1, 3), max_size=2),
    st.dictionaries(st.sampled_from(["0", "1", "01", "-1", "a"]), st.sampled_from(["Bird", 1]), max_size=2),
    st.sampled_from(["labeling-job/x", "x", "2022-09-12T01:05:00", "2022-02-29T09:51:00", "2022-09-12T24:00:00",
                     "2022-09-12T01:05:00+0000", "groundtruth/object-detection", "yes", "no", "0", "Bird", "é",
                     "", "\u2028", {"confidence": 2}, {"width": 0, "height": 1}]),
).map(copy.deepcopy)
_KEYS = st.sampled_from(["failure-reason", "confidence", "depth", "$x", "extra", "class_id", "adjustment-status",
                         "review-status", "source", "job-name"])


def _containers(value: Any, out: list) -> list:
    if isinstance(value, dict):
        out.append(value)
        for item in value.values():
            _containers(item, out)
    elif isinstance(value, list):
        out.append(value)
        for item in value:
            _containers(item, out)
    return out


@st.composite
def mutated(draw: st.DrawFn, seed: bytes) -> bytes:
    record = orjson.loads(seed)
    for _ in range(draw(st.integers(1, 3))):
        containers = _containers(record, [])
        node = draw(st.sampled_from(containers))
        op = draw(st.sampled_from(["set", "delete", "add", "reorder"]))
        if isinstance(node, dict):
            keys = list(node)
            if op == "set" and keys:
                node[draw(st.sampled_from(keys))] = draw(_VALUES)
            elif op == "delete" and keys:
                del node[draw(st.sampled_from(keys))]
            elif op == "add":
                node[draw(_KEYS)] = draw(_VALUES)
            elif op == "reorder" and keys:
                order = draw(st.permutations(keys))
                items = [(k, node.pop(k)) for k in order]
                node.update(items)
        elif isinstance(node, list):
            if op == "set" and node:
                node[draw(st.integers(0, len(node) - 1))] = draw(_VALUES)
            elif op == "delete" and node:
                node.pop()
            elif op in ("add", "reorder"):
                node.append(draw(_VALUES) if op == "add" else (node[0] if node else 1))
    try:
        text = orjson.dumps(record)
    except TypeError:  # an integer orjson does not write
        text = json.dumps(record, separators=(",", ":"), ensure_ascii=False).encode()
    # byte-level spellings a typed decoder could miss
    for _ in range(draw(st.integers(0, 2))):
        kind = draw(st.sampled_from(["dup", "escape", "int-float", "1e999", "space", "bigint", "utf8"]))
        keys = re.findall(rb'"([^"\\]+)":', text)
        if kind == "dup" and keys:
            key = draw(st.sampled_from(keys))
            text = text.replace(b'"' + key + b'":', b'"' + key + b'":0,"' + key + b'":', 1)
        elif kind == "escape":
            letters = [m.start() for m in re.finditer(rb"[a-z0-9/]", text)]
            if letters:
                at = draw(st.sampled_from(letters))
                text = text[:at] + b"\\u%04x" % text[at] + text[at + 1 :]
        elif kind == "int-float":
            text = re.sub(rb"(\d)\.0(?=[,}\]])", rb"\1", text, count=1)
        elif kind == "1e999":
            text = re.sub(rb":-?\d+(\.\d+)?(?=[,}\]])", b":1e999", text, count=1)
        elif kind == "bigint":
            text = re.sub(rb":\d+(?=[,}\]])", b":18446744073709551616", text, count=1)
        elif kind == "space":
            text = text.replace(b":", b": ", 1)
        elif kind == "utf8":
            text = text.replace(b"Bird", "Bïrd".encode(), 1)
    return text


_SEEDS: list[bytes] = []


def _seeds() -> list[bytes]:
    if not _SEEDS:
        rng = random.Random(11)
        module = _bench_module()
        import tempfile

        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "b.manifest"
            module.generate(path, 200)
            bench = path.read_bytes().split(b"\n")[:-1]
        _SEEDS.extend(line for line in rng.sample(bench, 8) + _seed_lines() if _plan_for(line) is not None)
    return _SEEDS


@pytest.mark.slow
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_typed_accept_means_the_full_path_finds_nothing(data: st.DataObject) -> None:
    seed = data.draw(st.sampled_from(_seeds()))
    plan = _plan_for(seed)
    assert plan is not None, seed[:120]
    line = data.draw(mutated(seed))
    if plan.accepts(b"\n".join([seed, line, seed])) == 3:
        errors, warnings, problems = _full_path_problems(line)
        assert (errors, warnings) == (0, 0), (line, problems)


def test_the_mutations_do_reach_the_typed_path() -> None:
    """The property above is not vacuous: some mutated lines are accepted, many are refused."""
    seed = _seeds()[0]
    plan = _plan_for(seed)
    accepted = refused = 0

    @settings(max_examples=150, deadline=None, database=None, derandomize=True)
    @given(mutated(seed))
    def count(line: bytes) -> None:
        nonlocal accepted, refused
        if plan.accepts(line):
            accepted += 1
        else:
            refused += 1

    count()
    assert refused > 50
    assert accepted > 0


def test_the_not_white_space_pattern_agrees_with_the_schema_engine_on_every_character() -> None:
    """``"pattern": "\\S"`` (a class name, a reference) gave no typed plan, so a bounding-box
    manifest (its class-map) left validate's and the input scan's typed path whole: ``\\S`` is
    translated to the schema engine's own white space, held to jsonschema-rs character by character."""
    import jsonschema_rs

    from totask_manifest._manifest.patterns import batched

    engine = jsonschema_rs.validator_for({"type": "string", "pattern": "\\S"})
    check = batched("\\S")
    for cp in [*range(0x3100), 0xFEFF, 0xFFFD, 0x1F600]:
        text = chr(cp)
        if text == "\n" or 0xD800 <= cp <= 0xDFFF:  # values joined by \n hold none; no lone surrogate in JSON
            continue
        assert bool(check(text)) == engine.is_valid(text), hex(cp)
        assert bool(check(" " + text + "\t")) == engine.is_valid(" " + text + "\t"), hex(cp)
    assert check("car\nbus") and not check("car\n  ") and not check(" \ncar")


@pytest.mark.parametrize("new", [b'{"0":"Bird","1":" "}', b'{"0":"Bird","1":""}', b'{"0":"Bird","01":"Cat"}'])
def test_a_class_map_read_once_is_held_to_the_schema_on_every_line(new: bytes) -> None:
    """A class map's text is read once and kept (``typed_plan._RawMaps``): a map the schema
    refuses must be refused on each line that holds it, the first and those after, as the
    per-line path refuses it, and the lines around it still take the typed path."""
    bad = LINE.replace(b'{"0":"Bird"}', new, 1)
    per_line = _full_path_problems(bad)[0]
    assert per_line >= 1
    for task_rules in (True, False):  # without: the job's scan, where no class-name table guards the map
        out = Collector(False, 1000)
        checker = LineChecker(None, None, None, out, task_rules=task_rules)
        checker.run(iter([b"\n".join([LINE] * 40 + [bad] * 40 + [LINE] * 40) + b"\n"]))
        assert out.lines == 120 and out.errors == 40 * per_line
        assert {p.line for p in out.problems} == set(range(41, 81))
        assert checker.typed_lines >= 40
