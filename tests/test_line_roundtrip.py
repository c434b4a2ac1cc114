"""Lossless round trip: untouched lines come back byte-identical; an edited line keeps every other
key's bytes (number spelling, escapes, spacing, order) exactly.

The property tests generate manifests as raw bytes together with the values they mean, so each
spelling choice (``1e-05``, ``\\u00e9``, ``" : "``, CRLF, a BOM, no final newline) is exercised
and the parsed result is known without trusting the code under test.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.gt import GT_MANIFESTS, gt_files, real_cases, requires_gt
from totask_manifest._manifest.io import iter_lines_from, read_lines, write_lines
from totask_manifest._manifest.line import BOM, DELETE, Line, scan_top_level

pytestmark = requires_gt

REAL_FILES = gt_files(".manifest", ".jsonl")

# ---- generating JSON text together with its meaning --------------------------------------------

WS = st.sampled_from([b"", b"", b" ", b"  ", b"\t"])
# spellings a real manifest holds, with the value each one means
NUMBERS = [
    (b"164.60000000000002", 164.60000000000002),
    (b"1e-05", 1e-05),
    (b"1E5", 100000.0),
    (b"2.5e+3", 2500.0),
    (b"0.10", 0.1),
    (b"-0.0", -0.0),
    (b"-0", 0),
    (b"0", 0),
    (b"443.8", 443.8),
    (b"9007199254740993", 9007199254740993),
    (b"12345678901234567890", 12345678901234567890),
    (b"-9223372036854775808", -9223372036854775808),
]


def _escape_char(ch: str, escape: bool) -> bytes:
    code = ord(ch)
    if ch == '"':
        return b'\\"'
    if ch == "\\":
        return b"\\\\"
    if code < 0x20:
        return {8: b"\\b", 9: b"\\t", 10: b"\\n", 12: b"\\f", 13: b"\\r"}.get(code, b"\\u%04x" % code)
    if ch == "/" and escape:
        return b"\\/"
    if not escape:
        return ch.encode("utf-8")
    if code > 0xFFFF:
        code -= 0x10000
        return b"\\u%04x\\u%04X" % (0xD800 + (code >> 10), 0xDC00 + (code & 0x3FF))
    return b"\\u%04x" % code


@st.composite
def json_string(draw: Any) -> tuple[bytes, str]:
    text = draw(st.text(st.characters(exclude_categories=("Cs",)), max_size=12))
    flags = draw(st.lists(st.booleans(), min_size=len(text), max_size=len(text)))
    return b'"' + b"".join(_escape_char(c, f) for c, f in zip(text, flags, strict=True)) + b'"', text


SCALARS = st.one_of(
    st.sampled_from(NUMBERS),
    st.integers(min_value=-(2**63), max_value=2**64 - 1).map(lambda i: (str(i).encode(), i)),
    st.floats(allow_nan=False, allow_infinity=False).map(lambda f: (repr(f).encode(), f)),
    st.sampled_from([(b"true", True), (b"false", False), (b"null", None)]),
    json_string(),
)


def _containers(children: st.SearchStrategy) -> st.SearchStrategy:
    arrays = st.tuples(st.lists(st.tuples(WS, children, WS), max_size=4), WS).map(
        lambda t: (b"[" + b",".join(a + raw + b for a, (raw, _), b in t[0]) + (t[1] if not t[0] else b"") + b"]",
                   [v for _, (_, v), _ in t[0]])
    )
    return st.one_of(arrays, json_object(children))


def json_object(values: st.SearchStrategy, min_size: int = 0) -> st.SearchStrategy:
    @st.composite
    def build(draw: Any) -> tuple[bytes, dict]:
        keys = draw(st.lists(json_string(), min_size=min_size, max_size=5, unique_by=lambda kv: kv[1]))
        parts = []
        meaning = {}
        for raw_key, key in keys:
            raw_value, value = draw(values)
            parts.append(draw(WS) + raw_key + draw(WS) + b":" + draw(WS) + raw_value + draw(WS))
            meaning[key] = value
        return b"{" + b",".join(parts) + (draw(WS) if not parts else b"") + b"}", meaning

    return build()


JSON_VALUES = st.recursive(SCALARS, _containers, max_leaves=12)
LINE_OBJECTS = json_object(JSON_VALUES, min_size=1)


@st.composite
def manifests(draw: Any) -> tuple[bytes, list[dict]]:
    lines = draw(st.lists(LINE_OBJECTS, min_size=1, max_size=6))
    newline = draw(st.sampled_from([b"\n", b"\r\n"]))
    out = BOM if draw(st.booleans()) else b""
    for i, (raw, _) in enumerate(lines):
        last = i == len(lines) - 1
        out += draw(WS) + raw + draw(WS) + (b"" if last and draw(st.booleans()) else newline)
    return out, [meaning for _, meaning in lines]


def _same(a: Any, b: Any) -> bool:
    """Equality that tells -0.0 from 0 and 1 from 1.0 (a changed spelling must be caught)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b and repr(a) == repr(b)


