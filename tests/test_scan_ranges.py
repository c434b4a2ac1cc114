"""A job's input scan clears whole runs of lines at once (``scan_ranges._scan_run``); whatever
the lines, it finds what the line-by-line scan finds: the same lines, selection, offsets and
problems."""

from __future__ import annotations

import io
import itertools

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from totask_manifest._jobs import scan_ranges
from totask_manifest._jobs.scan_ranges import InputScan, _RangeScan, _scan_line, add_range, scan_range
from totask_manifest._manifest import long_lines
from totask_manifest._manifest.io import iter_raw_lines
from totask_manifest._manifest.long_lines import TooLong
from totask_manifest._manifest.ranges import iter_line_batches

ATTR = "category"
LABEL = {"image_size": [{"width": 8, "height": 8, "depth": 3}], "annotations": []}
META = {"type": "groundtruth/object-detection", "class-map": {}, "objects": [], "human-annotated": "no",
        "creation-date": "2026-01-01T00:00:00", "job-name": "labeling-job/x"}

GOOD = orjson.dumps({"source-ref": "s3://b/a.jpg", ATTR: LABEL, f"{ATTR}-metadata": META})
UNLABELED = orjson.dumps({"source-ref": "s3://b/u.jpg"})
FAILED = orjson.dumps({"source-ref": "s3://b/f.jpg", f"{ATTR}-metadata": {"failure-reason": "x"}})
#: a value beside review-status: routed (no label: a chain labels the line again)
ROUTED = orjson.dumps({"source-ref": "s3://b/r.jpg", ATTR: LABEL, f"{ATTR}-metadata": {**META, "review-status": "routed"}})
ODD = [
    b"", b"   ", b"[1, 2]", b'{"source-ref": ', b'{"source-ref": "a", "source": "b"}', b'{"x": 1}',
    b'{"source-ref": "a", "$k": 1}', b'{"source-ref": "a", "k": 1, "k": 2}',
    b'{"source-ref": "a", "k": {"j": 1, "j": 2}}', b'{"source-ref": "a", "k\\u003a": 1}',
    b'{"source-ref": "\xff"}', b'{"source-ref": "a", ' + ATTR.encode() + b': null}',
    b'{"source-ref": "a", "big": "' + b"x" * 70_000 + b'"}', b'{ "source-ref" : "a" }',
    b'{"source-ref": "s3://b/c.jpg", "n": 1e999}',
    # a CR inside a line; the key sequence of a good line around a bad source value (the key
    # tests are cached by key sequence, the value tests are not)
    b'{"source-ref": "s3://b/c.jpg",\r"k": 1}', b'{"source-ref": 5}', b'{"source-ref": ""}',
]
LINES = st.one_of(st.sampled_from([GOOD, UNLABELED, FAILED, ROUTED]), st.sampled_from(ODD))


def line_by_line(path: str, attribute: str) -> _RangeScan:
    out = _RangeScan()
    at = 0
    with open(path, "rb") as f:
        for raw in iter_raw_lines(f):
            _scan_line(out, at, raw, attribute)
            at += len(raw)
    return out


def facts(scan: _RangeScan) -> tuple:
    return scan.lines, list(scan.indices), list(scan.offsets), scan.problems, scan.problem_count


@pytest.mark.slow
@settings(max_examples=150, deadline=None)
@given(lines=st.lists(LINES, max_size=60), ends=st.lists(st.sampled_from([b"\n", b"\r\n"]), min_size=60,
                                                          max_size=60),
       bom=st.booleans(), last_terminated=st.booleans(), run_lines=st.integers(1, 20))
def test_runs_find_what_the_line_by_line_scan_finds(tmp_path_factory, lines, ends, bom, last_terminated, run_lines):
    text = b"".join(line + end for line, end in zip(lines, ends, strict=False))
    if lines and not last_terminated:
        text = text.rstrip(b"\r\n")
    path = tmp_path_factory.mktemp("scan") / "in.manifest"
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text)
    assert facts(scan_range(str(path), 0, None, ATTR, run_lines=run_lines)) == facts(line_by_line(str(path), ATTR))


