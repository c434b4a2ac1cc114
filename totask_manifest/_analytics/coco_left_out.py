"""The COCO bookkeeping a YOLO or task-data export leaves out, counted and said.

A COCO import keeps, on each line, what only a COCO document has a place for: the document's own
sections (``coco-document``, first line), the image's own keys and id (``coco-image``), each box's annotation id (``coco-id``), an ``area`` other than the
box's and a ``coco-category-id`` (``objects`` entries). A COCO export writes them back; YOLO and
Synapse task data have no field for any of them, so those exports left them out with exit 0 and
nothing said. They are bookkeeping, not labels (no box, class or score is lost), so they are
left out as YOLO's unwritten confidences are: counted in the summary (``COUNT``) and said in
one line naming the keys and the first line, not refused. An unlabeled line is not written
either, but the document's sections it holds (an unlabeled first line) belong to no image: it
is counted too (``unlabeled``); it was left out unsaid.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .._formats.coco import AREA, COCO_CATEGORY_ID, COCO_ID
from .._manifest.line import Line
from .coco_document import COCO_DOCUMENT
from .coco_images import COCO_IMAGE
from .keys_left_out import LinesLeftOut

#: the summary's count: the lines whose COCO bookkeeping the export left out
COUNT = "lines with COCO keys left out"
#: the keys of a box's ``objects`` entry that only a COCO export writes back
_OBJECT_KEYS = (COCO_ID, AREA, COCO_CATEGORY_ID)


class CocoKeysLeftOut(LinesLeftOut):
    """The lines of one export that carry COCO bookkeeping its format cannot hold."""

    COUNT = COUNT
    said = ("{lines} {verb} COCO keys a {fmt} export has no place for ({keys}; first on line {first}), "
            "left out: boxes, classes and scores are all written; convert --to coco writes them back")
    verbs = ("carries", "carry")

    def add(self, line: int, record: Mapping[str, Any], metadata: Mapping[str, Any] | None) -> None:
        """``record`` is the manifest line, ``metadata`` its label's metadata (``None``: none)."""
        found = [k for k in (COCO_DOCUMENT, COCO_IMAGE) if k in record and record[k] != {}]  # {}: nothing to keep
        objects = metadata.get("objects") if isinstance(metadata, Mapping) else None
        for obj in objects if isinstance(objects, list) else ():
            if isinstance(obj, Mapping):
                found += [k for k in _OBJECT_KEYS if k in obj and k not in found]
        self.found(line, found)

    def unlabeled(self, line: Line) -> None:
        """An unlabeled line, which the export does not write: counted where it holds ``coco-document``."""
        if not line.is_blank and COCO_DOCUMENT.encode() in line.body and line.record().get(COCO_DOCUMENT, {}) != {}:
            self.add(line.number, {COCO_DOCUMENT: None}, None)
