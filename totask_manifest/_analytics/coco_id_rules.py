"""The ids of a COCO document an import reads are integers, as the COCO format and pycocotools
have them: an image's ``id``, an annotation's ``image_id`` and ``category_id``, a category's ``id``.

A string image id (``"id": "12"``) was taken as it was: its line kept ``"12"``, which the export
wrote back as a string that pycocotools' ``loadRes`` and COCOeval match against no integer id of
a detections file; a string ``category_id`` was read as the number, but said its category was
named by no annotation. Each is refused naming its place in the document and the rule (exit 1,
as other invalid input). So is an id over 2**63-1 (``formats.coco.MAX_COCO_ID``): orjson reads
integers up to 2**64-1, and an image id of 2**63+5 was imported, then its export refused it.
Where an id is missing, the import's own error names it later.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .._errors import json_text
from .._formats.coco import FMT, is_coco_id, refuse_id_over_64_bits
from .._formats.model import FormatError

#: (section, key, what the message calls it)
_IDS = (("images", "id", "image id"), ("annotations", "image_id", "image_id"),
        ("annotations", "category_id", "category_id"), ("categories", "id", "category id"))


def refuse_ids_that_are_no_integers(doc: Mapping[str, Any]) -> None:
    """Raise ``FormatError`` at the first id of ``doc`` that is given but is no integer, or one
    over 64 bits (``formats.coco.refuse_id_over_64_bits``: the export refuses such an id)."""
    for section, name, what in _IDS:
        entries = doc.get(section)
        for n, entry in enumerate(entries if isinstance(entries, list) else ()):
            if not isinstance(entry, Mapping) or entry.get(name) is None:
                continue
            value = entry[name]
            if is_coco_id(value):
                refuse_id_over_64_bits(value, what=what, key=f"{section}[{n}].{name}")
                continue
            hint = f": write it as {value.strip()}" if isinstance(value, str) and value.strip().isdigit() else ""
            raise FormatError(f"{what} {json_text(value)} is not an integer; COCO ids are integers (the COCO "
                              f"format, pycocotools){hint}", fmt=FMT, key=f"{section}[{n}].{name}")
