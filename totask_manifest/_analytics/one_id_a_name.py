"""One class name, one id: the rule of every export whose readers take classes by name.

YOLO's ``classes.txt`` gives a name one line, so a name written for two ids reads back as one of
them; a COCO reader looks categories up by name (pycocotools' ``getCatIds(catNms=...)``, the
class lists trainers build from ``categories``), so two categories of one name are merged or
one is taken for the other. Either way boxes change class with no error anywhere. Both exports
refuse such a name at the line where its second id is met, naming the first id and its line
too: a class map ``{"0": "car", "3": "car"}``, or ``car`` as 0 on one line and 3 on another.

The first id of each name is a look-up, not a scan of the classes met so far: a scan made an
export of n classes take n squared steps.
"""

from __future__ import annotations

from collections.abc import Hashable


class IdsByName:
    """The first id each class name was met with, and the manifest line it was met on."""

    def __init__(self) -> None:
        self._first: dict[str, tuple[Hashable, int]] = {}

    def other(self, name: str, class_id: Hashable, line: int) -> tuple[Hashable, int] | None:
        """``name`` met as ``class_id`` on ``line``: the (id, line) it was first met with where
        that id is another, else None (the first meeting is kept)."""
        first = self._first.setdefault(name, (class_id, line))
        return None if first[0] == class_id else first


def where_met(first_line: int, line: int) -> str:
    """Where the first id was met, said from ``line``, the one the refusal names."""
    return "on this line" if first_line == line else f"on line {first_line}"
