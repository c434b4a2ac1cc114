"""YOLO text labels: one ``class cx cy w h [confidence]`` line per box, normalised to 0..1.

YOLO numbers classes from 0 in the order of its names file, which is how Ground Truth numbers
``class_id`` too, so ids pass through unchanged and only the names need the class list.
Normalised values are written with full float precision; reading rounds pixel values to 6
decimals to drop the float noise of the division, except a width or height that rounding would
turn from above 0 into 0 (``_size``): that one is kept at full precision.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from .._errors import json_kind
from .._outcomes import Labeled
from .groundtruth import exported_label
from .model import (
    DETECTION,
    Box,
    ClassIndex,
    ClassNames,
    FormatError,
    confidence_value,
    gt_detection,
    image_size_value,
    require_task_type,
    tidy,
)

FMT = "yolo"


def _float(token: str, *, key: str) -> float:
    try:
        value = float(token)
    except ValueError:
        raise FormatError(f"{token!r} is not a number", fmt=FMT, key=key) from None
    if not math.isfinite(value):
        raise FormatError(f"{token!r} is not a finite number", fmt=FMT, key=key)
    return value


def _size(value: float) -> float | int:
    """A box's width or height in pixels, rounded as ``tidy`` rounds, unless rounding would make a
    size above 0 into 0: a height of 1e-7 px read back as ``"height": 0``, a box of no area that
    validate accepts, with nothing said. Keeping the few digits that make it non-zero is simpler
    and more honest than a count of boxes changed: the value read is the value the file holds."""
    rounded = tidy(value)
    return value if rounded == 0 and value > 0 else rounded


def yolo_to_gt(
    text: str | bytes, task_type: str = DETECTION, *, image_size: Any = None, class_names: ClassNames | None = None
) -> Labeled:
    """Read a YOLO label file for one image (blank lines and ``#`` comments are skipped). A
    leading UTF-8 BOM (Notepad's) is dropped, as the file method drops it: ``convert`` of a YOLO
    folder read the first class as ``'\\ufeff0'`` and refused a file the file method took."""
    require_task_type(task_type, (DETECTION,), FMT)
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise FormatError(f"not UTF-8 text: {exc}", fmt=FMT) from None
    if not isinstance(text, str):
        raise FormatError(f"YOLO labels are text, got {json_kind(text)}", fmt=FMT)
    text = text.removeprefix("\ufeff")
    size = image_size_value(image_size, fmt=FMT)
    if class_names is None:
        raise FormatError("YOLO labels number their classes; give the class names (--class-names FILE; "
                          "from Python, class_names: a list)", fmt=FMT, key="class_names")
    classes = ClassIndex(class_names, fmt=FMT)
    width, height, _ = size
    boxes: list[Box] = []
    names: dict[int, str] = {}
    for n, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key = f"row {n}"
        parts = line.split()
        if len(parts) not in (5, 6):
            raise FormatError(f"expected 'class cx cy w h [confidence]', got {len(parts)} fields", fmt=FMT, key=key)
        if not parts[0].isdigit():
            raise FormatError(f"class {parts[0]!r} is not a non-negative integer", fmt=FMT, key=f"{key}.class")
        cid = int(parts[0])
        names[cid] = classes.name_for(cid, key=f"{key}.class")
        cx, cy, w, h = (_float(p, key=f"{key}[{i + 1}]") for i, p in enumerate(parts[1:5]))
        for label, v in (("cx", cx), ("cy", cy), ("w", w), ("h", h)):
            if not -1e-9 <= v <= 1 + 1e-9:
                raise FormatError(f"{label}={v} is not normalised to 0..1", fmt=FMT, key=f"{key}.{label}")
        conf = confidence_value(_float(parts[5], key=f"{key}[5]"), fmt=FMT, key=f"{key}.confidence") \
            if len(parts) == 6 else None
        boxes.append(
            Box(cid, tidy((cx - w / 2) * width), tidy((cy - h / 2) * height), _size(w * width), _size(h * height), conf)
        )
    return gt_detection(size, boxes, names)


def gt_to_yolo(value: Any, metadata: Mapping[str, Any] | None = None, *, confidence: bool = False) -> str:
    """YOLO lines for a Ground Truth bounding-box label; ``confidence`` adds the 6th column."""
    labeled = exported_label(DETECTION, value, metadata)
    size = labeled.value["image_size"][0]
    width, height = size["width"], size["height"]
    rows = []
    for ann, obj in zip(labeled.value["annotations"], labeled.metadata["objects"], strict=True):
        left, top, w, h = ann["left"], ann["top"], ann["width"], ann["height"]
        fields = [str(int(ann["class_id"])), *(repr(float(v)) for v in (
            (left + w / 2) / width, (top + h / 2) / height, w / width, h / height))]
        if confidence and obj.get("confidence") is not None:  # an unscored box has no 6th column
            fields.append(repr(float(obj["confidence"])))
        rows.append(" ".join(fields))
    return "".join(r + "\n" for r in rows)


def yolo_names(class_map: Mapping[Any, str]) -> list[str]:
    """The names file for a class map; gaps in the ids get ``class_<id>`` so positions stay right."""
    by_id = {int(k): v for k, v in class_map.items()}
    return [by_id.get(i, f"class_{i}") for i in range(max(by_id, default=-1) + 1)]
