"""What a cross-field rule reports: the ``Finding`` type and the table of rule ids.

Its own module so the rule families (``semantics`` for pairs and documents, ``dates`` for
``creation-date``) share one type and one table without importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Severity = Literal["error", "warning"]


@dataclass(frozen=True, slots=True)
class Finding:
    """``where`` is ``"label"``, ``"metadata"`` or ``""`` (the whole document); ``path`` goes below it."""

    where: str
    path: tuple[str | int, ...]
    rule: str
    message: str
    severity: Severity = "error"


#: rule id -> what it means; the messages of ``semantics`` and ``dates`` are built from these words
RULES: dict[str, str] = {
    "objects-count": "metadata objects must hold one entry per box in the label's annotations",
    "entities-count": "metadata entities must hold one confidence per entity in the label",
    "class-map-missing-class": "every class index the label uses must be a key of the class-map",
    "box-outside-image": "a box should lie within its image (0 <= left, left + width <= width; the same for top)",
    "entity-offsets": "an entity's startOffset must not exceed its endOffset",
    "entity-label-unknown": "an entity's label must be one of the label categories listed in labels",
    "creation-date-invalid": "creation-date must be a real date and time, written in ISO 8601",
    "dm-annotation-data-missing": "every DM annotation needs its annotationsData entry (same media, same id)",
    "dm-reference-unknown": "a relation or group must refer to an annotation of the same media",
    "dm-duplicate-id": "annotation ids must be unique within a media",
    "departure-job-name-prefix": "job-name lacks the 'labeling-job/' prefix built-in 2D task output carries",
    "departure-job-name-missing": "metadata has no job-name (labels not written by a labeling job)",
    "departure-type-spelling": "type is not spelled in lower case",
    "departure-creation-date-zone": "creation-date carries the older '+0000' zone form (no colon in the offset)",
    "departure-creation-date-javascript": "creation-date is a JavaScript date string (Date.toString, toUTCString)",
    "departure-creation-date-space": "creation-date separates date and time with a space, not 'T'",
    "departure-class-map-spelling": "the class map is spelled 'class_map' (the guide's example) not 'class-map'",
    "departure-type-mismatch": "the type names a task whose label is inline, but the value is a file reference",
    "departure-ref-suffix": "a video frame attribute without '-ref'",
}
