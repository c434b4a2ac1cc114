"""``detect.to_label`` answers an ``objects`` document whose boxes lose nothing in one step
(``_plain_objects``: ``native.objects_keep_all``, then ``synapse.plain_boxes``) and leaves every
other document to the general steps (``losses``, the drop rule, ``objects_to_gt``): the two must
give the same label (value, metadata, key order, JSON bytes) or the same error for every
document, with or without ``allow_drop``."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from totask_manifest._formats import detect
from totask_manifest._formats.model import FormatError

_NUMBERS = st.sampled_from([0, 1, 7, 12.5, -3, 0.25, 2**70, 10**400, True, None, "4", float("nan")])
_COORD = st.fixed_dictionaries({}, optional={
    **{k: _NUMBERS for k in ("x", "y", "width", "height")},
    "rotation": st.sampled_from([0, 0.0, 15, None, "9", 10**400]),
    "points": st.just([[0, 0], [1, 1]]),
})
_PROPS = st.fixed_dictionaries({}, optional={
    "label": st.sampled_from(["cat", "dog", 3, None]),
    "confidence": st.sampled_from([0, 0.5, 1, 1.5, True, None]),
    "color": st.just("red"),
})
_OBJECT = st.fixed_dictionaries({}, optional={
    "id": st.sampled_from(["o1", 5]),
    "type": st.sampled_from(["bbox", "classification", "polygon", 3]),
    "class_id": st.sampled_from([0, 1, -1, 1.0, "2", True, None]),
    "properties": st.one_of(_PROPS, st.sampled_from([None, [], "x"])),
    "coordinates": st.one_of(_COORD, st.sampled_from([None, [], 5])),
    "confidence": st.sampled_from([0.75, 2, None]),
    "note": st.just("extra key"),
})
#: boxes that lose nothing (so most documents exercise the one step, not only the fallback)
_PLAIN = st.builds(
    lambda cid, label, conf, x, y, w, h, rot: {
        "id": f"o{cid}", "class_id": cid, "type": "bbox",
        "coordinates": {"x": x, "y": y, "width": w, "height": h, **rot},
        "properties": {"label": label} if conf is None else {"label": label, "confidence": conf}},
    st.integers(0, 3), st.sampled_from(["cat", "dog"]), st.one_of(st.none(), st.floats(0, 1), st.just(1)),
    *[st.one_of(st.integers(-5, 2000), st.floats(-1e6, 1e6)) for _ in range(4)],
    st.sampled_from([{}, {"rotation": 0}, {"rotation": 0.0}]),
)
_SIZES = st.sampled_from([[{"width": 640, "height": 480, "depth": 3}], [{"width": 0, "height": 4}], (10, 20),
                          {"width": 5, "height": 5}, None])
SIZE = [{"width": 640, "height": 480, "depth": 3}]


def _answer(doc: Any, image_size: Any, allow_drop: bool, task_type: str = "object-detection") -> Any:
    try:
        labeled = detect.to_label(doc, "synapse-objects", task_type, image_size=image_size, allow_drop=allow_drop)
    except FormatError as exc:
        return ("error", str(exc), exc.key)
    except Exception as exc:  # what the file annotator reports as an internal error: the same either way
        return ("raised", type(exc).__name__, str(exc))
    return (orjson.dumps(labeled.value), orjson.dumps(labeled.metadata), labeled.metadata_order)


def _general(doc: Any, image_size: Any, allow_drop: bool, task_type: str = "object-detection") -> Any:
    """The general steps' answer: the one step switched off."""
    saved = detect._plain_objects
    detect._plain_objects = lambda _doc, _task_type, _size: None
    try:
        return _answer(doc, image_size, allow_drop, task_type)
    finally:
        detect._plain_objects = saved


@settings(max_examples=800, deadline=None)
@given(objects=st.lists(st.one_of(_PLAIN, _PLAIN, _OBJECT, st.sampled_from([None, 3, []])), max_size=5),
       image_size=_SIZES, allow_drop=st.booleans())
@pytest.mark.slow
def test_one_step_agrees_with_the_general_steps(objects: list[Any], image_size: Any, allow_drop: bool) -> None:
    doc = {"objects": objects}
    assert _answer(doc, image_size, allow_drop) == _general(doc, image_size, allow_drop)


def _plain(i: int) -> dict:
    return {"id": f"o{i}", "class_id": i % 2, "type": "bbox",
            "coordinates": {"x": 10 * i, "y": 5.5, "width": 20, "height": 15},
            "properties": {"confidence": 0.5, "label": ["cat", "dog"][i % 2]}}


def test_plain_documents_take_the_one_step_with_the_general_steps_label() -> None:
    doc = {"objects": [_plain(0), _plain(1), _plain(2)]}
    assert detect._plain_objects(doc, "object-detection", SIZE) is not None
    assert detect._plain_objects(doc, "groundtruth/object-detection", SIZE) is not None
    for allow_drop in (False, True):
        assert _answer(doc, SIZE, allow_drop) == _general(doc, SIZE, allow_drop)
    # another task type, an empty document: the general steps, the same answer
    assert detect._plain_objects(doc, "image-classification-multilabel", SIZE) is None
    assert _answer(doc, SIZE, False, "image-classification-multilabel") == _general(
        doc, SIZE, False, "image-classification-multilabel")
    assert _answer({"objects": []}, SIZE, False) == _general({"objects": []}, SIZE, False)


@pytest.mark.parametrize("change", [
    lambda o: o["coordinates"].update(rotation=15),  # a rotation: lost (refused, or dropped and counted)
    lambda o: o["coordinates"].update(rotation=10**400),  # a rotation no float holds: raised either way
    lambda o: o.update(note="x"),  # an object key the label cannot hold
    lambda o: o["properties"].update(color="red"),  # a property the label cannot hold
    lambda o: o.update(type="polygon"),  # a tool a box label cannot hold
    lambda o: o["coordinates"].update(x=10**400),  # a coordinate no float holds
    lambda o: o.update(class_id="1"),  # a numeral: the general loop reads it
])
def test_anything_lost_or_unusual_is_left_to_the_general_steps(change: Any) -> None:
    odd = _plain(2)
    change(odd)
    doc = {"objects": [_plain(0), odd]}
    for allow_drop in (False, True):
        assert _answer(doc, SIZE, allow_drop) == _general(doc, SIZE, allow_drop)
    for size in (None, [{"width": 0, "height": 4}]):  # a size error, worded by the general steps
        assert _answer({"objects": [_plain(0)]}, size, False) == _general({"objects": [_plain(0)]}, size, False)
