"""What a COCO image and document hold besides boxes and masks, carried through a manifest.

Every real COCO file gives each image a ``license``, ``coco_url``, ``flickr_url`` and
``date_captured``, and the document an ``info`` and ``licenses``. An import left them all out of
the lines unsaid. An image's own keys now travel on its line under ``coco-image`` (a manifest
line may hold any key, which passes through jobs unchanged, as in Ground Truth), and the export
writes them back on the image. The document's own sections belong to no image, so no line
holds them: the import says in one line that they are not carried.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .._errors import ManifestError, json_kind

#: the line key an import keeps a COCO image's other keys under, for the export to write back
COCO_IMAGE = "coco-image"
#: the image keys a conversion reads itself (``depth`` into the size, this tool's ``human-annotated``)
IMAGE_KEYS_READ = frozenset({"id", "file_name", "width", "height", "depth", "human-annotated"})
#: the sections of a COCO document that lines are made of; any other is the document's own
SECTIONS_READ = ("images", "annotations", "categories")


def image_keys(image: Mapping[str, Any]) -> dict[str, Any]:
    """The line's ``coco-image`` entry for a COCO image: its keys the conversion does not read
    (empty when it has none; the line then gets no ``coco-image``)."""
    carried = {k: v for k, v in image.items() if k not in IMAGE_KEYS_READ}
    return {COCO_IMAGE: carried} if carried else {}


def not_carried(doc: Mapping[str, Any]) -> list[str]:
    """The line an import says about the document's own sections (``info``, ``licenses``), which
    no line holds; none when the document has only images, annotations and categories."""
    sections = [k for k in doc if k not in SECTIONS_READ]
    if not sections:
        return []
    return [f"the document's {', '.join(map(repr, sections))} {'is' if len(sections) == 1 else 'are'} not carried "
            f"(a manifest line is one image; a COCO export writes an 'info' of its own); each image's own keys "
            f"are, under {COCO_IMAGE!r}"]


def carried_image_keys(record: Mapping[str, Any], image: Mapping[str, Any], line: int) -> Mapping[str, Any]:
    """The image keys a COCO import kept on the line, to write back on ``image``. A key the
    export writes itself (an id, a size) is refused naming the line: which of the two the image
    meant is nowhere said, and one would be lost unsaid."""
    carried = record.get(COCO_IMAGE)
    if carried is None:
        return {}
    if not isinstance(carried, Mapping):
        raise ManifestError(f"{COCO_IMAGE!r} must be an object of COCO image keys, got {json_kind(carried)}",
                            line=line, key=COCO_IMAGE, rule="coco-image")
    for key in carried:
        if key in image or key in IMAGE_KEYS_READ:
            raise ManifestError(f"{COCO_IMAGE!r} holds {key!r}, which the export writes itself (from the line's "
                                "label and source-ref); remove it from the line", line=line,
                                key=f"{COCO_IMAGE}.{key}", rule="coco-image")
    return carried
