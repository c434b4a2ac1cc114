"""What a COCO image and document hold besides boxes and masks, carried through a manifest.

Every real COCO file gives each image a ``license``, ``coco_url``, ``flickr_url`` and
``date_captured``, and the document an ``info`` and ``licenses``. An import left them all out of
the lines unsaid. An image's own keys now travel on its line under ``coco-image`` (a manifest
line may hold any key, which passes through jobs unchanged, as in Ground Truth), and the export
writes them back on the image. The document's own sections belong to no image, so no line
holds them: they travel on the first line (``coco_document``). Each image names its license by
its ``license`` id, and its line carries that entry too (``coco-image``'s ``licenses-entry``), so
the export writes each license once, back into ``licenses``, when that first line is gone.

Ids: a detections file (COCO results: ``image_id``, ``category_id``, ``bbox``, ``score``) names
images by the ground truth's ids, so an export that renumbered them (image ids as line numbers,
annotation ids from 1) made COCOeval of that file against the round-tripped ground truth evaluate
the wrong images, or none. The import keeps an image's id under ``coco-image`` (``id``) and an
annotation's in its box's ``objects`` entry (``coco-id``); the export writes them back where every
line holds one and no two are the same (``KeptIds``), and otherwise numbers them as before and
says so in one line: never some kept and some renumbered. A kept id that is no integer
(``"12"``, which a manifest of an earlier import may hold) is numbered too, counted in that
line: written back, it was refused by the import and by pycocotools (``formats.coco.is_coco_id``,
one rule). Category ids likewise: an import with ``--class-names`` numbers classes by name and
keeps a box's original category id where it is not its class id + 1 (``objects[i].coco-category-id``); the export writes them back where each class
is one category and each category one class, else every category id is class id + 1, said.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .._errors import ManifestError, json_kind, json_text
from .._formats.coco import (
    CATEGORY_OFFSET,
    COCO_CATEGORY_ID,
    COCO_ID,
    MAX_COCO_ID,
    coco_id_over_64_bits,
    is_coco_id,
)
from .._formats.model import FormatError
from .._lookalike import names_apart
from .mask_colors import BACKGROUND_CLASS, COLOR, CategoryColors, hex_to_rgb
from .one_id_a_name import IdsByName, where_met

#: the line key an import keeps a COCO image's other keys under, for the export to write back
COCO_IMAGE = "coco-image"
#: this tool's image key for a mask's class confidences no annotation carries (``masks``)
CLASS_CONFIDENCES = "class-confidences"
#: the image keys a conversion reads itself (``depth`` into the size, this tool's ``human-annotated``,
#: ``class-confidences`` and ``background-class``); the id is read and kept too, under ``coco-image``
#: (``KeptIds``)
IMAGE_KEYS_READ = frozenset({"id", "file_name", "width", "height", "depth", "human-annotated", CLASS_CONFIDENCES,
                             BACKGROUND_CLASS})
#: the image key kept under ``coco-image`` although the conversion reads it: the image's own id
IMAGE_ID = "id"
#: the sections of a COCO document that lines are made of; any other is the document's own
SECTIONS_READ = ("images", "annotations", "categories")
#: the ``coco-image`` key that holds the image's entry of the document's ``licenses``
LICENSE_ENTRY = "licenses-entry"


def _plain(value: Any) -> bool:
    return isinstance(value, int | float | str) and not isinstance(value, bool)


def licenses_by_id(doc: Mapping[str, Any]) -> dict[Any, Mapping[str, Any]] | None:
    """The document's ``licenses`` by id; ``None`` where there are none, or they cannot be told
    apart (not a list, an entry with no id, one id twice as two licenses): not carried, said."""
    entries = doc.get("licenses")
    if not isinstance(entries, list):
        return None
    out: dict[Any, Mapping[str, Any]] = {}
    for entry in entries:
        if not isinstance(entry, Mapping) or not _plain(entry.get("id")) or out.setdefault(entry["id"], entry) != entry:
            return None
    return out


def image_keys(image: Mapping[str, Any], licenses: Mapping[Any, Any] | None, key: str) -> dict[str, Any]:
    """The line's ``coco-image`` entry for a COCO image (at ``key``): its keys the conversion does
    not read, and the entry of ``licenses`` its ``license`` names (empty when it has none; the
    line then gets no ``coco-image``)."""
    if LICENSE_ENTRY in image:  # written back as the document's licenses, not as the image's key
        raise FormatError(f"image holds {LICENSE_ENTRY!r}, the key its line keeps its license under",
                          fmt="coco", key=f"{key}.{LICENSE_ENTRY}")
    carried = {k: v for k, v in image.items() if k not in IMAGE_KEYS_READ or k == IMAGE_ID}
    if licenses and _plain(image.get("license")) and image["license"] in licenses:
        carried[LICENSE_ENTRY] = licenses[image["license"]]
    return {COCO_IMAGE: carried} if carried else {}


def not_carried(doc: Mapping[str, Any], *, masks: bool = False) -> list[str]:
    """The lines an import says about the categories' keys a class-map cannot hold (the
    document's own sections travel on the first line: ``coco_document``); read as ``masks``, a
    category's ``color`` is its classes' ``hex-color`` (``mask_colors``)."""
    return _category_keys(doc.get("categories"), ("id", "name", COLOR) if masks else ("id", "name"))


def _category_keys(categories: Any, read: tuple[str, ...]) -> list[str]:
    """The line an import says about the categories' keys besides those it ``read`` (every
    official COCO file's ``supercategory``, a keypoint file's ``keypoints`` and ``skeleton``): a
    line's class-map holds a class's name alone, so they were left out unsaid."""
    held: dict[str, int] = {}
    for category in categories if isinstance(categories, list) else ():
        for key in category if isinstance(category, Mapping) else ():
            if key not in read:
                held[key] = held.get(key, 0) + 1
    if not held:
        return []
    keys = ", ".join(f"{k!r} ({n} categor{'y' if n == 1 else 'ies'})" for k, n in held.items())
    return [f"the categories' {keys} {'is' if len(held) == 1 else 'are'} not carried (a line's class-map holds a "
            "class's name alone; a COCO export writes each category's id and name)"]


def unnamed_categories(cats: Mapping[int, str], used: set[Any]) -> list[str]:
    """The line an import read as boxes says about categories no annotation names (``used``): a
    line's class-map names the classes of its boxes, so no line holds them."""
    unnamed = [f"{cid} ({name!r})" for cid, name in cats.items() if cid not in used]
    if not unnamed:
        return []
    one = len(unnamed) == 1
    return [f"the document's categor{'y' if one else 'ies'} {', '.join(unnamed)} {'is' if one else 'are'} not "
            f"carried: no annotation names {'it' if one else 'them'} (a line's class-map names its boxes' classes)"]


