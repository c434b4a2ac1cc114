"""Thumbnails of a job's own images with its labels drawn on, as ``data:`` URIs.

The report fetches each line's ``source-ref`` (and a segmentation's mask) under the job's own
fetch policy (``fetch.FetchPolicy``: ``--allow-root``, ``--allow-host``, size limits, redirects
checked hop by hop) and decodes it under the pixel budget (``imaging``: a large JPEG is scaled
down while decoding, a larger image of another format is not decoded). A failed fetch or a
refused image gives a tile that says why; it never stops the report.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .._errors import TotaskError, counted
from .._formats.native import native_format, shapes
from .._imaging import DEFAULT_MAX_IMAGE_PIXELS, ImageError, decode_image
from .._storage import redact_secret_url
from .labels import metadata_key
from .masks import COLOR_MAP, read_mask
from .stats import shown
from .svg import PALETTE, color


@dataclass
class Tile:
    title: str
    caption: str
    data_uri: str | None = None
    error: str | None = None


def _font() -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=12)
    except TypeError:  # Pillow < 10.1
        return ImageFont.load_default()


def _hex_rgb(h: str) -> tuple[int, int, int]:
    h = h.lstrip("#")
    return int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16)


def render_tile(
    source: str,
    task_type: str,
    value: Any,
    metadata: Mapping[str, Any],
    *,
    image: bytes | Exception,
    fetch_mask: Callable[[str], bytes] | None = None,
    max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
    size: int = 240,
    attribute: str | None = None,
) -> Tile:
    """Decode (already fetched) ``image``, draw the label and shrink; errors become the tile's
    text. ``fetch_mask`` reads a segmentation's mask under the same policy; ``attribute`` (the
    label's) names the colour map's key in a tile's error, as validate names it."""
    # the file's name, without a password or a presigned signature the URL may carry
    title = redact_secret_url(source).rsplit("/", 1)[-1][:60] if source else "(no source-ref)"
    if isinstance(image, Exception):
        return Tile(title, "", error=f"image not available: {str(image)[:160]}")
    try:
        # within the budget the image is decoded as stored and labels drawn in its own pixels; a
        # JPEG over it is reduced while decoding and the boxes are scaled to it
        img, info = decode_image(image, max_pixels=max_pixels)  # 8-bit RGB, 16-bit grey scaled
    except ImageError as exc:
        return Tile(title, "", error=f"image not available: {exc.reason[:160]}")
    caption = ""
    try:
        # a JPEG reduced while decoding is smaller than the stored image the label speaks of
        sx, sy = img.width / max(info.width, 1), img.height / max(info.height, 1)
        fmt = native_format(metadata)
        if fmt is not None:
            caption = _draw_native(img, value, fmt, sx, sy, size=size)
        elif task_type == "object-detection" and isinstance(value, Mapping):
            caption = _draw_boxes(img, value, metadata, sx, sy, size=size)
        elif task_type == "semantic-segmentation" and isinstance(value, str):
            if fetch_mask is None:
                raise ValueError("no way to read the mask")
            img, caption = _overlay_mask(img, value, metadata, fetch_mask,
                                         metadata_key(attribute, COLOR_MAP) if attribute else COLOR_MAP)
        elif "class-name" in metadata:
            caption = f"{shown(metadata['class-name'])} ({metadata.get('confidence', '?')})"
        elif isinstance(metadata.get("class-map"), Mapping) and isinstance(value, list):
            caption = ", ".join(shown(metadata["class-map"].get(str(v), v)) for v in value)
    except (OSError, ValueError, KeyError, TypeError, TotaskError) as exc:
        caption = f"label not drawn: {str(exc)[:120]}"
    img.thumbnail((size, size))
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=80)
    return Tile(title, caption, "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii"))