def test_clean_runs_take_the_run_path(tmp_path, monkeypatch):
    """Runs of good lines are cleared without the per-line scan (a silently lost fast path fails here)."""
    path = tmp_path / "in.manifest"
    path.write_bytes(b"".join(line + b"\n" for line in [GOOD, UNLABELED, FAILED] * 40))
    per_line = []
    monkeypatch.setattr(scan_ranges, "_scan_line", lambda out, at, raw, a: per_line.append(at) or _scan_line(
        out, at, raw, a))
    scan = scan_range(str(path), 0, None, ATTR)
    assert scan.lines == 120 and len(scan.indices) == 80 and scan.problem_count == 0
    assert len(per_line) == 16  # only the first run: the file's first line may carry a byte order mark


@pytest.mark.parametrize("odd", [*ODD, b'{"source-ref": "s3://b/c.jpg",\r"k": 1}\r'], ids=range(len(ODD) + 1))
def test_one_odd_line_among_good_ones_is_found_as_line_by_line(tmp_path, odd):
    """Each odd line alone in a run of good ones (the run's other lines would clear it): the
    run's tests must catch it, not the company it keeps."""
    good = [GOOD, UNLABELED, FAILED] * 7
    path = tmp_path / "in.manifest"
    path.write_bytes(b"".join(line + b"\n" for line in [*good[:20], odd, *good[:20]]))
    assert facts(scan_range(str(path), 0, None, ATTR, run_lines=16)) == facts(line_by_line(str(path), ATTR))


# lines labeled under another attribute: a shape the typed path takes, whose lines all need ATTR
OTHER = orjson.dumps({"source-ref": "s3://b/o.jpg", "other": LABEL, "other-metadata": META})
BOXED = orjson.dumps({"source-ref": "s3://b/b.jpg", ATTR: {**LABEL, "annotations": [
    {"class_id": 1, "left": 1, "top": 2, "width": 3, "height": 4}]}, f"{ATTR}-metadata": {
        **META, "class-map": {"1": "cat"}, "objects": [{"confidence": 0.5}]}})
#: lines of GOOD's shape whose labels break the task type's own rules (a class not in the
#: class-map, a box without its object): ``validate`` refuses them, the scan neither selects nor
#: refuses them, and its typed path (which runs no task rules) takes them as the run path does
BROKEN_RULES = [BOXED.replace(b'"class-map":{"1":"cat"}', b'"class-map":{"2":"dog"}'),
                BOXED.replace(b'"objects":[{"confidence":0.5}]', b'"objects":[]')]
#: lines of GOOD's shape (or near it) that the typed path must refuse or read as the scan does
NEAR_GOOD = [
    orjson.dumps({"source-ref": "s3://b/n.jpg", ATTR: None, f"{ATTR}-metadata": META}),
    orjson.dumps({"source-ref": "s3://b/n.jpg", ATTR: LABEL, f"{ATTR}-metadata": {**META, "failure-reason": "x"}}),
    orjson.dumps({"source-ref": "s3://b/n.jpg", ATTR: LABEL, f"{ATTR}-metadata": {**META, "extra": 1}}),
    orjson.dumps({"source-ref": "", ATTR: LABEL, f"{ATTR}-metadata": META}),
    orjson.dumps({"source-ref": "s3://b/n.jpg", ATTR: "text", f"{ATTR}-metadata": META}),
    orjson.dumps({"source-ref": "s3://b/n.jpg", ATTR: LABEL, f"{ATTR}-metadata": {**META, "type": "other"}}),
    GOOD.replace(b'"depth":3', b'"depth":3,"depth":3'),
    GOOD.replace(b'"job-name":"labeling-job/x"', b'"job-name":"labeling-job/x\\u0000"'),
    GOOD.replace(b'"s3://b/a.jpg"', b'"s3://b/\xff.jpg"'),
    GOOD.replace(b'"depth":3', b'"depth":1e999'),
    GOOD.replace(b",", b", "),
    OTHER.replace(b'"other"', b'"category"', 1),  # ATTR's label, its metadata under "other-metadata"
    *BROKEN_RULES,
]
MOSTLY_ONE_SHAPE = st.one_of(st.sampled_from([GOOD] * 6 + [OTHER] * 3 + [BOXED, UNLABELED, FAILED]),
                             st.sampled_from(NEAR_GOOD), st.sampled_from(ODD))