def carried_image_keys(record: Mapping[str, Any], image: Mapping[str, Any], line: int,
                       licenses: dict[Any, Any]) -> Mapping[str, Any]:
    """The image keys a COCO import kept on the line, to write back on ``image`` (the id aside:
    ``KeptIds`` writes it); its license entry goes into ``licenses`` (id -> entry). A key the
    export writes itself (a size, a file name) is refused naming the line: which of the two the
    image meant is nowhere said, and one would be lost unsaid."""
    carried = record.get(COCO_IMAGE)
    if carried is None:
        return {}
    if not isinstance(carried, Mapping):
        raise ManifestError(f"{COCO_IMAGE!r} must be an object of COCO image keys, got {json_kind(carried)}",
                            line=line, key=COCO_IMAGE, rule="coco-image")
    for key in carried:
        if key != IMAGE_ID and (key in image or key in IMAGE_KEYS_READ):
            raise ManifestError(f"{COCO_IMAGE!r} holds {key!r}, which the export writes itself (from the line's "
                                "label and source-ref); remove it from the line", line=line,
                                key=f"{COCO_IMAGE}.{key}", rule="coco-image")
    if LICENSE_ENTRY in carried:
        _take_license(carried, licenses, line)
    return {k: v for k, v in carried.items() if k not in (IMAGE_ID, LICENSE_ENTRY)}


