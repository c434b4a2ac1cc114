"""A job refuses, before it starts, every input line ``validate`` refuses at line level, with the
same rules (one implementation: ``manifest.validate.input_line_problems``)."""

from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.jobs_helpers import TOY, run_cli
from totask_manifest import _api as api
from totask_manifest._annotators.base import BatchAnnotator, Item, Labeled, Outcome
from totask_manifest._errors import InvalidInputError
from totask_manifest._jobs.config import JobConfig
from totask_manifest._manifest.line import any_repeats_a_key, duplicate_key_paths, may_repeat_a_key
from totask_manifest._manifest.validate import validate_manifest

GOOD = b'{"source-ref":"s3://b/ok.jpg"}\n'
BAD_LINES = {
    "line-too-long": b'{"source-ref":"s3://b/a.jpg",' + b",".join(
        b'"k%d":"%s"' % (i, b"x" * 19_000) for i in range(6)) + b"}",
    "attribute-too-long": b'{"source-ref":"s3://b/a.jpg","note":"' + b"y" * 20_001 + b'"}',
    "duplicate-key": b'{"source-ref":"s3://b/a.jpg","source-ref":"s3://b/other.jpg"}',
    "line-utf8": b'{"source-ref":"s3://b/\xff.jpg"}',
    "line-json": b'{"source-ref":"s3://b/a.jpg",',
    "line-source": b'{"source":"text","source-ref":"s3://b/a.jpg"}',
    "key-dollar": b'{"source-ref":"s3://b/a.jpg","$x":1}',
    "line-source-value": b'{"source-ref":5}',
}
NESTED = b'{"source-ref":"s3://b/a.jpg","extra":{"boxes":[{"w":1},{"w":1,"w":2}]}}'


def config(tmp_path: Path, inp: Path) -> JobConfig:
    return JobConfig(job_name="job1", input=str(inp), output_root=str(tmp_path / "out"), label_attribute="cls",
                     task_type="image-classification", method=TOY)


@pytest.mark.parametrize("rule", sorted(BAD_LINES))
def test_a_line_validate_refuses_stops_the_job_before_it_starts(tmp_path: Path, rule: str) -> None:
    inp = tmp_path / "in.manifest"
    inp.write_bytes(GOOD + BAD_LINES[rule] + b"\n" + GOOD)
    report = validate_manifest(str(inp))
    assert rule in {p.rule for p in report.problems if p.line == 2}
    with pytest.raises(InvalidInputError) as info:
        api.annotate(config(tmp_path, inp))
    text = str(info.value)
    assert "has 1 bad line" in text and "\n  line 2" in text and f"[{rule}]" in text
    assert not (tmp_path / "out" / "job1" / "job.json").exists()


def test_a_line_with_several_problems_is_counted_as_one_bad_line(tmp_path: Path) -> None:
    """A line over 100,000 characters whose values are each over 20,000 has six problems: the
    refusal said ``has 7 bad lines`` for this file's two, above a listing that named line 2 six
    times. It counts lines, and says how many problems they hold when that is more."""
    long_line = b'{"source-ref":"s3://b/a.jpg",' + b",".join(b'"k%d":"%s"' % (i, b"x" * 25_000) for i in range(5)) + b"}"
    inp = tmp_path / "in.manifest"
    inp.write_bytes(GOOD + long_line + b"\n" + GOOD + BAD_LINES["line-json"] + b"\n")
    with pytest.raises(InvalidInputError) as info:
        api.annotate(config(tmp_path, inp))
    text = str(info.value)
    assert "has 2 bad lines (7 problems):" in text, text
    rows = [row.split(":")[0] for row in text.splitlines()[1:]]
    assert rows == ["  line 2"] + [f"  line 2, key 'k{i}'" for i in range(5)] + ["  line 4"], text


def test_a_key_repeated_inside_a_nested_object_is_refused_by_validate_and_jobs(tmp_path: Path) -> None:
    inp = tmp_path / "in.manifest"
    inp.write_bytes(GOOD + NESTED + b"\n")
    report = validate_manifest(str(inp))
    assert [(p.line, p.key, p.rule) for p in report.problems] == [(2, "extra.boxes[1].w", "duplicate-key")]
    with pytest.raises(InvalidInputError, match=r"line 2, key 'extra.boxes\[1\].w': .*\[duplicate-key\]"):
        api.annotate(config(tmp_path, inp))


