"""A batch of detection lines turned into numpy columns, checked as a whole.

``views._detection`` checks and builds a Python tuple per box; over a million lines that costs
more than parsing them. ``fastlane`` reads each line's boxes with ``map`` over ``itemgetter``
and ``dict.get`` (no Python bytecode per box) into a ``Side``; here a whole batch is checked at
once: every coordinate an ``int`` or ``float`` (never a ``bool``), below 2**26 in magnitude
(where ``vectorized``'s float64 arithmetic is exactly Python's), every class name hashable. A
batch that is not clean returns ``None`` and its lines are read one by one the usual way, so
what is counted (and every message) is unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import chain, repeat
from operator import itemgetter
from typing import Any

import numpy as np

from .vectorized import Boxes

_ID = itemgetter(0)
_XYWH = itemgetter(1, 2, 3, 4)
_NUMBER = frozenset({int, float})
#: coordinates must stay below this (exact float64 sums and products, as Python's int arithmetic)
LIMIT = float(1 << 26)


@dataclass
class Side:
    """One side's boxes as the lane read them, line after line: ``(class_id, x, y, w, h)`` as in
    the JSON, each line's class map, and boxes per line."""

    boxes: list[tuple] = field(default_factory=list)
    maps: list[dict] = field(default_factory=list)
    counts: list[int] = field(default_factory=list)


@dataclass
class Columns:
    dets: Boxes
    refs: Boxes
    #: per detection: its confidence (nan where there is none), as a float and as read (None then)
    confidence: np.ndarray
    raw_confidence: list[Any]


class ClassCodes:
    """Class names to small integers, kept across batches (``names[code]``)."""

    def __init__(self) -> None:
        self.names: list[str] = []
        self._code: dict[str, int] = {}

    def codes(self, names: list[Any], ids: list[Any]) -> np.ndarray:
        """Codes of the names a class map gave (``views._class_name``'s ``#id`` where it gave none)."""
        for n in set(names):  # TypeError for an unhashable name: the caller reads the batch line by line
            if not (type(n) is str and n):
                names = [n if type(n) is str and n else f"#{c}" for n, c in zip(names, ids, strict=True)]
                break
        code = self._code
        for n in set(names):
            if n not in code:
                code[n] = len(self.names)
                self.names.append(n)
        return np.fromiter(map(code.__getitem__, names), dtype=np.int64, count=len(names))


def _side(side: Side, codes: ClassCodes) -> Boxes | None:
    boxes = side.boxes
    raw = list(map(_XYWH, boxes))
    if not set(map(type, chain.from_iterable(raw))) <= _NUMBER:
        return None
    xywh = np.fromiter(chain.from_iterable(raw), dtype=np.float64, count=4 * len(raw)).reshape(len(raw), 4)
    if len(raw) and not np.abs(xywh).max() < LIMIT:
        return None
    ids = list(map(_ID, boxes))
    # views._class_name: the line's class map names the class id, else the class is #id
    names = list(map(dict.get, chain.from_iterable(map(repeat, side.maps, side.counts)), map(str, ids)))
    line = np.repeat(np.arange(len(side.counts), dtype=np.int64), side.counts)
    return Boxes(line, codes.codes(names, ids), xywh, raw)


def columns(pred: Side, ref: Side, confidence: list[Any], codes: ClassCodes) -> Columns | None:
    """The batch's boxes, or None when some line is not the common shape (read those one by one)."""
    try:
        dets = _side(pred, codes)
        refs = _side(ref, codes)
        if dets is None or refs is None:
            return None
        if set(map(type, confidence)) <= _NUMBER:
            conf = np.array(confidence, dtype=np.float64)
        else:  # some box without a (numeric) confidence: no score, never routed
            confidence = [c if type(c) in _NUMBER else None for c in confidence]
            conf = np.array([np.nan if c is None else c for c in confidence], dtype=np.float64)
    except (TypeError, OverflowError):  # an unhashable class name, a huge int
        return None
    return Columns(dets, refs, conf, confidence)