def _take_license(carried: Mapping[str, Any], licenses: dict[Any, Any], line: int) -> None:
    """The line's license entry, into the document's ``licenses``: one id, one license."""
    entry, key = carried[LICENSE_ENTRY], f"{COCO_IMAGE}.{LICENSE_ENTRY}"
    if not isinstance(entry, Mapping) or not _plain(entry.get("id")):
        raise ManifestError(f"{key} must be a COCO license (an object with an 'id'), got {json_kind(entry)}",
                            line=line, key=key, rule="coco-image")
    if entry["id"] != carried.get("license"):
        raise ManifestError(f"{key} is license {entry['id']!r}, but the image's license is "
                            f"{carried.get('license')!r}", line=line, key=key, rule="coco-image")
    if licenses.setdefault(entry["id"], entry) != entry:
        raise ManifestError(f"{key} is license {entry['id']!r}, which an earlier line names otherwise; one id "
                            "names one license", line=line, key=key, rule="coco-image")


def _an_id(value: Any, key: str, what: str, line: int) -> Any:
    """``value`` (at ``key``), checked to be what an id was written as: a number or a string (an
    earlier import kept ``"12"``), else refused naming the line. One that is no integer
    (``formats.coco.is_coco_id``) is numbered (``KeptIds``), said; one over 64 bits is refused."""
    if value is None or _plain(value):
        _refuse_over_64_bits(value, key, f"{what} id", line, "coco-image")
        return value
    raise ManifestError(f"{key} must be a number or a string (the COCO {what}'s id), got {json_kind(value)}",
                        line=line, key=key, rule="coco-image")


def _refuse_over_64_bits(value: Any, key: str, what: str, line: int, rule: str) -> None:
    """Refuse (naming the line and ``key``) a kept id over ``MAX_COCO_ID``: 2**63 was written,
    exit 0, and the import (``formats.coco.refuse_id_over_64_bits``, the same bound) or a 64-bit
    reader (pycocotools' numpy arrays) refused the document; refused up front, as
    ``refuse_class_without_category`` refuses a class id with no category id."""
    if coco_id_over_64_bits(value):
        raise ManifestError(f"{key} is {value}, over {MAX_COCO_ID}: a COCO {what} is a signed 64-bit integer, as the "
                            "import and 64-bit COCO readers read every id; renumber it to "
                            f"{MAX_COCO_ID} or below first",
                            line=line, key=key, rule=rule)


class Renumber(Exception):
    """An export that wrote kept ids met a line that holds none, or one an earlier line held: it
    is written again, numbering that kind of id for the whole document (``KeptIds.without``)."""

    def __init__(self, kind: str, why: str) -> None:
        super().__init__(why)
        self.kind, self.why = kind, why


