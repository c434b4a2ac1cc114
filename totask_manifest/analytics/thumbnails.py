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

from ..errors import TotaskError
from ..formats.native import native_format, shapes
from ..imaging import DEFAULT_MAX_IMAGE_PIXELS, ImageError, decode_image
from .masks import read_mask
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
) -> Tile:
    """Decode (already fetched) ``image``, draw the label and shrink; errors become the tile's
    text. ``fetch_mask`` reads a segmentation's mask under the same policy."""
    title = source.rsplit("/", 1)[-1][:60] if source else "(no source-ref)"
    if isinstance(image, Exception):
        return Tile(title, "", error=f"image not available: {str(image)[:160]}")
    try:
        # within the budget the image is decoded as stored and labels drawn in its own pixels; a
        # JPEG over it is reduced while decoding and the boxes are scaled to it
        img, info = decode_image(image, max_pixels=max_pixels)
        img = img.convert("RGB")
    except ImageError as exc:
        return Tile(title, "", error=f"image not available: {exc.reason[:160]}")
    caption = ""
    try:
        # a JPEG reduced while decoding is smaller than the stored image the label speaks of
        sx, sy = img.width / max(info.width, 1), img.height / max(info.height, 1)
        fmt = native_format(metadata)
        if fmt is not None:
            caption = _draw_native(img, value, fmt, sx, sy)
        elif task_type == "object-detection" and isinstance(value, Mapping):
            caption = _draw_boxes(img, value, metadata, sx, sy)
        elif task_type == "semantic-segmentation" and isinstance(value, str):
            if fetch_mask is None:
                raise ValueError("no way to read the mask")
            img, caption = _overlay_mask(img, value, metadata, fetch_mask)
        elif "class-name" in metadata:
            caption = f"{metadata['class-name']} ({metadata.get('confidence', '?')})"
        elif isinstance(metadata.get("class-map"), Mapping) and isinstance(value, list):
            caption = ", ".join(str(metadata["class-map"].get(str(v), v)) for v in value)
    except (OSError, ValueError, KeyError, TypeError, TotaskError) as exc:
        caption = f"label not drawn: {str(exc)[:120]}"
    img.thumbnail((size, size))
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=80)
    return Tile(title, caption, "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii"))


def _draw_boxes(img: Image.Image, value: Mapping[str, Any], metadata: Mapping[str, Any], sx: float = 1.0,
                sy: float = 1.0) -> str:
    """Boxes in the stored image's coordinates, drawn on ``img`` (that image scaled by sx, sy)."""
    draw = ImageDraw.Draw(img)
    font = _font()
    cmap = metadata.get("class-map") or {}
    objects = metadata.get("objects") or []
    line_w = max(2, round(max(img.size) / 200))
    anns = value.get("annotations") or []
    for i, a in enumerate(anns):
        cid = a.get("class_id")
        x, y, w, h = (float(a.get(k, 0)) for k in ("left", "top", "width", "height"))
        x, y, w, h = x * sx, y * sy, w * sx, h * sy
        c = color(int(cid) if isinstance(cid, int) else 0)
        draw.rectangle([x, y, x + w, y + h], outline=c, width=line_w)
        conf = objects[i].get("confidence") if i < len(objects) and isinstance(objects[i], Mapping) else None
        text = str(cmap.get(str(cid), cid)) + (f" {conf:.2f}" if isinstance(conf, int | float) else "")
        tb = draw.textbbox((x, y), text, font=font)
        draw.rectangle([tb[0], tb[1] - 1, tb[2] + 2, tb[3] + 1], fill=c)
        draw.text((x + 1, y), text, fill="white", font=font)
    return f"{len(anns)} box{'es' if len(anns) != 1 else ''}"


def _overlay_mask(img: Image.Image, url: str, metadata: Mapping[str, Any],
                  fetch_mask: Callable[[str], bytes]) -> tuple[Image.Image, str]:
    cmap = metadata.get("internal-color-map") or {}
    mask = read_mask(url, cmap, data=fetch_mask(url))
    if mask.shape != (img.height, img.width):
        mask = np.asarray(Image.fromarray(mask).resize(img.size, Image.Resampling.NEAREST))
    overlay = np.asarray(img).copy()
    present = []
    for key, entry in cmap.items():
        idx = int(key)
        if idx == 0 or not (mask == idx).any():
            continue
        present.append(str(entry.get("class-name", idx)))
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


def _draw_native(img: Image.Image, value: Any, fmt: str, sx: float = 1.0, sy: float = 1.0) -> str:
    """Boxes (turned when rotated), polygons and points of the first media (the line's image),
    scaled by ``sx``/``sy`` from the stored image's pixels to the decoded one's."""
    draw = ImageDraw.Draw(img)
    font = _font()
    line_w = max(2, round(max(img.size) / 200))
    drawn = shapes(value, fmt)
    all_shapes = list(drawn)
    first = all_shapes[0].media if all_shapes else None
    tools: dict[str, int] = {}
    for shape in all_shapes:
        if shape.media != first:
            continue
        tools[shape.tool] = tools.get(shape.tool, 0) + 1
        c = color(name_color_index(shape.class_name))
        anchor: tuple[float, float] | None = None
        if shape.box is not None:
            x, y, w, h = shape.box
            corners = _rotated(shape.box, shape.rotation) if shape.rotation else None
            if corners:
                corners = [(cx * sx, cy * sy) for cx, cy in corners]
                draw.polygon(corners, outline=c, width=line_w)
                anchor = corners[0]
            else:
                draw.rectangle([x * sx, y * sy, (x + w) * sx, (y + h) * sy], outline=c, width=line_w)
                anchor = (x * sx, y * sy)
        elif len(shape.points) >= 2:
            points = [(px * sx, py * sy) for px, py in shape.points]
            draw.line([*points, points[0]] if shape.tool == "polygon" else points, fill=c, width=line_w)
            anchor = points[0]
        elif shape.points:
            px, py = shape.points[0][0] * sx, shape.points[0][1] * sy
            r = line_w * 2
            draw.ellipse([px - r, py - r, px + r, py + r], fill=c)
            anchor = (px + r, py - r)
        if anchor is not None and shape.class_name:
            draw.text((anchor[0] + 1, anchor[1]), shape.class_name, fill=c, font=font)
    media = {s.media for s in all_shapes}
    parts = ", ".join(f"{n} {tool}" for tool, n in sorted(tools.items())) or "no annotations"
    return parts + (f" ({first}; {len(media)} media)" if len(media) > 1 else "")