@pytest.mark.slow
@settings(max_examples=150, deadline=None)
@given(lines=st.lists(MOSTLY_ONE_SHAPE, min_size=20, max_size=120), run_lines=st.integers(2, 20))
def test_typed_runs_find_what_the_line_by_line_scan_finds(tmp_path_factory, lines, run_lines):
    """Long runs of one shape (those the typed path takes) with lines near that shape among them."""
    path = tmp_path_factory.mktemp("scan") / "in.manifest"
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    assert facts(scan_range(str(path), 0, None, ATTR, run_lines=run_lines)) == facts(line_by_line(str(path), ATTR))


@pytest.mark.parametrize("near", NEAR_GOOD, ids=range(len(NEAR_GOOD)))
def test_a_line_near_the_typed_shape_is_found_as_line_by_line(tmp_path, near):
    """Each line near GOOD's shape alone among GOOD and OTHER lines, after the typed path has
    been learned: it must not pass for its neighbours."""
    path = tmp_path / "in.manifest"
    path.write_bytes(b"".join(line + b"\n" for line in [*[GOOD] * 40, near, *[GOOD] * 7, *[OTHER] * 40, near]))
    assert facts(scan_range(str(path), 0, None, ATTR, run_lines=16)) == facts(line_by_line(str(path), ATTR))


def test_runs_of_one_shape_take_the_typed_path(tmp_path, monkeypatch):
    """After one run of a shape is cleared by parsing, the next runs of it are accepted by the
    typed path, without a parse a line (a silently lost typed path fails here); lines of a shape
    without the attribute are all selected, at their offsets."""
    from totask_manifest._manifest import label_check

    lines = [GOOD] * 64 + [OTHER] * 64
    path = tmp_path / "in.manifest"
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    parsed_runs = []
    real = label_check.run_needs_input_rules
    monkeypatch.setattr(label_check, "run_needs_input_rules",
                        lambda text, records, longest: parsed_runs.append(len(records)) or real(text, records, longest))
    scan = scan_range(str(path), 0, None, ATTR, run_lines=16)
    # GOOD's second run teaches its shape (the first holds the file's first line); OTHER's first line, refused
    # by it, goes alone, and the next lines, refused too, go in runs: their first teaches OTHER's
    assert parsed_runs == [16, 1, 16]
    assert scan.lines == 128 and scan.problem_count == 0
    assert list(scan.indices) == list(range(64, 128))
    assert list(scan.offsets) == [64 * (len(GOOD) + 1) + k * (len(OTHER) + 1) for k in range(64)]


@pytest.mark.parametrize("broken", BROKEN_RULES, ids=["class-not-in-map", "box-without-object"])
def test_labels_that_break_task_rules_stay_on_the_typed_path(tmp_path, monkeypatch, broken):
    """The scan's typed path checks what the scan decides (the line rules, the selection), not
    the task type's own rules, which decide neither: runs of such labels are accepted at once,
    not parsed a line at a time (they were, and cost the scan a tenth of its CPU on boxes)."""
    from totask_manifest._manifest import label_check

    assert broken != BOXED
    path = tmp_path / "in.manifest"
    path.write_bytes(b"".join(line + b"\n" for line in [GOOD] * 32 + [broken] * 64))
    parsed_runs = []
    real = label_check.run_needs_input_rules
    monkeypatch.setattr(label_check, "run_needs_input_rules",
                        lambda text, records, longest: parsed_runs.append(len(records)) or real(text, records, longest))
    scan = scan_range(str(path), 0, None, ATTR, run_lines=16)
    assert parsed_runs == [16]  # GOOD's second run teaches the shape; the broken labels pass as it
    assert facts(scan) == facts(line_by_line(str(path), ATTR))
    assert scan.lines == 96 and not scan.indices and scan.problem_count == 0


#: a line over the byte cap ``long_lines.MAX_LINE_BYTES`` (lowered to ``CAP`` in the test below)
CAP = 1500
LONG = b'{"source-ref": "s3://b/l.jpg", "k": "' + b"x" * CAP + b'"}'


def splitter_scan(data: bytes, attribute: str) -> _RangeScan:
    """The scan of a whole file line by line, as the line splitter reads it (``iter_line_batches``;
    a line over the cap is read past, ``line-too-long``)."""
    out = _RangeScan()
    at = 0
    for lines in iter_line_batches(io.BytesIO(data), newlines=True):
        for raw in lines:
            if type(raw) is TooLong:
                out.lines += 1
                scan_ranges._add_problems(out, [("", long_lines.message(), "line-too-long")])
                at += raw.size
                continue
            _scan_line(out, at, raw, attribute)
            at += len(raw)
    return out


