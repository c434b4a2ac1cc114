"""``synapse.objects_to_gt`` builds a bounding-box label from plain documents in one pass
(``plain_boxes``) and leaves everything else to its general loop: the two must give the same
label (value, metadata, key order, JSON bytes) or the same error for every document, and the
one pass must really be taken for the documents a file job meets on nearly every line."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from totask_manifest._formats import synapse
from totask_manifest._formats.model import FormatError

_NUMBERS = st.sampled_from([0, 1, 7, 12.5, -3, 0.25, 1.0, 2**70, True, None, "4", float("nan"), float("inf")])
_COORD = st.fixed_dictionaries({}, optional={k: _NUMBERS for k in ("x", "y", "width", "height")})
_PROPS = st.fixed_dictionaries({}, optional={
    "label": st.sampled_from(["cat", "dog", "", 3, None]),
    "confidence": st.sampled_from([0, 0.5, 1, 1.5, -0.1, True, None, "0.5", float("nan")]),
})
_OBJECT = st.fixed_dictionaries({}, optional={
    "type": st.sampled_from(["bbox", "classification", "polygon"]),
    "class_id": st.sampled_from([0, 1, 2, -1, 1.0, "2", True, None]),
    "properties": st.one_of(_PROPS, st.sampled_from([None, [], "x"])),
    "coordinates": st.one_of(_COORD, st.sampled_from([None, [], 5])),
    "confidence": st.sampled_from([0.75, 2, None]),
})
#: objects the one pass takes (so most generated documents exercise it, not only the fallback)
_PLAIN = st.builds(
    lambda cid, label, conf, x, y, w, h: {
        "class_id": cid, "type": "bbox", "coordinates": {"x": x, "y": y, "width": w, "height": h},
        "properties": {"label": label} if conf is None else {"label": label, "confidence": conf}},
    st.integers(0, 3), st.sampled_from(["cat", "dog"]), st.one_of(st.none(), st.floats(0, 1), st.just(1)),
    *[st.one_of(st.integers(-5, 2000), st.floats(-1e6, 1e6)) for _ in range(4)],
)
_SIZES = st.sampled_from([[{"width": 640, "height": 480, "depth": 3}], [{"width": 0, "height": 4}], (10, 20), None])


def _general(doc: Any, image_size: Any) -> Any:
    """The general loop's answer: the one pass switched off."""
    saved = synapse.plain_boxes
    synapse.plain_boxes = lambda _objects, _size: None
    try:
        return _answer(doc, image_size)
    finally:
        synapse.plain_boxes = saved


def _answer(doc: Any, image_size: Any) -> Any:
    try:
        labeled = synapse.objects_to_gt(doc, "object-detection", image_size=image_size)
    except FormatError as exc:
        return ("error", str(exc), exc.key)
    return (orjson.dumps(labeled.value), orjson.dumps(labeled.metadata), labeled.metadata_order)


@example(objects=[{"class_id": 0, "type": "bbox", "coordinates": {"x": 0, "y": 0, "width": 0, "height": 0},
                   "properties": {"label": "cat"}},
                  {"class_id": 0, "coordinates": {"x": 0, "height": 0, "width": 0, "y": 2**70}}],
          image_size=[{"width": 640, "height": 480, "depth": 3}])  # a label with it could not be written (CI)
@settings(max_examples=600, deadline=None)
@given(objects=st.lists(st.one_of(_PLAIN, _PLAIN, _OBJECT, st.sampled_from([None, 3, []])), max_size=5), image_size=_SIZES)
@pytest.mark.slow
def test_one_pass_agrees_with_the_general_loop(objects: list[Any], image_size: Any) -> None:
    doc = {"objects": objects}
    assert _answer(doc, image_size) == _general(doc, image_size)


def _plain(i: int) -> dict:
    return {"id": f"o{i}", "class_id": i % 2, "type": "bbox",
            "coordinates": {"x": 10 * i, "y": 5.5, "width": 20, "height": 15},
            "properties": {"confidence": 0.5, "label": ["cat", "dog"][i % 2]}}


SIZE = [{"width": 640, "height": 480, "depth": 3}]


def test_plain_documents_take_the_one_pass() -> None:
    doc = {"objects": [_plain(0), _plain(1), _plain(2)]}
    labeled = synapse.plain_boxes(doc["objects"], SIZE)
    assert labeled is not None
    assert labeled.value["annotations"][2] == {"class_id": 0, "top": 5.5, "left": 20, "height": 15, "width": 20}
    assert labeled.metadata == {"objects": [{"confidence": 0.5}] * 3, "class-map": {"0": "cat", "1": "dog"}}
    assert _answer(doc, SIZE) == _general(doc, SIZE)


@pytest.mark.parametrize("change", [
    lambda o: o.update(class_id="1"),  # a numeral: the general loop accepts it as 1
    lambda o: o["properties"].pop("label"),  # a name from the class index
    lambda o: o["properties"].update(label="bird"),  # a clash with the first box's name for id 0
    lambda o: o.update(type="classification"),  # skipped by a box label
    lambda o: o["coordinates"].update(x=float("nan")),
    lambda o: o["properties"].update(confidence=1.5),
])
def test_anything_unusual_is_left_to_the_general_loop(change: Any) -> None:
    odd = _plain(2)
    change(odd)
    objects = [_plain(0), odd]
    assert synapse.plain_boxes(objects, SIZE) is None
    assert _answer({"objects": objects}, SIZE) == _general({"objects": objects}, SIZE)
