"""One class name, one id: the rule of every export whose readers take classes by name.

YOLO's ``classes.txt`` gives a name one line, so a name written for two ids reads back as one of
them; a COCO reader looks categories up by name (pycocotools' ``getCatIds(catNms=...)``, the
class lists trainers build from ``categories``), so two categories of one name are merged or
one is taken for the other. Either way boxes change class with no error anywhere. Both exports
refuse such a name at the line where its second id is met, naming the first id and its line
too: a class map ``{"0": "car", "3": "car"}``, or ``car`` as 0 on one line and 3 on another.

The rule itself (``IdsByName``: the first id of each name, a look-up) is
``_formats.class_names``', which the COCO import and Ground Truth's reader with class names given
hold names to as well.
"""

from __future__ import annotations

from .._formats.class_names import IdsByName

__all__ = ["IdsByName", "where_met"]


def where_met(first_line: int, line: int) -> str:
    """Where the first id was met, said from ``line``, the one the refusal names."""
    return "on this line" if first_line == line else f"on line {first_line}"