def test_validate_finds_a_nested_repeat_in_a_run_of_valid_lines(tmp_path: Path, gt_manifests: Path) -> None:
    """The fast path checks runs of lines at once; a repeat deep inside one of them still counts."""
    yolo = (gt_manifests / "object-detection__aws-amazon-sagemaker-examples__yolov5-sample_output.manifest").read_bytes()
    lines = yolo.splitlines(keepends=True)
    assert lines[9].count(b'"class_id":0') >= 1
    lines[9] = lines[9].replace(b'"class_id":0', b'"class_id":1,"class_id":0', 1)
    path = tmp_path / "nested.manifest"
    path.write_bytes(b"".join(lines))
    report = validate_manifest(str(path), workers=1)
    assert [(p.line, p.rule) for p in report.problems] == [(10, "duplicate-key")]  # the last copy is read
    assert report.problems[0].key.startswith("category.annotations[") and report.problems[0].key.endswith("class_id")


@pytest.mark.parametrize("spacing", [b":", b": "], ids=["compact", "spaced"])
@pytest.mark.parametrize("value", [b"5", b'""', b"null"])
def test_a_source_value_that_names_nothing_is_refused_in_a_run_of_good_lines(
        tmp_path: Path, gt_manifests: Path, spacing: bytes, value: bytes) -> None:
    """``source-ref`` 5, ``""`` or ``null`` alone among many labeled lines: each path that checks
    a run at once (typed structs for compact lines, the run schema for spaced ones) names the
    line, as the per-line rule does (a job refuses such an input before it starts: above)."""
    yolo = (gt_manifests / "object-detection__aws-amazon-sagemaker-examples__yolov5-sample_output.manifest").read_bytes()
    lines = yolo.splitlines(keepends=True) * 20
    record = orjson.loads(lines[150])
    record["source-ref"] = orjson.Fragment(value)
    lines[150] = orjson.dumps(record) + b"\n"
    path = tmp_path / "sources.manifest"
    path.write_bytes(b"".join(lines).replace(b'":', b'"' + spacing))
    report = validate_manifest(str(path), workers=1)
    assert [(p.line, p.key, p.rule) for p in report.problems] == [(151, "source-ref", "line-source-value")]
    found = {b"5": "found JSON number", b'""': "found an empty string", b"null": "found JSON null"}[value]
    assert report.problems[0].message.endswith(found)


def test_a_source_that_is_not_a_string_is_refused(tmp_path: Path) -> None:
    text = tmp_path / "text.manifest"
    text.write_bytes(b'{"source":"a sentence"}\n{"source":""}\n{"source":7}\n')
    assert [(p.line, p.key, p.rule) for p in validate_manifest(str(text)).problems] == [(3, "source", "line-source-value")]


@pytest.mark.slow
def test_the_cli_names_line_and_rule_and_exits_1_as_validate(tmp_path: Path) -> None:
    inp = tmp_path / "in.manifest"
    inp.write_bytes(GOOD * 3 + BAD_LINES["duplicate-key"] + b"\n")
    r = run_cli("annotate", str(inp), "--job-name", "j", "--label-attribute", "cls", "--task-type",
                "image-classification", "--method", TOY, "--output", str(tmp_path / "out"))
    assert r.returncode == 1, r.stderr  # invalid data, as validate says of the same line
    assert "line 4, key 'source-ref'" in r.stderr and "[duplicate-key]" in r.stderr
    assert "Traceback" not in r.stderr


class ManyBoxes(BatchAnnotator):
    """Labels a line with as many boxes as its ``n`` key says (a plugin, through the real job)."""

    name = "many-boxes"

    def annotate_batch(self, items: list[Item]) -> list[Outcome]:
        out: list[Outcome] = []
        for item in items:
            n = item.record["n"]
            boxes = [{"class_id": 0, "left": i, "top": i, "width": 1, "height": 1} for i in range(n)]
            out.append(Labeled({"image_size": [{"width": 9999, "height": 9999, "depth": 3}], "annotations": boxes},
                               {"objects": [{"confidence": 0.5}] * n, "class-map": {"0": "dot"}}))
        return out


