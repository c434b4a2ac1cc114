"""The fast lane: the common detection line read with a few look-ups, its boxes left for a batch.

A line whose two sides are plain Ground Truth object-detection labels (no failure, a type
already seen to be object detection, an ``annotations`` list, a class map, one ``objects`` entry
per box) is all that a million-line evaluation usually holds. For it, the lane checks only that
shape and copies the boxes' values out with ``map`` (``columns.Side``); the parsed line is then
dropped at once, so the allocator reuses its memory for the next one (holding a batch of parsed
lines costs more than parsing them). ``columns`` and ``batch`` check and match the whole batch
at once. Anything else (blank, not JSON, failed, missing, another task type, an odd shape) is
read by the driver's ``record`` one line at a time, exactly as before; a line read that way
that reaches the detection evaluator first folds what the lane holds, and so does any such line
while the examples of lines counted apart are not all taken, so the file's order stays.
"""

from __future__ import annotations

import gc
from array import array
from collections.abc import Callable
from itertools import chain
from operator import itemgetter, methodcaller
from typing import Any

import orjson

from .batch import BatchedDetection
from .columns import Side, columns
from .views import _TYPE_NAMES, DETECTION, METADATA, _image_size

_XYWH = itemgetter("left", "top", "width", "height")
_CLASS_ID = itemgetter("class_id")  # a box without one is read line by line (its class is "#None")
_CONFIDENCE = methodcaller("get", "confidence")


class FastLane:
    """Reads batches of lines for one pass (``driver._Run``), holding the boxes of the detection
    lines it takes until the end of the batch."""

    def __init__(self, ev: Any, detection: BatchedDetection, line: Callable[[int, bytes], None],
                 record: Callable[[int, Any], None], max_examples: int) -> None:
        self.ev = ev
        self.detection = detection
        self.line = line
        self.record = record
        self.max_examples = max_examples
        self.keys = (ev.predicted, ev.predicted + METADATA, ev.reference, ev.reference + METADATA)
        self._reset()
        self.batch: list[bytes] = []
        self.base = 0  # the number of the line before the batch's first

    def _reset(self) -> None:
        self.pred, self.ref = Side(), Side()
        self.confidence = array("d")
        #: per line held: (number, predicted class map, boxes, reference class map, boxes)
        self.lines: list[tuple[int, dict, int, dict, int]] = []
        self.dirty = False

    def parsed(self, number: int) -> Any:
        """Line ``number`` of the current batch parsed again (a worst line, or a batch not clean)."""
        return orjson.loads(self.batch[number - self.base - 1])

    def feed(self, batch: list[bytes], number: int) -> int:
        """Read a batch of raw lines, the first numbered ``number + 1``; returns the last number."""
        self.batch, self.base = batch, number
        self.detection.before_add = self.flush
        collecting = gc.isenabled()
        gc.disable()  # parsed lines are trees of dicts: the collector would walk them for nothing
        try:
            number = self._read(batch, number)
            self.flush()
        finally:
            self.detection.before_add = None
            if collecting:
                gc.enable()
        return number

    def _read(self, batch: list[bytes], number: int) -> int:
        loads, decode_error = orjson.loads, orjson.JSONDecodeError
        pk, pmk, rk, rmk = self.keys
        types = _TYPE_NAMES
        known = len(types)
        detection = {t for t, name in types.items() if name == DETECTION}
        p_xywh, p_ids, r_xywh, r_ids, confidence, held = self._lists()
        joined = b"\n".join(batch)
        bools = b"true" in joined or b"false" in joined
        del joined
        examples, max_examples = self.ev.examples, self.max_examples
        for raw in batch:
            number += 1
            try:
                rec = loads(raw)
            except decode_error:
                self.line(number, raw)  # blank or not JSON: counted, never evaluated
                continue
            try:
                pm, rm = rec[pmk], rec[rmk]
                pa, ra = rec[pk]["annotations"], rec[rk]["annotations"]
                po, pc, rc = pm["objects"], pm["class-map"], rm["class-map"]
                common = type(pa) is list and type(ra) is list and type(po) is list and type(pc) is dict and \
                    type(rc) is dict and len(po) == len(pa) and "failure-reason" not in pm and \
                    "failure-reason" not in rm and "review-status" not in pm and "review-status" not in rm and \
                    pm["type"] in detection and rm["type"] in detection and \
                    _image_size(rec[pk]) == _image_size(rec[rk])  # the driver's rule (width, height); else it says why not
            except (KeyError, TypeError):
                common = False
            if common and bools and (b"true" in raw or b"false" in raw):
                common = False  # a bool is no number, yet array('d') would take it
            if not common:  # read the usual way
                if held and len(examples) < max_examples:
                    self.flush()  # lines held must give their examples first, should they need reading again
                self.record(number, rec)  # may flush too (a detection line): the lists are new then
                p_xywh, p_ids, r_xywh, r_ids, confidence, held = self._lists()
                if len(types) != known:
                    known = len(types)
                    detection.update(t for t, name in types.items() if name == DETECTION)
                continue
            try:
                p_xywh.extend(chain.from_iterable(map(_XYWH, pa)))  # TypeError: a value that is no number
                r_xywh.extend(chain.from_iterable(map(_XYWH, ra)))
                p_ids += map(_CLASS_ID, pa)
                r_ids += map(_CLASS_ID, ra)
                confidence.extend(map(_CONFIDENCE, po))
            except (KeyError, TypeError, AttributeError):
                self.dirty = True  # an odd box: the batch is read line by line after all
            held.append((number, pc, len(pa), rc, len(ra)))
        return number

    def _lists(self) -> tuple[list, ...]:
        p, r = self.pred, self.ref
        return p.xywh, p.ids, r.xywh, r.ids, self.confidence, self.lines

    def flush(self) -> None:
        """Evaluate the lines held, as a batch; lines that are not clean after all go the usual way."""
        if not self.lines:
            return
        pred, ref, confidence, lines, dirty = self.pred, self.ref, self.confidence, self.lines, self.dirty
        self._reset()
        numbers, pred.maps, pred.counts, ref.maps, ref.counts = zip(*lines, strict=True)
        cols = None if dirty else columns(pred, ref, confidence, self.detection.codes)
        if cols is None:
            for number in numbers:
                self.record(number, self.parsed(number))
            return
        self.detection.add_columns(cols, numbers, self.parsed)
        self.ev.evaluated += len(numbers)
