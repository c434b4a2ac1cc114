"""A batch of detection lines turned into numpy columns, checked as a whole.

``views._detection`` checks and builds a Python tuple per box; over a million lines that costs
more than parsing them. ``fastlane`` copies each line's coordinates and confidences straight
into ``array('d')`` (which takes ints and floats and refuses anything else but a bool, which the
lane keeps out) and its class ids into a list, with ``map`` over ``itemgetter`` (no Python
bytecode per box); here a whole batch is checked at once: every coordinate below 2**24 in
magnitude (where ``vectorized``'s float64 arithmetic is exactly Python's int arithmetic), every
class name hashable. A batch that is not clean returns ``None`` and its lines are read one by
one the usual way, so what is counted (and every message) is unchanged.
"""

from __future__ import annotations

from array import array
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import chain, repeat
from typing import Any

import numpy as np

from .vectorized import Boxes

#: coordinates must stay below this: float64 sums and products of them are exact, as Python's int
#: arithmetic is, so IoU and areas come out as ``coco`` computes them from the JSON's ints
LIMIT = float(1 << 24)


@dataclass
class Side:
    """One side's boxes as the lane read them, line after line: ``x, y, w, h`` as doubles (the
    lane lets no bool in), the class ids as in the JSON, each line's class map and box count."""

    xywh: array = field(default_factory=lambda: array("d"))
    ids: list[Any] = field(default_factory=list)
    maps: Sequence[dict] = ()
    counts: Sequence[int] = ()


@dataclass
class Columns:
    dets: Boxes
    refs: Boxes
    #: per detection: its confidence
    confidence: np.ndarray


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
    xywh = np.frombuffer(side.xywh, dtype=np.float64).reshape(-1, 4) if len(side.xywh) else np.zeros((0, 4))
    if len(xywh) != len(side.ids) or (len(xywh) and not np.abs(xywh).max() < LIMIT):
        return None
    ids = side.ids
    # views._class_name: the line's class map names the class id, else the class is #id
    names = list(map(dict.get, chain.from_iterable(map(repeat, side.maps, side.counts)), map(str, ids)))
    line = np.repeat(np.arange(len(side.counts), dtype=np.int64), side.counts)
    return Boxes(line, codes.codes(names, ids), xywh)


def columns(pred: Side, ref: Side, confidence: array, codes: ClassCodes) -> Columns | None:
    """The batch's boxes, or None when some line is not the common shape (read those one by one)."""
    try:
        dets = _side(pred, codes)
        refs = _side(ref, codes)
    except TypeError:  # an unhashable class name
        return None
    if dets is None or refs is None:
        return None
    conf = np.frombuffer(confidence, dtype=np.float64) if len(confidence) else np.zeros(0)
    if len(conf) != len(dets.line):
        return None
    return Columns(dets, refs, conf)
