"""The append-first-label fast path (``line.append_new``): a line that has no label yet gets its
new keys appended without a scan of its members. It must write exactly what ``splice`` writes,
byte for byte, on every real Ground Truth line and on generated lines of every spelling, and
step aside wherever ``splice`` has more to do."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.test_line_roundtrip import LINE_OBJECTS, WS
from totask_manifest._manifest.io import read_lines
from totask_manifest._manifest.line import DELETE, Line, append_new, splice

LABEL = {"annotations": [{"class_id": 0, "top": 164.60000000000002, "left": 1e-05, "width": 3, "height": 4}],
         "image_size": [{"width": 680, "height": 1024, "depth": 3}]}
META = {"objects": [{"confidence": 0.93}], "class-map": {"0": "Bird \u00e9"}, "type": "groundtruth/object-detection",
        "job-name": "labeling-job/x", "human-annotated": "no", "creation-date": "2026-01-01T00:00:00.000001"}


def test_every_real_line_gets_splices_bytes(gt_manifests: Path):
    files = sorted(p for p in gt_manifests.iterdir() if p.suffix in (".manifest", ".jsonl"))
    assert len(files) >= 20
    fast = 0
    for path in files:
        for line in read_lines(str(path)):
            if line.is_blank:
                continue
            record = line.record()
            updates = {"totask-new": LABEL, "totask-new-metadata": META}
            appended = append_new(line.body, updates, record)
            assert appended is not None, (path.name, line.number)
            assert appended == splice(line.body, updates), (path.name, line.number)
            assert appended.startswith(line.body.rstrip()[:-1].rstrip())  # the line's own bytes, untouched
            assert orjson.loads(appended) == {**record, **updates}
            assert line.with_values(updates).body == appended
            fast += 1
    assert fast > 100


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(LINE_OBJECTS, WS, WS, st.sampled_from(["label", "a\u00e9\"b", "x-metadata"]))
@pytest.mark.slow
def test_generated_lines_of_any_spelling_get_splices_bytes(line_object, before, after, key):
    raw, meaning = line_object
    body = before + raw + after
    updates = {key: {"n": 1e-05, "s": "\u00e9"}, key + "-2": [1, 2.5]}
    if key in meaning or key + "-2" in meaning:
        assert append_new(body, updates, meaning) is None
        return
    appended = append_new(body, updates, meaning)
    assert appended == splice(body, updates)
    assert orjson.loads(appended) == {**orjson.loads(body), **updates}


@pytest.mark.parametrize(("body", "updates"), [
    (b'{"a": 1, "label": null}', {"label": 2}),          # the key is there: replaced in place
    (b'{"a": 1}', {"a": DELETE}),                         # a deletion
    (b'{"a": 1}', {"b": DELETE}),
    (b"{}", {"b": 1}),                                    # no member to take the style from
    (b"{ }", {"b": 1}),
    (b'{"a": 1}', {}),
])
def test_splice_is_left_what_appending_cannot_do(body, updates):
    assert append_new(body, updates, orjson.loads(body)) is None
    assert Line(1, body).with_values(updates).body == splice(body, updates)


def test_styles_follow_the_first_member():
    assert Line(1, b'{"a":1,"b": 2}').with_values({"c": 3}).body == b'{"a":1,"b": 2,"c":3}'
    assert Line(1, b'{"a": 1,"b":2 }  ').with_values({"c": 3}).body == b'{"a": 1,"b":2, "c": 3 }  '
    assert Line(1, b' {"a"\t:\t1}').with_values({"c": 3}).body == b' {"a"\t:\t1,"c":3}'