def raw_values(body: bytes) -> dict[str, bytes]:
    return {s.key: body[s.value_start : s.value_end] for s in scan_top_level(body)}


# ---- properties ---------------------------------------------------------------------------------


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(manifests())
@pytest.mark.slow
def test_untouched_manifest_round_trips_byte_identical(data: tuple[bytes, list[dict]]) -> None:
    raw, meanings = data
    lines = list(iter_lines_from(io.BytesIO(raw)))
    assert b"".join(line.raw for line in lines) == raw
    assert len(lines) == len(meanings)
    for line, meaning in zip(lines, meanings, strict=True):
        assert _same(line.record(), meaning)
    assert lines[0].prefix == (BOM if raw.startswith(BOM) else b"")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(LINE_OBJECTS, st.data())
@pytest.mark.slow
def test_edit_keeps_every_other_key_byte_identical(line_object: tuple[bytes, dict], data: st.DataObject) -> None:
    body, meaning = line_object
    line = Line(4, body, data.draw(st.sampled_from([b"\n", b"\r\n", b""])))
    before = raw_values(body)
    keys = list(meaning)
    updates: dict[str, Any] = {}
    for key in data.draw(st.lists(st.sampled_from(keys), unique=True, max_size=len(keys))):
        updates[key] = data.draw(st.sampled_from([DELETE, {"replaced": [1, 2.5, "é"]}, 0.1, None]))
    for _ in range(data.draw(st.integers(0, 2))):
        updates[f"new-attribute-{len(updates)}"] = data.draw(
            st.sampled_from([{"annotations": [], "image_size": [{"width": 3}]}, 1e-05, "\u00e9\u0027"])
        )

    edited = line.with_values(updates)

    expected = {k: v for k, v in meaning.items() if not (k in updates and updates[k] is DELETE)}
    expected.update({k: v for k, v in updates.items() if v is not DELETE})
    assert _same(orjson.loads(edited.body), expected)
    after = raw_values(edited.body)
    for key, raw in before.items():
        if key not in updates:
            assert after[key] == raw, key  # the other keys' value bytes are untouched
    assert [k for k in after if k not in updates] == [k for k in before if k not in updates]  # order kept
    assert (edited.number, edited.newline, edited.prefix) == (line.number, line.newline, line.prefix)
    if not updates:
        assert edited.body == body


def test_number_and_escape_spellings_survive_an_edit() -> None:
    body = (b'{"source-ref":"s3://b/k.jpg","top":164.60000000000002,"lr":1e-05,"big":12345678901234567890,'
            b'"q":"it\\u0027s \\u00e9","nested":{"a":[1.0, -0, 2E3]}}')
    edited = Line(1, body).with_values({"label": {"annotations": []}, "label-metadata": {"confidence": 0.5}})
    assert edited.body == body[:-1] + b',"label":{"annotations":[]},"label-metadata":{"confidence":0.5}}'
    spaced = Line(1, b'{"source": "a", "x": 1.50}').with_values({"x": 2, "y": [1]})
    assert spaced.body == b'{"source": "a", "x": 2, "y": [1]}'  # follows the json.dumps style


# ---- the real Ground Truth files ---------------------------------------------------------------