class KeptIds:
    """The ids one export writes: the kept ones (``coco-image.id``, ``objects[i].coco-id``) while
    every line so far holds one and each is new, else line numbers (images) and numbers from 1
    (annotations), each kind decided for the whole document; category ids likewise (the kept
    ``objects[i].coco-category-id`` while each class is one category and each category one
    class, else class id + 1). An export starts keeping all three; the first line that cannot
    raises ``Renumber`` and the export starts again without that kind."""

    KINDS = ("images", "annotations", "categories")

    def __init__(self, keep: Mapping[str, bool] | None = None, why: dict[str, str] | None = None) -> None:
        self.keep = {kind: True for kind in self.KINDS} | dict(keep or {})
        self.why = why or {}  # kind -> why it is numbered, for the note
        self.seen: dict[str, set] = {"images": set(), "annotations": set()}
        self.held = dict.fromkeys(self.KINDS, False)  # numbered, yet some line held one
        self.not_integer = dict.fromkeys(self.KINDS, 0)  # numbered, how many held ids are no integer
        self.category_of: dict[int, int] = {}  # class id -> its category id, while kept
        self.class_of: dict[int, int] = {}  # category id -> its class id

    def without(self, stop: Renumber) -> KeptIds:
        """The same export's ids, numbering ``stop.kind``."""
        return KeptIds({**self.keep, stop.kind: False}, {**self.why, stop.kind: stop.why})

    def _pick(self, kind: str, kept: Any, number: int, where: str) -> Any:
        if not self.keep[kind]:
            self.held[kind] |= kept is not None
            self.not_integer[kind] += kept is not None and not is_coco_id(kept)
            return number
        if kept is None:
            raise Renumber(kind, f"{where} holds none")
        if not is_coco_id(kept):
            raise Renumber(kind, f"{where} holds {json_text(kept)}, no integer (COCO ids are integers)")
        if kept in self.seen[kind]:
            raise Renumber(kind, f"{where} holds {kept!r}, as an earlier one does")
        self.seen[kind].add(kept)
        return kept

    def image(self, record: Mapping[str, Any], line: int) -> Any:
        """The image id of the line numbered ``line``."""
        carried = record.get(COCO_IMAGE)
        kept = carried.get(IMAGE_ID) if isinstance(carried, Mapping) else None
        kept = _an_id(kept, f"{COCO_IMAGE}.{IMAGE_ID}", "image", line)
        return self._pick("images", kept, line, f"line {line}'s {COCO_IMAGE}.{IMAGE_ID}")

    def annotation(self, obj: Mapping[str, Any], index: int, number: int, line: int, objects: str = "objects") -> Any:
        """The id of box ``index`` (its ``objects`` entry ``obj``) on line ``line``; ``number``
        where ids are numbered. ``objects``: the key of the line's list, as validate names it
        (``b-metadata.objects``), for a refusal."""
        kept = _an_id(obj.get(COCO_ID), f"{objects}[{index}].{COCO_ID}", "annotation", line)
        return self._pick("annotations", kept, number, f"line {line}'s objects[{index}].{COCO_ID}")

    def category(self, obj: Mapping[str, Any], index: int, class_id: int, line: int, objects: str = "objects") -> int:
        """The category id of box ``index`` (its ``objects`` entry ``obj``, of class ``class_id``);
        ``objects`` as ``annotation`` takes it."""
        kept = obj.get(COCO_CATEGORY_ID)
        if kept is not None and (not isinstance(kept, int) or isinstance(kept, bool) or kept < 0):
            raise ManifestError(f"objects[{index}].{COCO_CATEGORY_ID} must be a whole number of at least 0 (the "
                                f"COCO category id), got {kept!r}", line=line,
                                key=f"{objects}[{index}].{COCO_CATEGORY_ID}", rule="coco-category")
        _refuse_over_64_bits(kept, f"{objects}[{index}].{COCO_CATEGORY_ID}", "category id", line, "coco-category")
        number = class_id + CATEGORY_OFFSET
        if not self.keep["categories"]:
            self.held["categories"] |= kept is not None
            return number
        cat = number if kept is None else kept
        where = f"line {line}'s objects[{index}] is category {cat} of class {class_id}"
        if self.category_of.setdefault(class_id, cat) != cat:
            raise Renumber("categories", f"{where}, an earlier box of that class is {self.category_of[class_id]}")
        if self.class_of.setdefault(cat, class_id) != class_id:
            raise Renumber("categories", f"{where}, an earlier box's of class {self.class_of[cat]}")
        return cat

    def categories(self, cats: Mapping[int, str], colors: Mapping[int, str] | None = None) -> list[dict[str, Any]]:
        """The document's categories: ``cats`` (class id + 1 -> name, a mask's class index -> name),
        each id the kept one of its class where its boxes kept one; a mask's class its ``color``
        (``colors``: class index -> ``#rrggbb``)."""
        out: dict[int, dict[str, Any]] = {}
        for number, name in sorted(cats.items()):
            cat = self.category_of.get(number - CATEGORY_OFFSET, number) if self.keep["categories"] else number
            if cat in out:  # a class with no box here is numbered, and a kept id is its number
                raise Renumber("categories", f"category {cat} is kept for {out[cat]['name']!r} and is {name!r}'s "
                                             "class id + 1")
            color = (colors or {}).get(number)
            out[cat] = {"id": cat, "name": name, **({COLOR: hex_to_rgb(color)} if color else {})}
        return [out[cat] for cat in sorted(out)]

    def notes(self) -> list[str]:
        """One line per kind of id numbered although some line held one: never said where none did
        (a manifest that no COCO import wrote), never left unsaid where some were lost."""
        what = {"images": f"image ids are line numbers, not the kept {COCO_IMAGE}.{IMAGE_ID}",
                "annotations": f"annotation ids are numbered from 1, not the kept objects' {COCO_ID}",
                "categories": f"category ids are class id + 1, not the kept objects' {COCO_CATEGORY_ID}"}
        rule = {"images": "ids are kept only where every line holds one, an integer, and no two are the same",
                "categories": "category ids are kept only where each class is one category and each category one class"}
        lost = {"images": ": a detections file that names the original image ids does not match this document",
                "categories": ": a detections file that names the original category ids does not match this document"}
        return [f"{what[kind]} ({self.why[kind]}; {rule.get(kind, rule['images'])}){self._no_integers(kind)}"
                f"{lost.get(kind, '')}" for kind in self.KINDS if self.held[kind]]

    def _no_integers(self, kind: str) -> str:
        """How many of the kept ids of ``kind`` are no integer (numbered, so the output re-imports)."""
        n = self.not_integer[kind]
        return f"; {n} of the kept ids no integer, as COCO ids must be" if n else ""


