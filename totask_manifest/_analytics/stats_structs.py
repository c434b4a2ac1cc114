"""The typed structs ``stats_fast`` decodes a bounding-box line into (its docstring says why
each field is typed): a box, an image size, a label value, a confidence object, a detection or
failed line's metadata, and that metadata with the literals learned; their lean forms, which
skip what no count reads (only where ``stats_lean.SkipProof`` holds); and the readers of them:
an attribute's getters, class ids' texts."""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from operator import attrgetter
from typing import Annotated, Any, Literal

import msgspec
from msgspec import UNSET, Struct, UnsetType, field

from .stats_facts import _INT64_MAX, _INT64_MIN

Int64 = Annotated[int, msgspec.Meta(ge=_INT64_MIN, le=_INT64_MAX)]
#: the detection types (``stats_facts.DETECTION_TYPES``, bare and with ``groundtruth/``)
DetectionType = Literal["object-detection", "groundtruth/object-detection"]
_Num = float | UnsetType
#: class ids whose text is remembered
ID_TEXT_CACHE = 4096


class _Box(Struct, forbid_unknown_fields=True, gc=False):
    class_id: Int64
    top: _Num = UNSET
    left: _Num = UNSET
    height: _Num = UNSET
    width: _Num = UNSET


class _Size(Struct, forbid_unknown_fields=True, gc=False):
    width: _Num = UNSET
    height: _Num = UNSET
    depth: _Num = UNSET


class _Label(Struct, forbid_unknown_fields=True, gc=False):
    """A bounding-box label value as Ground Truth writes it (no ``annotations``: no boxes, as in
    ``Counts.add``; a ``null`` one is refused and counted generically)."""

    image_size: list[_Size] | UnsetType = UNSET  # Ground Truth's order (see ``_Meta``)
    annotations: list[_Box] = []


class _Object(Struct, forbid_unknown_fields=True, gc=False):
    confidence: float


# --- lean: what the count never reads is skipped (only where ``stats_lean.SkipProof`` holds) ------

class _LeanBox(Struct, gc=False):
    """A box's class id; its other keys (``top``, ``left``...: no count reads them) skipped, not decoded."""

    class_id: Int64


class _LeanLabel(Struct, gc=False):
    """A bounding-box label's boxes; ``image_size`` and any other key skipped."""

    annotations: list[_LeanBox] = []


class _LeanObject(Struct, gc=False):
    """A confidence object's confidence; any other key skipped."""

    confidence: float


class _Meta(Struct, forbid_unknown_fields=True, gc=False):
    """A detection label's metadata, or a failed line's (any other ``type`` is refused).

    ``type`` and ``failure-reason`` tell absent from ``null`` (``UNSET``), as ``Counts.add``
    does (``"type" in meta``); ``human-annotated`` and ``job-name`` count ``null`` and absent
    alike, as it does; an absent ``objects`` or ``class-map`` counts as an empty one. Literal
    strings (``type``, ``human-annotated``: Ground Truth writes ``yes`` or ``no``) come back as
    the same objects every line, hashed once."""

    # fields in the order Ground Truth writes the keys: msgspec looks a key up from the field after
    # the last one found, so keys in field order match at the first comparison
    objects: list[_Object] = []
    class_map: dict[str, str] = field(default_factory=dict, name="class-map")
    type: DetectionType | UnsetType = UNSET
    human: Literal["yes", "no"] | None = field(default=None, name="human-annotated")
    created: str | UnsetType = field(default=UNSET, name="creation-date")
    job: str | None = field(default=None, name="job-name")
    failure_reason: str | UnsetType = field(default=UNSET, name="failure-reason")
    failure_rule: str | UnsetType = field(default=UNSET, name="failure-rule")


def _literal(values: Sequence[str]) -> Any:
    return Literal[tuple(values)] if values else str  # type: ignore[valid-type]


def _meta_type(jobs: Sequence[str], keys: Sequence[str], names: Sequence[str], *, lean: bool = False) -> Any:
    """``_Meta`` with the job names, class-map keys and class names seen so far as literals: msgspec
    hands back one string object per literal (no string made per line, its hash computed once),
    and a value not among them is refused, counted generically and learned (``FastPath.learn``).
    ``lean``: each confidence object's other keys skipped (the metadata's own keys never are: a
    key the fast path does not know, ``review-status``, changes the count)."""
    types = {"job": _literal(jobs) | None, "class_map": dict[_literal(keys), _literal(names)]}  # type: ignore[misc]
    if lean:
        types["objects"] = list[_LeanObject]
    fields = []
    for f in msgspec.structs.fields(_Meta):
        default = (field(default_factory=f.default_factory, name=f.encode_name) if f.default is msgspec.NODEFAULT
                   else field(default=f.default, name=f.encode_name))
        fields.append((f.name, types.get(f.name, f.type), default))
    return msgspec.defstruct("Meta", fields, forbid_unknown_fields=True, gc=False)


class _Getters:
    """One attribute's readers of a line struct, whose fields are ``meta`` (its metadata key's)
    and ``label``."""

    __slots__ = ("label", "meta")

    def __init__(self, meta: str, label: str) -> None:
        self.meta, self.label = attrgetter(meta), attrgetter(label)


class _IdText(dict):
    """``str(class_id)``, made once per id (a class map is looked up with it for every box)."""

    def __missing__(self, class_id: int) -> str:
        text = str(class_id)
        if len(self) < ID_TEXT_CACHE:
            self[class_id] = text
        return text

    def adopt(self, texts: Iterable[str]) -> None:
        """Hold these strings (class-map keys decoded as literals) as their ids' texts: a class map
        then finds a box's id text by identity, comparing no characters (0.1k instructions a line)."""
        for text in texts:
            try:
                class_id = int(text)
            except ValueError:  # not an id's text ("x", "²"); nor is "01", " 1" or "-0" (below)
                continue
            if str(class_id) == text and len(self) < ID_TEXT_CACHE:
                self[class_id] = text


_ID_TEXT = _IdText()