def _draw_boxes(img: Image.Image, value: Mapping[str, Any], metadata: Mapping[str, Any], sx: float = 1.0,
                sy: float = 1.0, *, size: int = 240) -> str:
    """Shrink ``img`` to the tile (in place) and draw the boxes at tile scale, so lines and tags
    are as legible on a 4000-pixel photo as on a small one. Boxes are in the stored image's
    pixels; ``img`` is that image scaled by ``sx``, ``sy`` (a JPEG reduced while decoding).

    A tag (class and confidence) goes just outside its box, above or below, moved left to stay
    inside the tile; a spot that would cover another tag, or a box smaller than the tag, is not
    used, and a tag with no free spot is left out (the caption counts those). Boxes are always
    drawn.
    """
    width = img.width
    img.thumbnail((size, size))
    k = img.width / width if width else 1.0
    sx, sy = sx * k, sy * k
    draw = ImageDraw.Draw(img)
    font = _font()
    cmap = metadata.get("class-map") or {}
    objects = metadata.get("objects") or []
    anns = [a for a in value.get("annotations") or [] if isinstance(a, Mapping)]
    rects = []
    for a in anns:
        x, y, w, h = (float(a.get(key, 0)) for key in ("left", "top", "width", "height"))
        rects.append((x * sx, y * sy, (x + w) * sx, (y + h) * sy))
    texts, colors = [], []
    for i, a in enumerate(anns):
        cid = a.get("class_id")
        colors.append(color(int(cid) if isinstance(cid, int) else 0))
        conf = objects[i].get("confidence") if i < len(objects) and isinstance(objects[i], Mapping) else None
        # as the rest of the report shows names (``stats.shown``): one that does not print, as its literal
        texts.append(shown(cmap.get(str(cid), cid)) + (f" {conf:.2f}" if isinstance(conf, int | float) else ""))
    for (x0, y0, x1, y1), c in zip(rects, colors, strict=True):
        draw.rectangle([x0, y0, x1, y1], outline=c, width=2 if max(x1 - x0, y1 - y0) > 8 else 1)
    spots = place_tags([draw.textbbox((0, 0), t, font=font) for t in texts], rects, img.size)
    for spot, text, c in zip(spots, texts, colors, strict=True):
        if spot is not None:
            draw.rectangle(spot, fill=c)
            draw.text((spot[0] + 2, spot[1] + 1), text, fill="white", font=font)
    hidden = spots.count(None)
    caption = counted(len(anns), "box", "boxes")
    return caption + (f" ({counted(hidden, 'tag')} left out: no room)" if hidden else "")


Rect = tuple[float, float, float, float]


def place_tags(text_boxes: list[tuple[float, float, float, float]], rects: list[Rect],
               size: tuple[int, int]) -> list[Rect | None]:
    """Where each box's tag goes (``text_boxes``: each tag's text extent), or None for no room.

    Above the box, else below it, else inside its top edge when the box can hold it; moved left
    to stay inside the tile; over no other tag and no box smaller than twice the tag.
    """
    taken: list[Rect] = []
    out: list[Rect | None] = []
    for own, (box, (left, top, right, bottom)) in enumerate(zip(rects, text_boxes, strict=True)):
        tw, th = right - left + 4, bottom - top + 3
        spot = None
        if tw <= size[0]:
            x = min(max(box[0], 0), size[0] - tw)
            candidates = [box[1] - th, box[3]]
            if box[2] - box[0] >= tw and box[3] - box[1] >= 2 * th:
                candidates.append(box[1])
            for y in candidates:
                here = (x, y, x + tw, y + th)
                if y < 0 or y + th > size[1] or any(_overlaps(here, t) for t in taken):
                    continue
                if any(j != own and (r[2] - r[0]) * (r[3] - r[1]) < tw * th * 2 and _overlaps(here, r)
                       for j, r in enumerate(rects)):
                    continue
                spot = here
                break
        if spot is not None:
            taken.append(spot)
        out.append(spot)
    return out


def _overlaps(a: Rect, b: Rect) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _overlay_mask(img: Image.Image, url: str, metadata: Mapping[str, Any],
                  fetch_mask: Callable[[str], bytes], key: str = COLOR_MAP) -> tuple[Image.Image, str]:
    cmap = metadata.get(COLOR_MAP) or {}
    mask = read_mask(url, cmap, data=fetch_mask(url), key=key)
    if mask.shape != (img.height, img.width):
        mask = np.asarray(Image.fromarray(mask).resize(img.size, Image.Resampling.NEAREST))
    overlay = np.asarray(img).copy()
    present = []
    for key, entry in cmap.items():
        idx = int(key)
        if idx == 0 or not (mask == idx).any():
            continue
        present.append(shown(entry.get("class-name", idx)))
        overlay[mask == idx] = _hex_rgb(entry.get("hex-color", "#ff0000"))
    blended = Image.blend(img, Image.fromarray(overlay), 0.5)
    return blended, ", ".join(present) or "background only"