def test_real_files_are_present() -> None:
    assert len(REAL_FILES) >= 20, GT_MANIFESTS


@pytest.mark.parametrize("path", real_cases(REAL_FILES), ids=lambda p: p.name[:60])
def test_real_file_round_trips_byte_identical(path: Path, tmp_path: Path) -> None:
    out = tmp_path / "copy.manifest"
    n = write_lines(str(out), read_lines(str(path)))
    assert out.read_bytes() == path.read_bytes()
    assert n == path.read_bytes().count(b"\n") + (0 if path.read_bytes().endswith(b"\n") else 1)


@pytest.mark.parametrize("path", real_cases(REAL_FILES), ids=lambda p: p.name[:60])
def test_real_file_edit_keeps_other_keys(path: Path, tmp_path: Path) -> None:
    label = {"image_size": [{"width": 680, "height": 1024, "depth": 3}],
             "annotations": [{"class_id": 0, "top": 164.60000000000002, "left": 1e-05, "width": 3, "height": 4}]}
    metadata = {"objects": [{"confidence": 0.93}], "class-map": {"0": "Bird"}, "type": "groundtruth/object-detection"}
    edited_lines = []
    for line in read_lines(str(path)):
        before = raw_values(line.body)
        edited = line.with_values({"totask-check": label, "totask-check-metadata": metadata})
        after = raw_values(edited.body)
        for key, raw in before.items():
            assert after[key] == raw, (line.number, key)
        assert list(after)[: len(before)] == list(before)
        assert orjson.loads(edited.body) == {**line.record(), "totask-check": label, "totask-check-metadata": metadata}
        assert edited.body.startswith(line.body[:-1])
        edited_lines.append(edited)
    out = tmp_path / "edited.manifest"
    write_lines(str(out), edited_lines)
    # removing the added keys again gives back the original file, byte for byte
    restored = [line.with_values({"totask-check": DELETE, "totask-check-metadata": DELETE})
                for line in read_lines(str(out))]
    write_lines(str(tmp_path / "restored.manifest"), restored)
    assert (tmp_path / "restored.manifest").read_bytes() == path.read_bytes()


def test_replacing_a_real_label_keeps_the_rest_of_the_line() -> None:
    path = GT_MANIFESTS / "object-detection__aws-amazon-sagemaker-examples__yolov5-sample_output.manifest"
    line = next(read_lines(str(path)))
    assert b"164.60000000000002" in line.body
    edited = line.with_values({"category-metadata": {"type": "groundtruth/object-detection", "objects": []}})
    before, after = raw_values(line.body), raw_values(edited.body)
    assert after["source-ref"] == before["source-ref"] and after["category"] == before["category"]
    assert b'"top":164.60000000000002' in edited.body
    assert list(after) == list(before)



@settings(max_examples=300, deadline=None)
@given(record=st.dictionaries(st.text(max_size=6), st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=8), max_size=6))
def test_spans_of_a_line_orjson_wrote_are_the_scanned_spans(record):
    """The spans taken from the record's lengths (a compact line) are the ones the token scan
    finds, for every value orjson writes."""
    from totask_manifest._manifest.line import _written_spans

    body = orjson.dumps(record)
    assert _written_spans(body, record) == scan_top_level(body)


@pytest.mark.parametrize("body", [
    b'{"a":1,"a":2}', b'{"a":123456789012345678901234567890,"b":2}', b'{"a": 1,"b":2}', b'{"a":1e5,"b":2}', b'{"a":"\\u00e9","b":2}', b'{"a":1.50,"b":[]}',
])
def test_a_line_orjson_would_write_otherwise_is_scanned(body):
    """Spacing, a repeated key, another spelling of a number or a string: not the record as
    orjson writes it, so the spans come from the scan, and the splice keeps every other byte."""
    from totask_manifest._manifest.line import _written_spans, splice

    record = orjson.loads(body)
    assert _written_spans(body, record) is None
    assert splice(body, {"b": 3}, record) == splice(body, {"b": 3})
    assert splice(body, {"b": 3}, record).startswith(body[:body.index(b'"b"') if b'"b"' in body else 6])
