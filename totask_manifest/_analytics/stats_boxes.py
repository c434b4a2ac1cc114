"""The boxes of ``stats``' fast path (``stats_fast``): for labeled detection lines, counted
column by column, the boxes per image, each box's class id with the name its own line's class
map gives it, the class maps' pairs, the confidences and the boxes without one."""
from __future__ import annotations

from collections.abc import Sequence
from itertools import chain
from operator import mul, sub
from typing import Any

import numpy as np

from .stats_facts import small_counts
from .stats_structs import _ID_TEXT, ClassMap, ClassMaps, _Box, _Object

_POSITIVE = (0).__lt__


class BoxCount:
    """The counting of boxes, with what it keeps between slices: the pairs seen as a dict, and the
    class maps whose pairs a ``Counts`` already holds. ``class_maps``: the maps a lean slice's
    codes stand for."""

    def __init__(self, class_maps: ClassMaps) -> None:
        self.class_maps = class_maps
        #: ``(a Counts' raw_names set, its size, its pairs as a dict)``, the dict None where a key has
        #: two names (``_classes``)
        self._pairs: tuple[Any, int, dict | None] = (None, 0, None)
        #: a Counts' id -> (its raw_names set, the class maps whose pairs it holds)
        self._paired: dict[int, tuple[set, set[ClassMap]]] = {}

    def add(self, cols: Any, anns: list[list[_Box]], maps: list[Any], objects: Sequence[list[_Object]]) -> None:
        """The boxes, classes and confidences of labeled detection lines (one entry each). ``maps``:
        each line's class map, as ``ClassMaps.of`` gives them (codes, or ``ClassMap``), or a typed
        block's dicts.

        The fields are read by comprehensions, not ``map`` over ``attrgetter``: Python 3.11
        specializes a comprehension's ``box.class_id`` to a slot read, where ``attrgetter`` looks
        the name up on the type each time (ids 80 -> 60 ns a bench line, confidences 93 -> 72)."""
        boxes = _small(list(map(len, anns)))
        per_image_n = cols.per_image_n
        for n_boxes, n in small_counts(boxes):
            per_image_n[n_boxes] += n
        # numpy reads the box counts' bytes (``_named``, ``_unscored``); None where a line has 256 boxes or more
        per_line = np.frombuffer(boxes, np.uint8) if type(boxes) is bytes else None
        ids = _small([box.class_id for line in anns for box in line])
        self._classes(cols, ids, boxes, per_line, maps)
        scores = [o.confidence for line in objects for o in line]
        conf = np.fromiter(scores, np.float64, len(scores))
        cols.conf_arrays.append(conf)
        cols.unscored += _unscored(boxes, per_line, _small(list(map(len, objects))), len(ids), len(conf))

    def _classes(self, cols: Any, ids: Sequence[int], boxes: Sequence[int], per_line: np.ndarray | None,
                 maps: list[Any]) -> None:
        """Each box by its id and the name its own line's class map gives it (None where the map
        has none), and the class maps' pairs (each distinct map's once a batch).

        Why two ways: a ``(id, name)`` tuple per box, hashed and compared in a ``Counter``, was the
        dearest part of the count (about 2k instructions a box). When every box's id is a key of
        its own line's map and no key has two names among the pairs seen since the last flush, a
        box's name is the one its id's text has in those pairs: the ids are counted alone, and
        named once per distinct id. Otherwise (a key with two names, a box its map does not
        name), box by box."""
        raw = cols.raw_names
        coded = bool(maps) and type(maps[0]) is int  # a lean slice's map codes (``ClassMaps.of``)
        if coded:
            self._pair(cols, maps, self.class_maps.maps.__getitem__)
        elif maps and type(maps[0]) is ClassMap:  # maps past those remembered
            self._pair(cols, maps, _itself)
        else:  # a typed block's: a dict a line
            raw.update(chain.from_iterable(map(dict.items, maps)))
        names = None if coded and self._named(ids, per_line, maps) else self._names(ids, boxes, maps)
        if names is None or all(names):  # names are strings, None where a box's map does not name it ("" takes the slow way)
            known = self._pairs
            if known[0] is not raw or known[1] != len(raw):
                by_key = dict(raw)
                known = self._pairs = (raw, len(raw), by_key if len(by_key) == len(raw) else None)
            by_key = known[2]
            if by_key is not None:
                class_n = cols.class_n
                for class_id, n in small_counts(ids):
                    class_n[class_id, by_key[_ID_TEXT[class_id]]] += n
                return
        cols.class_n.update(zip(ids, self._names(ids, boxes, maps) if names is None else names, strict=True))

    def _names(self, ids: Sequence[int], boxes: Sequence[int], maps: list[Any]) -> list[str | None]:
        """The name each box's own line's map gives it, box by box."""
        if maps and type(maps[0]) is int:
            maps = list(map(self.class_maps.maps.__getitem__, maps))
        return list(map(dict.get, chain.from_iterable(map(mul, zip(maps), boxes)), map(_ID_TEXT.__getitem__, ids)))

    def _pair(self, cols: Any, maps: list[Any], class_map: Any) -> None:
        """The pairs of the maps (codes or ``ClassMap``) a ``Counts`` does not hold yet since its
        last flush."""
        raw = cols.raw_names
        paired = self._paired.get(id(cols))
        if paired is None or paired[0] is not raw:  # a flush began a new set of pairs
            paired = self._paired[id(cols)] = (raw, set())
        fresh = set(maps).difference(paired[1])
        if fresh:
            paired[1].update(fresh)
            raw.update(chain.from_iterable(class_map(m).pairs for m in fresh))

    def _named(self, ids: Sequence[int], per_line: np.ndarray | None, codes: list[int]) -> bool:
        """Whether each box's id is named by its own line's map (``ClassMaps.named``), in one numpy
        lookup; False where an id or a line's box count is outside a byte (then box by box)."""
        if per_line is None or type(ids) is not bytes:
            return False
        rows = _small(codes)
        line_codes = np.frombuffer(rows, np.uint8) if type(rows) is bytes else np.array(codes, np.intp)
        return bool(self.class_maps.named[np.repeat(line_codes, per_line), np.frombuffer(ids, np.uint8)].all())


def _itself(value: Any) -> Any:
    return value


def _small(values: list[int]) -> bytes | list[int]:
    """``values`` as bytes where each lies in 0-255, else the list as it is.

    Why: box counts and class ids are small; as bytes they are made once, read by numpy without a
    copy (``np.frombuffer``), counted by ``small_counts`` as they are and compared in C; a list
    turned into bytes for each of those cost some 340 instructions a bench line more."""
    try:
        return bytes(values)
    except ValueError:
        return values


def _unscored(boxes: Sequence[int], per_line: np.ndarray | None, objects: Sequence[int], n_boxes: int,
              n_objects: int) -> int:
    """Boxes beyond their line's objects list, which have no confidence: none where each line has
    as many objects as boxes (the rule, compared as bytes), the difference of the sums where no
    line has more objects than boxes. Compared in numpy over the counts' bytes (a ``map(sub)``
    and a ``min`` cost 620 instructions a bench line)."""
    if objects == boxes:
        return 0
    if per_line is None or type(objects) is not bytes:
        return sum(filter(_POSITIVE, map(sub, boxes, objects)))
    per_object = np.frombuffer(objects, np.uint8)
    if (per_object > per_line).any():
        return int(np.maximum(per_line.astype(np.int64) - per_object, 0).sum())
    return n_boxes - n_objects