def test_a_label_that_would_make_the_line_invalid_fails_instead_of_being_written(tmp_path: Path) -> None:
    inp = tmp_path / "in.manifest"
    inp.write_bytes(b'{"source-ref":"s3://b/a.jpg","n":2}\n{"source-ref":"s3://b/b.jpg","n":600}\n')
    result = api.annotate(JobConfig(job_name="big", input=str(inp), output_root=str(tmp_path / "out"),
                                    label_attribute="boxes", task_type="object-detection",
                                    method="tests.test_input_rules:ManyBoxes"))
    assert result.metrics["success"] == 1 and result.metrics["failed"] == 1
    assert validate_manifest(result.output_manifest).ok
    failed = orjson.loads(Path(result.output_manifest).read_bytes().splitlines()[1])["boxes-metadata"]
    assert failed["failure-rule"] == "attribute-too-long" and "at boxes" in failed["failure-reason"]


# --- the repeated-key tests against a reference parser ----------------------------------------------

_keys = st.sampled_from(["a", "b", "ab", ":", "a:b", "\u00e9", "source-ref"])
_scalars = st.one_of(st.integers(-5, 5), st.sampled_from(["x", "a:b", ":", "\u00e9", '"q"', "\\"]), st.none())
_pairs_trees = st.recursive(
    _scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=3).map(lambda v: ("array", v)),
                            st.lists(st.tuples(_keys, inner), max_size=4).map(lambda v: ("object", v))),
    max_leaves=12)


def _text(value, escape: bool) -> str:
    """JSON text that keeps repeated keys; ``escape`` spells every non-ASCII or ':' as \\uXXXX."""
    if isinstance(value, tuple) and value[0] == "array":
        return "[" + ",".join(_text(v, escape) for v in value[1]) + "]"
    if isinstance(value, tuple):
        return "{" + ",".join(_string(k, escape) + ":" + _text(v, escape) for k, v in value[1]) + "}"
    return _string(value, escape) if isinstance(value, str) else json.dumps(value)


def _string(s: str, escape: bool) -> str:
    out = json.dumps(s, ensure_ascii=False)
    if escape:
        out = "".join(f"\\u{ord(c):04x}" if (ord(c) > 127 or c == ":") else c for c in out)
    return out


def _reference_repeats(text: str) -> int:
    found = 0

    def hook(pairs):
        nonlocal found
        keys = [k for k, _ in pairs]
        found += len(keys) - len(set(keys))
        return dict(pairs)

    json.loads(text, object_pairs_hook=hook)
    return found


@settings(max_examples=400, deadline=None)
@given(tree=st.lists(st.tuples(_keys, _pairs_trees), max_size=5).map(lambda v: ("object", v)), escape=st.booleans())
@pytest.mark.slow
def test_repeated_keys_are_found_at_any_depth_and_the_cheap_test_never_misses_one(tree, escape) -> None:
    body = _text(tree, escape).encode()
    expected = _reference_repeats(body.decode())
    assert len(duplicate_key_paths(body)) == expected
    if expected:
        assert may_repeat_a_key(body, orjson.loads(body))


@pytest.mark.slow  # over 1 s: the fast lane keeps a cheaper case of the same code
@settings(max_examples=200, deadline=None)
@given(trees=st.lists(st.tuples(st.lists(st.tuples(_keys, _pairs_trees), max_size=4).map(lambda v: ("object", v)),
                                st.booleans(), st.booleans()), min_size=1, max_size=6))
def test_a_run_of_lines_with_a_repeated_key_is_never_passed(trees) -> None:
    """``validate`` tests a run of lines at once (``any_repeats_a_key``): a line with a repeated key
    anywhere in the run is always caught, whichever way the run is written (as orjson writes it,
    which takes the byte-for-byte shortcut, or spelled otherwise)."""
    lines = []
    for tree, escape, rewrite in trees:
        body = _text(tree, escape).encode()
        if rewrite and not _reference_repeats(body.decode()):
            body = orjson.dumps(orjson.loads(body))  # the shortcut's case
        lines.append(body)
    records = [orjson.loads(body) for body in lines]
    repeats = sum(_reference_repeats(body.decode()) for body in lines)
    if repeats:
        assert any_repeats_a_key(lines, records)
    if all(orjson.dumps(r) == body for r, body in zip(records, lines, strict=True)):
        assert not any_repeats_a_key(lines, records)
