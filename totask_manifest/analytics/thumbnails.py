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
from ..imaging import DEFAULT_MAX_IMAGE_PIXELS, ImageError, decode_image
from .masks import read_mask
from .svg import color


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
        if task_type == "object-detection" and isinstance(value, Mapping):
            caption = _draw_boxes(img, value, metadata, img.width / max(info.width, 1), img.height / max(info.height, 1))
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
