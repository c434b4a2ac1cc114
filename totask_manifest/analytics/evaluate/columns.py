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
from itertools import chain
from typing import Any

import numpy as np

from .vectorized import Boxes

_NUMBER = frozenset({int, float})
#: coordinates must stay below this (exact float64 sums and products, as Python's int arithmetic)
LIMIT = float(1 << 26)


@dataclass
class Side:
    """One side's boxes as the lane read them, line after line: ``(x, y, w, h)`` as in the JSON,
    the class map's name for each (whatever it holds), the class id, and boxes per line."""

    raw: list[tuple] = field(default_factory=list)
    names: list[Any] = field(default_factory=list)
    ids: list[Any] = field(default_factory=list)
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


def _side(raw: list[tuple], names: list[Any], ids: list[Any], counts: list[int], codes: ClassCodes) -> Boxes | None:
    if not set(map(type, chain.from_iterable(raw))) <= _NUMBER:
        return None
    xywh = np.array(raw, dtype=np.float64).reshape(len(raw), 4)  # OverflowError: a huge int
    if len(raw) and not np.abs(xywh).max() < LIMIT:
        return None
    line = np.repeat(np.arange(len(counts), dtype=np.int64), counts)
    return Boxes(line, codes.codes(names, ids), xywh, raw)


def columns(pred: Side, ref: Side, confidence: list[Any], codes: ClassCodes) -> Columns | None:
    """The batch's boxes, or None when some line is not the common shape (read those one by one)."""
    try:
        dets = _side(pred.raw, pred.names, pred.ids, pred.counts, codes)
        refs = _side(ref.raw, ref.names, ref.ids, ref.counts, codes)
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
