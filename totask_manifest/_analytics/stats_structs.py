"""The typed structs ``stats_fast`` decodes a bounding-box line into (its docstring says why
each field is typed): a box, an image size, a label value, a confidence object, a detection or
failed line's metadata, and that metadata with the job names learned; their lean forms, which
skip what no count reads (only where ``stats_lean.SkipProof`` holds); and the readers of them:
an attribute's getters, class ids' texts, class maps read once per distinct text."""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from operator import attrgetter
from typing import Annotated, Any, Literal

import msgspec
import numpy as np
import orjson
from msgspec import UNSET, Raw, Struct, UnsetType, field

from .stats_facts import _INT64_MAX, _INT64_MIN

Int64 = Annotated[int, msgspec.Meta(ge=_INT64_MIN, le=_INT64_MAX)]
#: the detection types (``stats_facts.DETECTION_TYPES``, bare and with ``groundtruth/``)
DetectionType = Literal["object-detection", "groundtruth/object-detection"]
_Num = float | UnsetType
#: class ids whose text is remembered
ID_TEXT_CACHE = 4096
#: distinct class-map texts whose map is remembered (``ClassMaps``), and their bytes at most: a
#: map holds some seven times its text's bytes in objects, so memory stays bounded whatever the maps
CLASS_MAP_CACHE = 4096
CLASS_MAP_BYTES = 1 << 20
#: an absent ``class-map``: an empty one, as ``Counts.add`` counts it
NO_CLASS_MAP = Raw(b"{}")


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
    the same objects every line, hashed once. ``class-map`` is typed here; the lean form keeps
    its JSON text (``Raw``), read by orjson once per distinct text (``ClassMaps``): a manifest's
    lines repeat a few maps, and a dict built and freed a line, then its pairs hashed a line, cost
    some 250 ns a bench line. Only the lean form may: msgspec keeps a ``Raw`` as laxly as it skips
    (invalid UTF-8, ``1e999``), and the first of two ``class-map`` keys never reaches orjson,
    which ``stats_lean.SkipProof`` rules out for a lean block and nothing does for a typed one."""

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


def _meta_type(jobs: Sequence[str], *, lean: bool = False) -> Any:
    """``_Meta`` with the job names seen so far as literals: msgspec hands back one string object
    per literal (no string made per line, its hash computed once), and a value not among them is
    refused, counted generically and learned (``FastPath.learn``). ``lean``: each confidence
    object's other keys skipped (the metadata's own keys never are: a key the fast path does not
    know, ``review-status``, changes the count), and the class map kept as its text."""
    types = {"job": _literal(jobs) | None}  # type: ignore[misc]
    if lean:
        types |= {"objects": list[_LeanObject], "class_map": Raw}
    fields = []
    for f in msgspec.structs.fields(_Meta):
        default = (field(default=NO_CLASS_MAP, name=f.encode_name) if lean and f.name == "class_map"
                   else field(default_factory=f.default_factory, name=f.encode_name) if f.default is msgspec.NODEFAULT
                   else field(default=f.default, name=f.encode_name))
        fields.append((f.name, types.get(f.name, f.type), default))
    return msgspec.defstruct("Meta", fields, forbid_unknown_fields=True, gc=False)


class ClassMap(dict):
    """A class map as ``Counts.add`` reads it (orjson's dict of its text, every name a string),
    with its ``(key, name)`` pairs; hashed by identity, one object per distinct text."""

    __slots__ = ("pairs",)
    __hash__ = object.__hash__  # type: ignore[assignment]

    def __init__(self, value: dict[str, str]) -> None:
        super().__init__(value)
        self.pairs = tuple(value.items())


class ClassMaps:
    """Class-map texts (the lean ``_Meta.class_map``) -> their ``ClassMap``, or None for one the
    fast path does not count (not an object, a name that is not a string: the generic count names
    it by its JSON text). orjson reads each text, as it reads a whole line: a JSON value read alone
    reads as it does inside its line, and ``stats_lean.SkipProof`` leaves no text orjson refuses.

    A map remembered has a code: its place in ``maps`` and its row of ``named``, which says the ids
    0-255 it names (the id's text a key, the name not empty), so that a slice's boxes are checked
    against their own line's map in one numpy lookup (``stats_boxes``), not a dict lookup a box
    (2.1k instructions a bench line)."""

    def __init__(self) -> None:
        self._code_by_text: dict[bytes, int] = {}
        self.maps: list[ClassMap] = []
        self.named = np.zeros((64, 256), np.bool_)
        self._held = 0  # bytes of the texts remembered
        #: whether the last ``of`` met a map the fast path does not count (a None among its maps)
        self.refused = False

    def of(self, raws: Iterable[Raw]) -> list[Any]:
        """Each text's map: its code where every map of these is remembered (a copy of the text
        and a lookup a line, each distinct map read once), else the maps (``ClassMap`` or None)."""
        texts = list(map(bytes, raws))
        try:
            codes = list(map(self._code_by_text.__getitem__, texts))
        except KeyError:
            found = list(map(self._read, texts))
            self.refused = any(m is None for m in found)
            if all(type(m) is int for m in found):
                return found
            return [self.maps[m] if type(m) is int else m for m in found]
        self.refused = False
        return codes

    def _read(self, text: bytes) -> int | ClassMap | None:
        """A text's code, or its map where it is not remembered, or None."""
        known = self._code_by_text.get(text)
        if known is not None:
            return known
        try:
            value = orjson.loads(text)
        except orjson.JSONDecodeError:
            return None
        if type(value) is not dict or not all(type(name) is str for name in value.values()):
            return None
        read = ClassMap(value)
        if len(self.maps) >= CLASS_MAP_CACHE or self._held + len(text) > CLASS_MAP_BYTES:
            return read
        code = self._code_by_text[text] = len(self.maps)
        self.maps.append(read)
        self._held += len(text)
        if code >= len(self.named):
            self.named = np.concatenate([self.named, np.zeros_like(self.named)])
        for key, name in value.items():
            try:
                class_id = int(key)
            except ValueError:
                continue
            if name and 0 <= class_id < 256 and str(class_id) == key:  # as ``_ID_TEXT`` writes the id
                self.named[code, class_id] = True
        return code


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


_ID_TEXT = _IdText()