def name_color_index(name: str | None) -> int:
    """A stable palette index for a class known only by name (documents kept as they are)."""
    import zlib

    return zlib.crc32((name or "").encode()) % len(PALETTE)


def _rotated(box: tuple[float, float, float, float], angle: float) -> list[tuple[float, float]]:
    """The corners of a box turned by ``angle`` radians about its centre."""
    import math

    x, y, w, h = box
    cx, cy = x + w / 2, y + h / 2
    cos, sin = math.cos(angle), math.sin(angle)
    return [(cx + dx * cos - dy * sin, cy + dx * sin + dy * cos)
            for dx, dy in ((-w / 2, -h / 2), (w / 2, -h / 2), (w / 2, h / 2), (-w / 2, h / 2))]


def _draw_native(img: Image.Image, value: Any, fmt: str, sx: float = 1.0, sy: float = 1.0, *,
                 size: int = 240) -> str:
    """Boxes (turned when rotated), polygons and points of the first media (the line's image),
    drawn at tile scale after shrinking ``img`` in place (coordinates are the stored image's;
    ``img`` is that image scaled by ``sx``/``sy``), tags placed as ``place_tags`` says."""
    width = img.width
    img.thumbnail((size, size))
    k = img.width / width if width else 1.0
    sx, sy = sx * k, sy * k
    draw = ImageDraw.Draw(img)
    font = _font()
    line_w = 2
    drawn = shapes(value, fmt)
    all_shapes = list(drawn)
    first = all_shapes[0].media if all_shapes else None
    tools: dict[str, int] = {}
    tags: list[tuple[str, str, tuple[float, float, float, float]]] = []  # text, colour, the shape's extent
    for shape in all_shapes:
        if shape.media != first:
            continue
        tools[shape.tool] = tools.get(shape.tool, 0) + 1
        c = color(name_color_index(shape.class_name))
        points: list[tuple[float, float]] = []
        if shape.box is not None:
            x, y, w, h = shape.box
            corners = _rotated(shape.box, shape.rotation) if shape.rotation else None
            if corners:
                corners = [(cx * sx, cy * sy) for cx, cy in corners]
                draw.polygon(corners, outline=c, width=line_w)
                points = corners
            else:
                draw.rectangle([x * sx, y * sy, (x + w) * sx, (y + h) * sy], outline=c, width=line_w)
                points = [(x * sx, y * sy), ((x + w) * sx, (y + h) * sy)]
        elif len(shape.points) >= 2:
            points = [(px * sx, py * sy) for px, py in shape.points]
            draw.line([*points, points[0]] if shape.tool == "polygon" else points, fill=c, width=line_w)
        elif shape.points:
            px, py = shape.points[0][0] * sx, shape.points[0][1] * sy
            r = 3
            draw.ellipse([px - r, py - r, px + r, py + r], fill=c)
            points = [(px - r, py - r), (px + r, py + r)]
        if points and shape.class_name:
            xs, ys = [p[0] for p in points], [p[1] for p in points]
            tags.append((shown(shape.class_name), c, (min(xs), min(ys), max(xs), max(ys))))
    spots = place_tags([draw.textbbox((0, 0), t, font=font) for t, _, _ in tags], [r for _, _, r in tags], img.size)
    for spot, (text, c, _) in zip(spots, tags, strict=True):
        if spot is not None:
            draw.rectangle(spot, fill=c)
            draw.text((spot[0] + 2, spot[1] + 1), text, fill="white", font=font)
    hidden = spots.count(None)
    media = {s.media for s in all_shapes}
    parts = ", ".join(f"{n} {tool}" for tool, n in sorted(tools.items())) or "no annotations"
    parts += f" ({first}; {len(media)} media)" if len(media) > 1 else ""
    return parts + (f"; {counted(hidden, 'tag')} left out: no room" if hidden else "")
