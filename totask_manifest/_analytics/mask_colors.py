"""A mask's class colours and its background's name, carried through COCO and back.

Ground Truth's verification and adjustment jobs draw a mask in its ``internal-color-map``'s
``hex-color`` entries, and a map names its background (class 0) as it likes (``BACKGROUND``,
``배경``). A COCO export wrote each category's id and name alone and the import painted the mask
in this tool's palette, class 0 ``BACKGROUND`` ``#ffffff``: ``#123456`` came back ``#2ca02c``, exit
0, nothing said. Now each category holds its ``color`` (``[r, g, b]``, the key COCO's panoptic
format defines; pycocotools ignores it) and an image whose background is not ``BACKGROUND``
``#ffffff`` holds ``background-class`` (``{"name", "color"}``, this tool's key; COCO tools ignore
it), and the import paints the mask in them. A colour comes back as ``#rrggbb``, lowercase.

A mask tells its classes apart by colour, so one colour names one class: a colour given to two
classes is refused, on the way out and on the way in.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .._errors import ManifestError, json_text
from .._formats.class_names import CLASS_NAME_RULE, class_name_problem
from .._formats.model import FormatError
from .._imaging import BACKGROUND_HEX, class_colors

#: this tool's image key for a background other than ``BACKGROUND`` ``#ffffff`` (class 0)
BACKGROUND_CLASS = "background-class"
#: the background's name where nothing names it, as Ground Truth writes it
BACKGROUND_NAME = "BACKGROUND"
#: the COCO category key of a class's colour (COCO panoptic's)
COLOR = "color"


def hex_to_rgb(hex_color: str) -> list[int]:
    """``#rrggbb`` (as ``masks.read_mask`` takes it: ``#`` and spaces optional) as ``[r, g, b]``;
    ``ValueError`` otherwise."""
    h = hex_color.strip().lstrip("#")
    if len(h) != 6:
        raise ValueError(hex_color)
    value = int(h, 16)
    return [value >> 16, (value >> 8) & 0xFF, value & 0xFF]


def rgb_to_hex(value: Any, key: str) -> str:
    """A COCO ``color`` (at ``key``) as ``#rrggbb``: three whole numbers 0..255, else refused."""
    if (not isinstance(value, list) or len(value) != 3
            or not all(isinstance(c, int) and not isinstance(c, bool) and 0 <= c <= 255 for c in value)):
        raise FormatError(f"a color must be [r, g, b], three whole numbers 0..255, got {json_text(value)}",
                          fmt="coco", key=key)
    return "#{:02x}{:02x}{:02x}".format(*value)


def category_colors(doc: Mapping[str, Any]) -> dict[int, str]:
    """Category id -> ``#rrggbb`` of the categories that hold a ``color`` (ids as
    ``formats.coco.categories_by_id`` read them); a colour two categories hold is refused."""
    out: dict[int, str] = {}
    owner: dict[str, int] = {}
    for i, cat in enumerate(doc.get("categories") or ()):
        if not isinstance(cat, Mapping) or COLOR not in cat:
            continue
        color = rgb_to_hex(cat[COLOR], f"categories[{i}].{COLOR}")
        if owner.setdefault(color, cat["id"]) != cat["id"]:
            raise FormatError(f"category {cat['id']}'s color {color} is also category {owner[color]}'s; a mask tells "
                              "its classes apart by colour, so one colour names one class", fmt="coco",
                              key=f"categories[{i}].{COLOR}")
        out[int(cat["id"])] = color
    return out


def background_of(image: Mapping[str, Any], key: str) -> tuple[str, str | None]:
    """The background's name and colour (``None``: not given) an image's ``background-class``
    holds (at ``key``), ``BACKGROUND`` where it holds none."""
    entry = image.get(BACKGROUND_CLASS)
    if entry is None:
        return BACKGROUND_NAME, None
    where = f"{key}.{BACKGROUND_CLASS}"
    if not isinstance(entry, Mapping) or "name" not in entry:
        raise FormatError(f"{BACKGROUND_CLASS} must be an object with a 'name' (and a 'color'), got "
                          f"{json_text(entry)}", fmt="coco", key=where)
    if (problem := class_name_problem(entry["name"])) is not None:
        raise FormatError(f"the background's name {problem}; {CLASS_NAME_RULE}", fmt="coco", key=f"{where}.name")
    color = rgb_to_hex(entry[COLOR], f"{where}.{COLOR}") if COLOR in entry else None
    return entry["name"], color


def background_entry(color_map: Mapping[str, Any]) -> dict[str, Any]:
    """The image keys a mask label's background (class 0 of ``color_map``, its colours checked by
    ``masks.read_mask``) needs to come back: none where it is ``BACKGROUND`` ``#ffffff``."""
    entry = color_map.get("0")
    if not isinstance(entry, Mapping):
        return {}
    name, color = entry.get("class-name", BACKGROUND_NAME), hex_to_rgb(entry["hex-color"])
    if name == BACKGROUND_NAME and color == hex_to_rgb(BACKGROUND_HEX):
        return {}
    return {BACKGROUND_CLASS: {"name": name, COLOR: color}}


def mask_palette(top: int, carried: Mapping[int, str]) -> list[str]:
    """Colours of class indices 0..``top``: the ``carried`` ones (index -> ``#rrggbb``, distinct),
    the others this tool's palette (``class_colors``) in order, less the colours carried."""
    used = set(carried.values())
    defaults = iter([c for c in class_colors(top + 1 + len(used)) if c not in used])
    return [carried[i] if i in carried else next(defaults) for i in range(top + 1)]


class CategoryColors:
    """The colours one export writes on its categories (``by_id``: category id -> ``#rrggbb``),
    merged line by line: one category, one colour, and one colour, one category (a mask tells its
    classes apart by colour; the import refuses a colour two categories hold)."""

    def __init__(self) -> None:
        self.by_id: dict[int, str] = {}
        self._owner: dict[str, tuple[int, int]] = {}  # colour -> (category id, line)

    def merge(self, color_map: Mapping[str, Any], line: int, where: str) -> None:
        """Adds one line's ``internal-color-map`` (class index -> ``hex-color``, checked by
        ``masks.read_mask``; ``where``: its key on the line, ``seg-ref-metadata.internal-color-map``,
        as a refusal names it): the background's colour is one of them, so a category may not take it."""
        for key, entry in color_map.items():
            cid, color = int(key), "#{:02x}{:02x}{:02x}".format(*hex_to_rgb(entry["hex-color"]))
            if (owner := self._owner.setdefault(color, (cid, line)))[0] != cid:
                there = "on this line" if owner[1] == line else f"on line {owner[1]}"
                raise ManifestError(f"class {cid} is {color}, as class {owner[0]} is {there}; a mask tells its "
                                    "classes apart by colour, so one colour names one class", line=line,
                                    key=f"{where}.{key}.hex-color", rule="coco-category")
            if cid and self.by_id.setdefault(cid, color) != color:
                raise ManifestError(f"class {cid} is {color} here but {self.by_id[cid]} on an earlier line; a COCO "
                                    "category holds one color", line=line, key=f"{where}.{key}.hex-color",
                                    rule="coco-category")
