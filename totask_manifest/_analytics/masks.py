"""Semantic segmentation masks: Ground Truth colour PNGs <-> class-index arrays <-> COCO RLE/polygons.

Ground Truth writes a mask as a PNG whose colours are the ``hex-color`` entries of
``internal-color-map`` (index 0 = BACKGROUND, white). Reading maps each colour back to its class
index; writing makes a palette PNG (colours for people, indices for programs). COCO holds one
class's pixels as RLE (column-major run lengths starting with a run of zeros; ``counts`` either
a list or pycocotools' compressed string) or as polygons, painted as pycocotools paints them
(``coco_polygons``). A COCO image of a mask label, and a COCO image's annotations painted into
one mask, are here too (``coco_dataset`` converts whole documents).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .._errors import ManifestError, StorageError, StoreRefusedError
from .._fetch import resolve_reference
from .._formats.class_names import CLASS_NAME_RULE, class_name_problem
from .._formats.model import FormatError
from .._imaging import mask_png
from .._outcomes import Labeled
from .._storage import read_bytes, redact_secret_url, write_bytes_atomic
from .coco_images import CLASS_CONFIDENCES, Categories
from .coco_polygons import polygons_to_mask
from .labels import metadata_key
from .mask_colors import BACKGROUND_CLASS, background_entry, background_of, hex_to_rgb, mask_palette

#: the metadata key of a mask label's classes and colours
COLOR_MAP = "internal-color-map"


def _hex_to_int(h: str) -> int:
    r, g, b = hex_to_rgb(h)
    return (r << 16) | (g << 8) | b


def read_mask(url: str, color_map: Mapping[str, Any], *, line: int | None = None, data: bytes | None = None,
              key: str = COLOR_MAP) -> np.ndarray:
    """Class index per pixel (uint8) of the mask at ``url`` (or its bytes ``data``, fetched by the
    caller under its policy), colours resolved by ``color_map``, which the line holds under ``key``
    (``seg-ref-metadata.internal-color-map`` where the attribute is known, the key a refusal names)."""
    return mask_from_bytes(read_bytes(url) if data is None else data, color_map, url=url, line=line, key=key)


def mask_from_bytes(data: bytes, color_map: Mapping[str, Any], *, url: str = "mask",
                    line: int | None = None, key: str = COLOR_MAP, what: str = "mask",
                    ref_key: str | None = None) -> np.ndarray:
    """``read_mask`` for bytes already fetched (evaluate fetches through the fetch policy). ``what``
    and ``ref_key`` (the line's key holding the mask) name it where a line holds two: evaluate's
    ``cannot read predicted mask``, at ``p-ref``; ``cannot read mask ...`` did not say which side."""
    from .._imaging import DEFAULT_MAX_IMAGE_PIXELS, ImageError, decode_image

    shown = redact_secret_url(url)  # a presigned mask URL: the errors name it without its signature
    try:  # under the pixel budget: a mask is a PNG and cannot be reduced, so a larger one is refused
        img, _info = decode_image(data, max_pixels=DEFAULT_MAX_IMAGE_PIXELS, exact=True)
        rgb = np.asarray(img, dtype=np.uint32)  # 8-bit RGB: a 16-bit grey mask read exactly or refused
    except ImageError as exc:
        raise ManifestError(f"cannot read {what} {shown}: {exc.reason}", line=line, key=ref_key, rule="mask") from None
    except (OSError, ValueError) as exc:
        raise ManifestError(f"cannot read {what} {shown}: {exc}", line=line, key=ref_key, rule="mask") from None
    packed = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
    lookup = _classes_by_color(color_map, line, key)
    colors, inverse = np.unique(packed, return_inverse=True)
    unknown = [f"#{int(c):06x}" for c in colors if int(c) not in lookup]
    if unknown:
        raise ManifestError(f"mask {shown} has colours missing from {key}: {', '.join(unknown[:5])}",
                            line=line, key=key, rule="mask")
    index = np.array([lookup[int(c)] for c in colors], dtype=np.uint8)
    return index[inverse].reshape(packed.shape)


def _classes_by_color(color_map: Mapping[str, Any], line: int | None, where: str) -> dict[int, int]:
    """Colour (``0xrrggbb``) -> class index of an ``internal-color-map`` (the line's key ``where``).
    A colour two classes hold is refused: its pixels were read as the last of them, the other
    class lost unsaid."""
    lookup: dict[int, int] = {}
    for key, entry in color_map.items():
        try:
            color, cid = _hex_to_int(entry["hex-color"]), int(key)
        except (KeyError, TypeError, ValueError, AttributeError):
            raise ManifestError(f"color map entry {key!r} needs a class index and a 'hex-color' '#rrggbb'",
                                line=line, key=where, rule="mask") from None
        if lookup.setdefault(color, cid) != cid:
            raise ManifestError(f"classes {lookup[color]} and {cid} are both #{color:06x}; a mask tells its classes "
                                "apart by colour, so one colour names one class", line=line,
                                key=f"{where}.{key}.hex-color", rule="mask")
    return lookup


# --- COCO RLE -------------------------------------------------------------------------------------

def rle_encode(binary: np.ndarray) -> dict:
    """Uncompressed COCO RLE of a boolean mask (column-major, first run counts zeros)."""
    h, w = binary.shape
    flat = np.asarray(binary, dtype=bool).flatten(order="F")
    changes = np.flatnonzero(np.diff(flat.astype(np.int8))) + 1
    bounds = np.concatenate(([0], changes, [flat.size]))
    counts = np.diff(bounds).tolist()
    if flat.size and flat[0]:
        counts = [0, *counts]
    return {"counts": [int(c) for c in counts], "size": [int(h), int(w)]}


def rle_string_to_counts(s: str) -> list[int]:
    """pycocotools' compressed ``counts`` string (LEB128-like, 6 bits a char) to run lengths."""
    counts: list[int] = []
    p = 0
    while p < len(s):
        x, k, more = 0, 0, True
        while more:
            c = ord(s[p]) - 48
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p += 1
            k += 1
            if not more and (c & 0x10):
                x |= -1 << (5 * k)
        if len(counts) > 2:
            x += counts[-2]
        counts.append(x)
    return counts


def counts_to_rle_string(counts: Sequence[int]) -> str:
    """The inverse of ``rle_string_to_counts`` (what pycocotools writes)."""
    out = []
    for i, x in enumerate(counts):
        if i > 2:
            x -= counts[i - 2]
        more = True
        while more:
            c = x & 0x1F
            x >>= 5
            more = (x != -1) if (c & 0x10) else (x != 0)
            if more:
                c |= 0x20
            out.append(chr(c + 48))
    return "".join(out)


def rle_decode(rle: Mapping[str, Any]) -> np.ndarray:
    h, w = (int(v) for v in rle["size"])
    counts = rle["counts"]
    if isinstance(counts, bytes):
        counts = counts.decode("ascii")
    if isinstance(counts, str):
        counts = rle_string_to_counts(counts)
    flat = np.zeros(h * w, dtype=bool)
    pos, val = 0, False
    for c in counts:
        c = int(c)
        if c < 0 or pos + c > flat.size:
            raise ValueError("RLE counts do not fit the mask size")
        if val:
            flat[pos : pos + c] = True
        pos += c
        val = not val
    return flat.reshape((h, w), order="F")


def segmentation_to_mask(seg: Any, width: int, height: int) -> np.ndarray:
    """A COCO ``segmentation`` (polygon list or RLE) as a boolean mask of ``height x width``."""
    if isinstance(seg, list):
        return polygons_to_mask(seg, width, height)
    if isinstance(seg, Mapping) and "counts" in seg:
        mask = rle_decode({"size": seg.get("size", [height, width]), "counts": seg["counts"]})
        if mask.shape != (height, width):
            raise ValueError(f"RLE size {list(mask.shape)} differs from the image ({height}x{width})")
        return mask
    raise ValueError("segmentation must be a polygon list or an RLE object")


def bbox_of(binary: np.ndarray) -> list[int]:
    ys, xs = np.nonzero(binary)
    if not len(xs):
        return [0, 0, 0, 0]
    return [int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1)]


# --- COCO images of masks -------------------------------------------------------------------------

def coco_mask_image(
    label: Any, line: int, image_id: Any, first_id: int, cats: Categories, base: str, file_name: str
) -> dict:
    """One COCO image of a mask label: one uncompressed-RLE annotation per class present (0, the
    background, gets none), its categories merged into ``cats`` (a dataset export's)."""
    color_map = label.metadata.get(COLOR_MAP)
    key = metadata_key(label.attribute, COLOR_MAP)  # as validate names it: seg-ref-metadata.internal-color-map
    if not isinstance(color_map, Mapping) or not isinstance(label.value, str):
        raise ManifestError(
            f"a mask label needs a URL value and a {key!r}",
            line=line,
            key=label.attribute,
            rule="coco-mask",
        )
    where, data = _mask_bytes(label, line, base)
    mask = read_mask(where, color_map, line=line, data=data, key=key)
    height, width = mask.shape
    names = {int(k): v.get("class-name", str(k)) for k, v in color_map.items()}
    for cid, name in names.items():  # the one rule of class names: a box's "   " is refused too
        if (problem := class_name_problem(name)) is not None:
            raise ManifestError(f"class id {cid} has an empty name in {key}: its name {problem}; "
                                f"{CLASS_NAME_RULE}", line=line, key=f"{key}.{cid}.class-name",
                                rule="coco-mask")
    cats.merge({str(k): v for k, v in names.items() if k != 0}, line, key=key)
    cats.colors.merge(color_map, line, key)  # read_mask checked each colour
    anns = []
    for cid in sorted(int(c) for c in np.unique(mask) if c != 0):
        binary = mask == cid
        conf = color_map.get(str(cid), {}).get("confidence")
        anns.append(
            {
                "id": first_id + len(anns),
                "image_id": image_id,
                "category_id": cid,
                "segmentation": rle_encode(binary),
                "area": int(binary.sum()),
                "bbox": bbox_of(binary),
                "iscrowd": 0,
                **({"score": conf} if isinstance(conf, int | float) else {}),
            }
        )
    image: dict[str, Any] = {"id": image_id, "width": width, "height": height, "file_name": file_name,
                             **background_entry(color_map)}
    if unplaced := _unplaced_confidences(color_map, {a["category_id"] for a in anns}):
        image[CLASS_CONFIDENCES] = unplaced
    return {"images": [image], "annotations": anns}


def _mask_bytes(label: Any, line: int, base: str) -> tuple[str, bytes]:
    """The label's mask (its URL and bytes), resolved as its ``source-ref`` is (``base``:
    ``labels.references_base``): one that cannot be read names the line, the key and the folder
    a relative reference was read against (it said only ``no such file: PATH``, exit 2). A store
    that refuses (no credentials, access denied) is named at the line and key too, and stays a
    ``StoreRefusedError``, exit 2, as for an input URL: a script retrying on 2 sees the same case."""
    from .labels import read_against

    where = resolve_reference(label.value, base)
    try:
        return where, read_bytes(where)
    except StoreRefusedError as exc:  # no credentials, access denied: the environment's (exit 2), as for any URL
        raise StoreRefusedError(f"line {line}, key {label.attribute!r}: {exc}") from None
    except StorageError as exc:  # a missing mask: the line's reference (exit 1)
        raise ManifestError(f"{exc}{read_against(label.attribute, label.value, where, base)}",
                            line=line, key=label.attribute, rule="mask") from None


def _unplaced_confidences(color_map: Mapping[str, Any], placed: set[int]) -> dict[str, float]:
    """The confidences of the classes no annotation carries (the background, a class with no pixel
    on the image): COCO scores annotations only, so the image holds them for the way back. They
    were left out, and ``--to manifest`` brought the color map back without them, nothing said."""
    return {key: entry["confidence"] for key, entry in color_map.items()
            if isinstance(entry, Mapping) and type(entry.get("confidence")) in (int, float) and int(key) not in placed}


def paint_coco_mask(anns: list, image: dict, cats: Mapping[int, str], colors: Mapping[int, str], mask_url: str,
                    mask_ref: str, *, key: str = "images") -> Labeled:
    """``anns`` (one image's, at ``key``) painted as one class-index PNG at ``mask_url``, category
    id = class index, in the categories' ``colors`` (id -> ``#rrggbb``; this tool's palette for
    the others) and the image's background (``mask_colors``); the line's label refers to it as
    ``mask_ref``. Each class's confidence is its own annotations' score (their lowest), and a class
    without one has none: a missing score is not 0.0."""
    width, height = image.get("width"), image.get("height")
    if not isinstance(width, int) or not isinstance(height, int) or width <= 0 or height <= 0:
        raise FormatError(
            "image needs positive integer 'width' and 'height' to paint masks", fmt="coco", key="images"
        )
    bad = [c for c in cats if not 1 <= c <= 255]
    if bad:
        raise FormatError(
            f"category ids must be 1..255 to be mask class indices (0 is background); got {bad[:5]}",
            fmt="coco",
            key="categories",
        )
    mask = np.zeros((height, width), dtype=np.uint8)
    scores: dict[int, float] = {}
    for i, ann in enumerate(anns):
        cid = ann.get("category_id")
        if cid not in cats:
            raise FormatError(
                f"category_id {cid!r} is not in 'categories'", fmt="coco", key=f"annotations[{i}].category_id"
            )
        if not ann.get("segmentation"):
            continue  # a box alone: nothing to paint (refused before, unless allowed to drop, and counted)
        try:
            mask[segmentation_to_mask(ann.get("segmentation"), width, height)] = cid
        except (ValueError, TypeError, KeyError) as exc:
            raise FormatError(
                f"bad segmentation: {exc}", fmt="coco", key=f"annotations[{i}].segmentation"
            ) from None
        if isinstance(ann.get("score"), int | float):  # instances of a class merged: the lowest of their scores
            scores[cid] = min(float(ann["score"]), scores.get(cid, float("inf")))
    kept = image.get(CLASS_CONFIDENCES)  # this tool's export: the classes no annotation scores
    for key, value in kept.items() if isinstance(kept, Mapping) else ():
        if str(key).isdigit() and type(value) in (int, float) and int(key) not in scores:
            scores[int(key)] = float(value)
    palette, background = _palette(image, cats, colors, key)
    write_bytes_atomic(mask_url, mask_png(mask, palette))
    # each class its own score: one confidence for all (the image's lowest, 0.0 without scores)
    # changed a class scored 0.8 to 0.6 and read a missing score as a low one
    color_map: dict[str, dict[str, Any]] = {"0": {"class-name": background, "hex-color": palette[0],
                                                  **({"confidence": scores[0]} if 0 in scores else {})}}
    for cid in sorted(cats):
        color_map[str(cid)] = {"class-name": cats[cid], "hex-color": palette[cid],
                               **({"confidence": scores[cid]} if cid in scores else {})}
    return Labeled(mask_ref, {"internal-color-map": color_map})


def _palette(image: Mapping[str, Any], cats: Mapping[int, str], colors: Mapping[int, str],
             key: str) -> tuple[list[str], str]:
    """The mask's colours (class index -> ``#rrggbb``) and its background's name: the carried
    ones (categories' ``color``, the image's ``background-class``), this tool's for the rest. A
    background of a category's colour is refused: the mask could not tell the two apart."""
    name, color = background_of(image, key)
    carried = {cid: c for cid, c in colors.items() if cid in cats}
    if color is not None:
        if (same := [cid for cid, c in carried.items() if c == color]):
            raise FormatError(f"the background's color {color} is also category {same[0]}'s; a mask tells its "
                              "classes apart by colour, so one colour names one class", fmt="coco",
                              key=f"{key}.{BACKGROUND_CLASS}.color")
        carried[0] = color
    return mask_palette(max(cats, default=0), carried), name


class MergedInstances:
    """A masks import's instances painted into one region of their class: a mask holds one region
    a class, so two cats on an image become one 'cat', their annotations' ids and areas with them.
    Counted per image and said in one line (one instance a class, as this tool's mask export
    writes, loses nothing of the kind and says nothing)."""

    def __init__(self) -> None:
        self.annotations = self.images = 0

    def add(self, anns: list) -> None:
        """One image's annotations (those with a region to paint)."""
        per_class = Counter(a.get("category_id") for a in anns if isinstance(a, Mapping) and a.get("segmentation"))
        merged = sum(n for n in per_class.values() if n > 1)
        self.annotations += merged
        self.images += merged > 0

    def notes(self) -> list[str]:
        if not self.annotations:
            return []
        return [f"{self.annotations} annotations of {self.images} image{'s' * (self.images > 1)} are painted into one "
                "region of their class (a mask holds one region a class): their instances, ids and areas are not "
                "carried; read as boxes (--task-type object-detection --allow-drop) each stays one"]