class Categories:
    """The categories one export writes (``by_id``: category id -> name), merged line by line:
    one id, one name, and one name, one id (``one_id_a_name``: a COCO reader takes categories by
    name, so two of one name would merge or mislabel their boxes, with no error anywhere)."""

    def __init__(self) -> None:
        self.by_id: dict[int, str] = {}
        self.colors = CategoryColors()  # a mask's classes' colours (``mask_colors``)
        self._ids = IdsByName()

    def merge(self, class_map: Mapping[str, str], line: int, *, key: str, offset: int = 0) -> None:
        """Adds one line's classes (class id -> name, from its ``key``, named as validate names it:
        ``b-metadata.class-map``; category id = class id + ``offset``): an id named twice, or a
        name given two ids, is refused naming the line and the key."""
        for k, name in class_map.items():
            class_id = int(k)
            cid = class_id + offset
            if self.by_id.setdefault(cid, name) != name:
                here, there = names_apart(name, self.by_id[cid])
                raise ManifestError(
                    f"category id {cid} is {here} here but {there} on an earlier line; "
                    "COCO needs one name per category",
                    line=line,
                    key=key,
                    rule="coco-category",
                )
            if (other := self._ids.other(name, class_id, line)) is not None:
                raise ManifestError(_name_twice(name, (class_id, line), other, offset), line=line, key=key,
                                    rule="coco-category")


def _name_twice(name: str, here: tuple[int, int], first: tuple[Any, int], offset: int) -> str:
    """The refusal of ``name`` met as class id ``here`` (id, line) after ``first`` (id, line)."""

    def said(class_id: int) -> str:
        return f"class id {class_id} (category {class_id + offset})" if offset else f"class id {class_id}"

    return (f"{said(here[0])} is named {name!r}, as {said(first[0])} is {where_met(first[1], here[1])}; a COCO "
            "reader takes categories by name (pycocotools' getCatIds(catNms=...), trainers' class lists), so their "
            "boxes would be merged or mislabeled: give each class its own name; nothing was written")
