"""``native.losses`` on ``objects`` documents answers "nothing lost" with set inclusions
(``objects_keep_all``) and counts in full only otherwise: the shortcut must say "nothing" exactly
when the full count is empty, and ``losses`` must return what the full count returns, key order
included (it fixes the order of a label's ``dropped`` keys)."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from totask_manifest._formats.native import OBJECTS, _count_object_losses, losses, objects_keep_all

_VALUES = st.sampled_from([0, 0.0, 1, 2.5, -0.0, True, False, None, "3", float("nan"), [], {}])
_COORD = st.dictionaries(st.sampled_from(["x", "y", "width", "height", "rotation", "points", "z"]), _VALUES,
                         max_size=6)
_PROPS = st.dictionaries(st.sampled_from(["label", "confidence", "color", "note"]), _VALUES, max_size=4)
_OBJECT = st.fixed_dictionaries(
    {},
    optional={
        "type": st.sampled_from(["bbox", "classification", "polygon", 7, None]),
        "coordinates": st.one_of(_COORD, _VALUES),
        "properties": st.one_of(_PROPS, _VALUES),
        "class_id": _VALUES,
        "confidence": _VALUES,
        "id": st.just("o1"),
        "extra": _VALUES,
    },
)
_OBJECTS = st.lists(st.one_of(_OBJECT, _VALUES), max_size=5)
_TASKS = st.sampled_from(["object-detection", "image-classification", "image-classification-multilabel"])


def _full(objects: list[Any], task_type: str) -> Counter[str]:
    lost: Counter[str] = Counter()
    _count_object_losses(lost, objects, "bbox" if task_type == "object-detection" else "classification")
    return +lost


@settings(max_examples=400, deadline=None)
@given(objects=_OBJECTS, task_type=_TASKS)
@pytest.mark.slow
def test_shortcut_agrees_with_the_full_count(objects: list[Any], task_type: str) -> None:
    full = _full(objects, task_type)
    kept = "bbox" if task_type == "object-detection" else "classification"
    assert objects_keep_all(objects, kept) == (not full)
    got = losses({"objects": objects}, OBJECTS, task_type)
    assert list(got.items()) == list(full.items())


@pytest.mark.parametrize(
    ("obj", "kind"),
    [
        ({"type": "polygon", "coordinates": {"points": []}}, "polygon"),
        ({"class_id": 0, "coordinates": {"x": 0, "y": 0, "width": 1, "height": 1, "rotation": 0.5}}, "rotation"),
        ({"class_id": 0, "coordinates": {"x": 0, "y": 0, "width": 1, "height": 1, "z": 3}}, "coordinates key z"),
        ({"class_id": 0, "coordinates": {"x": 0, "y": 0, "width": 1, "height": 1}, "extra": 1}, "object key extra"),
        ({"class_id": 0, "coordinates": {"x": 0, "y": 0, "width": 1, "height": 1},
          "properties": {"label": "a", "color": "red"}}, "property"),
    ],
)
def test_each_kind_of_loss_is_still_counted(obj: dict, kind: str) -> None:
    plain = {"class_id": 0, "coordinates": {"x": 0, "y": 0, "width": 1, "height": 1, "rotation": 0},
             "properties": {"label": "a", "confidence": 0.5}}
    assert losses({"objects": [plain, plain]}, OBJECTS, "object-detection") == Counter()
    assert losses({"objects": [plain, obj]}, OBJECTS, "object-detection") == Counter({kind: 1})


def test_dropped_keys_keep_the_order_they_are_met_in() -> None:
    """A property met with nothing to drop still takes its place before a later rotation."""
    box = {"x": 0, "y": 0, "width": 1, "height": 1}
    objects = [{"class_id": 0, "coordinates": box, "properties": {"label": "a"}},
               {"class_id": 0, "coordinates": {**box, "rotation": 3}},
               {"class_id": 0, "coordinates": box, "properties": {"label": "a", "note": "x"}}]
    assert list(losses({"objects": objects}, OBJECTS, "object-detection")) == ["property", "rotation"]