def whole(parts: list[_RangeScan]) -> tuple:
    scan = InputScan()
    for part in parts:
        add_range(scan, part)
    sel = scan.selection
    return scan.lines, list(sel.indices), list(sel.offsets), scan.problems, scan.problem_count, scan.bad_lines


@pytest.mark.slow
@settings(max_examples=200, deadline=None)
@given(stretches=st.lists(st.tuples(st.one_of(MOSTLY_ONE_SHAPE, st.just(LONG)), st.integers(1, 12)), max_size=16),
       ends=st.lists(st.sampled_from([b"\n"] * 6 + [b"\r\n"]), min_size=80, max_size=80),
       bom=st.booleans(), last_terminated=st.booleans(), cuts=st.lists(st.floats(0, 1), max_size=4),
       chunk=st.integers(16, 4096), piece_bytes=st.integers(1, 2048), run_lines=st.integers(1, 20))
def test_blocks_and_pieces_find_what_the_line_by_line_scan_finds(tmp_path_factory, stretches, ends, bom,
                                                                 last_terminated, cuts, chunk, piece_bytes, run_lines):
    """Stretches of one line (pieces the typed path takes whole, or refuses one line of) and byte
    ranges cut anywhere (mid-line, between a CR and its LF, inside a line over the byte cap), read
    in small blocks and pieces: the ranges together find what the line-by-line scan of the whole
    file finds, down to each selected line's offset."""
    lines = [line for line, times in stretches for _ in range(times)][:80]
    text = b"".join(line + end for line, end in zip(lines, ends, strict=False))
    if lines and not last_terminated:
        text = text.rstrip(b"\r\n")
    data = (b"\xef\xbb\xbf" if bom else b"") + text
    path = tmp_path_factory.mktemp("scan") / "in.manifest"
    path.write_bytes(data)
    bounds = [0, *sorted(int(c * len(data)) for c in cuts), len(data)]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(long_lines, "MAX_LINE_BYTES", CAP)
        expected = whole([splitter_scan(data, ATTR)])
        parts = [scan_range(str(path), a, b, ATTR, run_lines=run_lines, chunk=chunk, piece_bytes=piece_bytes)
                 for a, b in itertools.pairwise(bounds)]
    assert whole(parts) == expected


def test_a_piece_of_a_selecting_shape_gives_each_line_its_offset(tmp_path):
    """Pieces the typed path accepts whole under a shape without the attribute: every line is
    selected at its own offset, across block and piece ends, with a refused line among them."""
    lines = [GOOD] * 20 + [OTHER] * 30 + [UNLABELED] + [OTHER] * 30
    data = b"".join(line + b"\n" for line in lines)
    path = tmp_path / "in.manifest"
    path.write_bytes(data)
    for chunk, piece_bytes in [(64 << 10, 16 << 10), (700, 300), (100, 1)]:
        scan = scan_range(str(path), 0, None, ATTR, chunk=chunk, piece_bytes=piece_bytes)
        assert list(scan.indices) == list(range(20, 81))
        others, unlabeled = 20 * (len(GOOD) + 1), 20 * (len(GOOD) + 1) + 30 * (len(OTHER) + 1)
        assert list(scan.offsets) == [others + k * (len(OTHER) + 1) for k in range(30)] + [unlabeled] + [
            unlabeled + len(UNLABELED) + 1 + k * (len(OTHER) + 1) for k in range(30)]


def test_a_routed_line_with_a_value_is_selected_by_runs_and_lines_alike(tmp_path) -> None:
    """A value beside ``review-status: routed`` is no label (validate, stats, labeled, the exports and
    apply say so): a chained job labels the line again, in whole runs as line by line. It was left
    for no job: counted labeled by the selection only."""
    path = tmp_path / "in.manifest"
    path.write_bytes(b"\n".join([GOOD] * 30 + [ROUTED] + [GOOD] * 30 + [ROUTED] * 30) + b"\n")
    by_lines = line_by_line(str(path), ATTR)
    by_runs = scan_range(str(path), 0, None, ATTR)
    assert facts(by_runs)[:3] == facts(by_lines)[:3]
    assert list(by_runs.indices) == [30, *range(61, 91)]
