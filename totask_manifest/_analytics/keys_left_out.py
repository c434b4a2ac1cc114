"""The keys of a line a COCO, YOLO or task-data export has no place for, counted and said.

Those exports write one label attribute's boxes, classes and scores; the rest of a line (another
label attribute, ``annotation-ref``, an adjustment job's ``adjustment-status``, the ``synapse``
key) was left out with exit 0 and nothing said (a label's ``job-name`` and ``creation-date``, the
job's bookkeeping on every line, are left out unsaid).
No box, class or score of the attribute is lost, so they are not refused, but said in one line
naming the keys and the first line, with the way to keep every line whole (``--to parquet``).
The COCO bookkeeping a COCO import keeps (``coco-image``, ``coco-document``) is said apart
(``coco_left_out``), and a document kept as it is travels whole.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .._errors import agreeing, counted
from .._formats.coco import AREA, COCO_CATEGORY_ID, COCO_ID
from .._formats.model import DETECTION
from .._manifest.naming import METADATA_SUFFIX
from .._task_types import task_type_of_metadata
from .coco_document import COCO_DOCUMENT
from .coco_images import COCO_IMAGE

#: the summary's count: the lines holding keys the export left out
COUNT = "lines with other keys left out"
#: a line's keys every one of these exports carries, or says apart: the image, the COCO bookkeeping
_CARRIED_KEYS = frozenset({"source-ref", "source", COCO_IMAGE, COCO_DOCUMENT})
#: the metadata keys the exports read (classes, scores, the task type) or carry (``human-annotated``),
#: and the job bookkeeping every label holds (``job-name``, ``creation-date``): a note naming those
#: would come on every export of every real manifest, and be read past when it names what matters
_CARRIED_METADATA = frozenset({"objects", "class-map", "type", "human-annotated", "class-name", "confidence",
                               "confidence-map", "internal-color-map", "job-name", "creation-date"})
#: a bounding-box label's keys, a box's and an ``objects`` entry's that the exports write (the COCO
#: bookkeeping of an entry is said apart, ``coco_left_out``, or written back by a COCO export)
_LABEL_KEYS = frozenset({"image_size", "annotations"})
_BOX_KEYS = frozenset({"class_id", "left", "top", "width", "height"})
_OBJECT_KEYS = frozenset({"confidence", COCO_ID, AREA, COCO_CATEGORY_ID})
#: keys said at most: a manifest whose every line holds new keys is named by its first ones, and
#: the others counted ("and 9 more"): past twelve, keys were left out of the note unsaid (a
#: label's own extra keys, met after a line's top-level ones, went unnamed)
_MAX_NAMED = 12
#: distinct keys counted at most (memory: a manifest of ever-new keys); past it, "and more than N"
_MAX_COUNTED = 100_000


class LinesLeftOut:
    """The lines of one export in ``fmt`` holding keys it left out: how many, the first, the keys
    (each once, in the order met; the first ``_MAX_NAMED`` named, the others counted); ``COUNT``
    names the summary's count and ``said`` words the note (``{lines}``, ``{verb}``, ``{fmt}``, ``{keys}``,
    ``{first}``); ``verbs``: its verb for one line and for several ("1 line holds", "2 lines hold", by ``agreeing``)."""

    COUNT = ""
    said = ""
    verbs = ("", "")

    def __init__(self, fmt: str) -> None:
        self.fmt = fmt
        self.lines = self.first = 0
        self.keys: dict[str, None] = {}
        #: a key past ``_MAX_COUNTED`` was met: the count is a lower bound
        self.uncounted = False

    def found(self, line: int, keys: list[str]) -> None:
        if keys:
            self.lines += 1
            self.first = self.first or line
            if len(self.keys) < _MAX_COUNTED:
                self.keys.update(dict.fromkeys(keys))
            elif not self.uncounted:
                self.uncounted = any(k not in self.keys for k in keys)

    def named(self) -> str:
        """The keys as the note says them: the first ``_MAX_NAMED``, then how many more."""
        keys = list(self.keys)
        text = ", ".join(keys[:_MAX_NAMED])
        more = len(keys) - _MAX_NAMED
        if more > 0 or self.uncounted:
            text += f" and {'more than ' if self.uncounted else ''}{max(more, 0):,} more"
        return text

    def count(self, counts: dict[str, Any]) -> None:
        """Add the summary's count to ``counts`` (nothing when no line held any)."""
        if self.lines:
            counts[self.COUNT] = self.lines

    def notes(self) -> list[str]:
        if not self.lines:
            return []
        return [self.said.format(lines=counted(self.lines, "line"), verb=agreeing(self.lines, *self.verbs), fmt=self.fmt,
                                 keys=self.named(), first=self.first)]


class KeysLeftOut(LinesLeftOut):
    """The lines of one export of ``attribute`` holding keys its format ``fmt`` cannot hold.
    ``carried``: line keys this export writes beside the label (task data's ``synapse`` task id)."""

    COUNT = COUNT
    said = ("{lines} {verb} keys a {fmt} export has no place for ({keys}; first on line {first}), left out: "
            "convert --to parquet keeps every line whole")
    verbs = ("holds", "hold")

    def __init__(self, fmt: str, attribute: str, carried: frozenset[str] = frozenset()) -> None:
        super().__init__(fmt)
        self.own = _CARRIED_KEYS | carried | {attribute, attribute + METADATA_SUFFIX}
        self.meta_key = attribute + METADATA_SUFFIX

    def add(self, line: int, record: Mapping[str, Any], metadata: Mapping[str, Any] | None,
            value: Any = None) -> None:
        """``record`` is a written line, ``metadata`` its label's metadata, ``value`` its label as
        exported (a box label's own keys are looked at: ``_box_keys``)."""
        found = [k for k in record if k not in self.own]
        if isinstance(metadata, Mapping):
            found += [f"{self.meta_key}.{k}" for k in metadata if k not in _CARRIED_METADATA]
            if (task_type := task_type_of_metadata(metadata)) is not None and task_type.name == DETECTION:
                found += _box_keys(self.meta_key[: -len(METADATA_SUFFIX)], value, metadata)
        self.found(line, found)


def _box_keys(attribute: str, value: Any, metadata: Mapping[str, Any]) -> list[str]:
    """The keys of a bounding-box label, of its boxes and of their ``objects`` entries that no
    export writes (a box's ``rotation`` or ``occluded``, an entry's ``note``): each export wrote the
    box and left them out, unsaid. Each key is named once, as ``boxes.annotations[].rotation``."""
    found: dict[str, None] = {}
    if isinstance(value, Mapping):
        found.update((f"{attribute}.{k}", None) for k in value if k not in _LABEL_KEYS)
        for box in value.get("annotations") or () if isinstance(value.get("annotations"), list) else ():
            if isinstance(box, Mapping):
                found.update((f"{attribute}.annotations[].{k}", None) for k in box if k not in _BOX_KEYS)
    objects = metadata.get("objects")
    for entry in objects if isinstance(objects, list) else ():
        if isinstance(entry, Mapping):
            found.update((f"{attribute}{METADATA_SUFFIX}.objects[].{k}", None) for k in entry if k not in _OBJECT_KEYS)
    return list(found)
