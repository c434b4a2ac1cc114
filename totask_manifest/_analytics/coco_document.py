"""A COCO document's own sections (``info``, ``licenses``, any other besides the images,
annotations and categories lines are made of), carried through a manifest and written back.

An import said ``info`` and a license no image names were "not carried", and an export wrote
its own ``info`` and each license a line carried, in the order the lines first named them: a
round trip of ``licenses: [3, 1, 2]`` (images naming 1 then 3) came back ``[1, 3]``, its
``info`` replaced. Now the import keeps the sections as they are on the first line, under
``coco-document`` (a line may hold any key; jobs pass it through unchanged), and the export
writes them back, ``licenses`` in its own order and content; a license a line carries that the
list lacks (a line from another import) is added after them. A manifest merged from two imports
holds two different ``coco-document``: the first is written and the other said not carried.

Ground Truth allows a line's value 20,000 characters and a line 100,000 (``validate``'s
``attribute-too-long`` and ``line-too-long``): a document of 299 licenses imported with exit 0
into a manifest ``validate`` and ``annotate`` then refused. An import checks the first line
(``too_big``): where the sections pass either limit they are not stored and the import says so
in one line naming them, as before they travelled (each image's license entry still travels on
its line, ``coco-image``).

An export of lines a COCO import wrote (``coco-image``) none of which holds ``coco-document`` (the
first line left out: a subset, ``labeled``; or never stored) wrote this tool's ``info`` unsaid:
it now says so in one line (``DocumentSections.notes``). A document with no section of its own (no
``info``, no ``licenses``) is stored as ``coco-document: {}``, so its lossless round trip is not
said to have lost anything (a manifest imported before kept nothing there, and is still said).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from .._errors import ManifestError, counted, json_kind
from .._manifest.line import gt_json
from .._manifest.naming import MAX_ATTRIBUTE_CHARS, MAX_LINE_CHARS
from .coco_images import COCO_IMAGE, SECTIONS_READ

#: the line key an import keeps the document's own sections under (on its first line)
COCO_DOCUMENT = "coco-document"


def document_sections(doc: Mapping[str, Any]) -> dict[str, Any]:
    """The first line's ``coco-document`` entry, ``{}`` where the document has no section of its
    own: stored all the same, so that an export tells "there was nothing to keep" (a lossless round
    trip) from "the first line is not here, or its sections were not stored" (``notes``)."""
    return {COCO_DOCUMENT: {k: v for k, v in doc.items() if k not in SECTIONS_READ}}


def too_big(line: bytes, own: Mapping[str, Any]) -> list[str]:
    """The line an import says where the first line ``line`` (its ``coco-document`` entry ``own``)
    passes Ground Truth's limits: the sections then are not stored ([] where it keeps them; a
    document with none holds only ``{}``, which never made a line too long)."""
    if not own[COCO_DOCUMENT]:
        return []
    value = len(gt_json(own[COCO_DOCUMENT]).decode("utf-8"))
    chars = len(line.decode("utf-8").rstrip("\n"))
    if value <= MAX_ATTRIBUTE_CHARS and chars <= MAX_LINE_CHARS:
        return []
    why = (f"as the first line's {COCO_DOCUMENT!r} they are {value:,} characters, over the {MAX_ATTRIBUTE_CHARS:,} "
           "Ground Truth allows a value" if value > MAX_ATTRIBUTE_CHARS else
           f"with them the first line is {chars:,} characters, over the {MAX_LINE_CHARS:,} Ground Truth allows a line")
    names = ", ".join(repr(k) for k in own[COCO_DOCUMENT])
    return [f"the document's own sections ({names}) are not carried: {why} (each image's license travels on its "
            "line, and a COCO export writes them back as its licenses)"]


class DocumentSections:
    """The sections one export writes besides images, annotations and categories."""

    def __init__(self, info: Mapping[str, Any]) -> None:
        self.info = info  # this tool's, written where no line carries the document's
        self.kept: Mapping[str, Any] | None = None
        self.first = 0
        self.others: list[int] = []  # lines holding a different coco-document
        self.imported = 0  # the first line a COCO import wrote (it holds coco-image)

    def take(self, record: Mapping[str, Any], line: int, licenses: dict[Any, Any]) -> None:
        """Keep the first ``coco-document`` met, its licenses first in ``licenses`` (id -> entry,
        which the lines' entries then join: one id, one license); note a line holding another."""
        if not self.imported and COCO_IMAGE in record:
            self.imported = line
        carried = record.get(COCO_DOCUMENT)
        if carried is None:
            return
        if not isinstance(carried, Mapping) or any(k in SECTIONS_READ for k in carried):
            raise ManifestError(f"{COCO_DOCUMENT!r} must be an object of a COCO document's own sections (info, "
                                f"licenses...; not images, annotations or categories), got {json_kind(carried)}",
                                line=line, key=COCO_DOCUMENT, rule="coco-image")
        if self.kept is None:
            self.kept, self.first = carried, line
            earlier, kept = dict(licenses), self._licenses()
            for i, entry in earlier.items():
                if kept.get(i, entry) != entry:
                    raise ManifestError(f"{COCO_DOCUMENT}.licenses names license {i!r} otherwise than an earlier "
                                        "line's licenses-entry; one id names one license", line=line,
                                        key=f"{COCO_DOCUMENT}.licenses", rule="coco-image")
            licenses.clear()
            licenses.update(kept | earlier)
        elif carried != self.kept:
            self.others.append(line)

    def _licenses(self) -> dict[Any, Any]:
        """The kept ``licenses`` by id, in their order: the lines' entries are checked against them
        (one id, one license) and added after them."""
        kept = (self.kept or {}).get("licenses")
        if not isinstance(kept, list):
            return {}
        return {e["id"]: e for e in kept if isinstance(e, Mapping) and e.get("id") is not None}

    def sections(self, licenses: Mapping[Any, Any]) -> bytes:
        """The document's own sections as JSON members (``,"info":...``), written after the
        categories: the kept ones as they were, ``licenses`` followed by those only lines carry."""
        # ours only where no line holds the document's sections: a document without ``info`` (kept
        # as ``{}``, or with ``licenses`` alone) came back with this tool's, where its round trip
        # was to give it back as it was
        out: dict[str, Any] = {"info": self.info} if self.kept is None else {}
        out.update(self.kept or {})
        kept = out.get("licenses")
        if isinstance(kept, list):  # in its own order, entries it cannot key included
            have = {e.get("id") for e in kept if isinstance(e, Mapping)}
            out["licenses"] = kept + [e for i, e in licenses.items() if i not in have]
        elif licenses:
            out["licenses"] = list(licenses.values())
        return b"".join(b"," + orjson.dumps(k) + b":" + orjson.dumps(v) for k, v in out.items())

    def notes(self) -> list[str]:
        if self.kept is None and self.imported:
            return [f"no line holds {COCO_DOCUMENT!r}, where a COCO import keeps the document's own sections (info, "
                    f"licenses...) on its first line, though line {self.imported} holds {COCO_IMAGE!r}: that line is "
                    "not in this manifest (a subset, the labeled command) or its sections were not stored; 'info' is "
                    "this tool's and 'licenses' those the lines carry"]
        if not self.others:
            return []
        return [f"{counted(len(self.others), 'line')} (first: line {self.others[0]}) "
                f"{'holds' if len(self.others) == 1 else 'hold'} another {COCO_DOCUMENT!r} than "
                f"line {self.first}'s, which is written: theirs (another COCO import's info and licenses) are "
                "not carried"]
