"""Every image this package reads goes through here: decoded under a pixel budget.

An image's header declares its size, and a 164 KB PNG can declare 13000 x 13000 pixels: half a
gigabyte once decoded, several gigabytes once a model has float copies of it. So the size is read
from the header first (``Image.open`` decodes no pixels) and compared with the budget before any
pixel is decoded:

* within the budget: decoded as it is (for a model with a fixed input size, JPEG is still
  scaled down while decoding, ``draft``, to the smallest size not below the input);
* over the budget, JPEG: the decoder scales by 1/2, 1/4 or 1/8 while decoding (``draft``), the
  smallest reduction that fits the budget; the caller learns the scale, so labels are still
  written in the image's own coordinates;
* over the budget, any other format (PNG, WebP, TIFF, ...): Pillow can only decode those whole,
  so the image is refused with ``ImageTooLarge`` (rule ``image-too-large``) and nothing decoded.

Pillow's own decompression-bomb check (``Image.MAX_IMAGE_PIXELS``: a warning above 89 Mpx, an
error above 179 Mpx) is superseded by the budget: its warning is silenced and its error becomes
``ImageTooLarge``. Errors are ``ImageError`` with a ``rule`` and a one-line ``reason``, never a
traceback.
"""

from __future__ import annotations

import io
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from PIL import Image

#: the default pixel budget (``--max-image-pixels``): 4096 x 4096, 16.8 Mpx, about 50 MB as RGB
#: decoded; see docs/inference.md for what a batch costs
DEFAULT_MAX_IMAGE_PIXELS = 16_777_216
#: reductions JPEG decoders apply while decoding (libjpeg's DCT scaling)
_JPEG_SCALES = (2, 4, 8)
#: bands per pixel as Ground Truth's ``image_size.depth`` counts them, where the mode name does not
#: say: a palette image ("P") shows colours, so it is 3 (4 with alpha), as the RGB image a viewer
#: or a trainer makes of it; integer and float single-band modes are 1
_MODE_DEPTH = {"P": 3, "PA": 4, "1": 1, "I": 1, "F": 1, "I;16": 1, "I;16B": 1, "I;16L": 1}
#: formats whose single-band mode ``I`` holds 16-bit samples (Pillow opens a 16-bit PGM as ``I``)
_SIXTEEN_BIT_AS_I = frozenset({"PNG", "PPM"})
#: a segmentation mask's background colour (class index 0), as Ground Truth writes it
BACKGROUND_HEX = "#ffffff"
#: the class colours after the background (matplotlib's tab20 order); more classes get hues spread
#: by the golden ratio
_BASE_COLORS = [
    "#2ca02c", "#1f77b4", "#d62728", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf", "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5", "#c49c94",
    "#f7b6d2", "#c7c7c7", "#dbdb8d", "#9edae5",
]

# the budget decides; Pillow's warning would only repeat it on stderr
warnings.filterwarnings("ignore", message=r".*could be decompression bomb DOS attack")


class ImageError(Exception):
    """An image that is not decoded; ``reason`` is one line for a failure record."""

    rule = "image"

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ImageTooLarge(ImageError):
    rule = "image-too-large"


class ImageUnreadable(ImageError):
    rule = "image-unreadable"


@dataclass(frozen=True)
class ImageInfo:
    """What the header says: the stored size, which labels are written in, and the bands."""

    width: int
    height: int
    depth: int
    format: str | None
    mode: str = ""

    @property
    def pixels(self) -> int:
        return self.width * self.height


@dataclass
class Decoded:
    """RGB pixels (uint8 ``H x W x 3``) and how they relate to the image as stored."""

    pixels: Any
    info: ImageInfo

    @property
    def scale_x(self) -> float:
        """Stored width over decoded width: multiply decoded x coordinates by this."""
        return self.info.width / self.pixels.shape[1]

    @property
    def scale_y(self) -> float:
        return self.info.height / self.pixels.shape[0]


def image_depth(mode: str) -> int:
    """Ground Truth's ``depth`` for a Pillow mode: the bands of the colours the image shows (``L`` 1,
    ``LA`` 2, ``RGB``/``YCbCr``/``P`` 3, ``RGBA``/``CMYK``/``PA`` 4); the one rule every reader uses."""
    return _MODE_DEPTH.get(mode, len(mode) if mode.isalpha() and mode.isupper() else 3)


def class_colors(n: int) -> list[str]:
    """The one palette: hex colours for class indices 0..n-1, index 0 (background) white and the
    rest distinct, the same for a class index wherever a mask is written."""
    import colorsys

    colors = [BACKGROUND_HEX]
    for i in range(1, n):
        if i - 1 < len(_BASE_COLORS):
            colors.append(_BASE_COLORS[i - 1])
        else:
            r, g, b = colorsys.hsv_to_rgb(((i * 0.618033988749895) % 1.0), 0.65, 0.85)
            colors.append(f"#{int(r * 255):02x}{int(g * 255):02x}{int(b * 255):02x}")
    return colors


def mask_png(mask: Any, palette: Sequence[str]) -> bytes:
    """The one mask writer: a palette PNG of a class-index mask (uint8 ``H x W``), ``palette[i]``
    being class i's colour: viewers show the colours, readers get the class index per pixel."""
    from PIL import Image

    img = Image.frombytes("P", (mask.shape[1], mask.shape[0]), mask.astype("uint8").tobytes())
    flat: list[int] = []
    for hx in palette:
        flat += [int(hx[1:3], 16), int(hx[3:5], 16), int(hx[5:7], 16)]
    img.putpalette(flat)
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=False)
    return buf.getvalue()


def check_budget(value: Any, source: str = "--max-image-pixels") -> int:
    """A pixel budget from an option: a positive integer (``UsageError`` otherwise)."""
    from ._errors import UsageError

    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UsageError(f"{source} must be a positive number of pixels, got {value!r}")
    return value


def _open(data: bytes) -> Image.Image:
    """Pillow's lazy open: the header only. Its errors become ``ImageError``; an empty file (an
    interrupted upload) is said as such, not as an unknown format, as a text file named .jpg is."""
    from PIL import Image, UnidentifiedImageError

    if not data:
        raise ImageUnreadable("empty file (0 bytes)")
    try:
        return Image.open(io.BytesIO(data))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:  # the warning when -W error
        raise ImageTooLarge(f"too large: {_bomb_detail(exc)}") from None
    except UnidentifiedImageError:
        raise ImageUnreadable("not a readable image (no image format Pillow knows)") from None
    except Exception as exc:  # Pillow raises OSError, ValueError, SyntaxError, struct.error ...
        raise ImageUnreadable(f"not a readable image ({type(exc).__name__}: {_short(exc)})") from None


def read_info(data: bytes) -> ImageInfo:
    """The header's size, depth and format; no pixel is decoded."""
    with _open(data) as img:
        width, height = img.size
        return ImageInfo(int(width), int(height), image_depth(img.mode), img.format, img.mode)


def decode_rgb(data: bytes, *, max_pixels: int, size: tuple[int, int] | None = None) -> Decoded:
    """RGB pixels of the image within ``max_pixels`` (see the module doc); ``size`` (height,
    width) resizes to a model's fixed input. ``ImageError`` for what is refused or unreadable."""
    import numpy as np
    from PIL import Image

    with _open(data) as img:
        info = ImageInfo(int(img.size[0]), int(img.size[1]), image_depth(img.mode), img.format, img.mode)
        _reduce_while_decoding(img, info, max_pixels, size)
        try:
            img.load()
            rgb = _to_rgb(img)
            if size is not None and rgb.size != (size[1], size[0]):
                rgb = rgb.resize((size[1], size[0]), Image.Resampling.BILINEAR)
            return Decoded(np.array(rgb), info)  # writable: torch.from_numpy shares it
        except ImageError:
            raise
        except Image.DecompressionBombError as exc:
            raise ImageTooLarge(f"too large: {_bomb_detail(exc)}") from None
        except Exception as exc:  # truncated or corrupt data: this image only
            raise ImageUnreadable(f"not a readable image ({type(exc).__name__}: {_short(exc)})") from None


def _to_rgb(img: Image.Image, *, exact: bool = False) -> Image.Image:
    """8-bit RGB of a loaded image, the one conversion for a model's input (``decode_rgb``) and for
    what a report draws (``decode_image``: thumbnails, mask overlays, masks read back). Pillow's
    own ``convert("RGB")`` clips wider pixels at 255, so a 16-bit grey image (``I;16``; a 16-bit
    PGM opens as ``I``) came out nearly all white: those are scaled from 0..65535 to 0..255 first.
    32-bit integer and float pixels (``I`` from TIFF, ``F``) carry no range to scale from: refused
    (``ImageUnreadable``), not guessed, wherever the image is read.

    ``exact`` (a mask, read by its colours): a 16-bit grey value is read only where it names one
    8-bit grey exactly, widened (``v * 257``, which scaling gives back) or as stored (0..255, a
    class index written in 16 bits, which scaling would make black); any other is refused."""
    import numpy as np
    from PIL import Image

    if img.mode.startswith("I;16") or (img.mode == "I" and img.format in _SIXTEEN_BIT_AS_I):
        wide = np.asarray(img).astype(np.uint32)
        if exact and wide.size and int(wide.max()) <= 255:
            return Image.fromarray(wide.astype(np.uint8), mode="L").convert("RGB")
        if exact and wide.size and bool((wide % 257).any()):
            odd = int(wide[wide % 257 != 0].flat[0])
            raise ImageUnreadable(f"16-bit grey value {odd} is no 8-bit grey: neither 0..255 nor one widened "
                                  "(v * 257); save the mask with 8 bits per channel")
        grey = ((np.clip(wide, 0, 65535) * 255 + 32767) // 65535).astype(np.uint8)
        return Image.fromarray(grey, mode="L").convert("RGB")
    if img.mode in ("I", "F"):
        kind = "32-bit integer" if img.mode == "I" else "floating-point"
        raise ImageUnreadable(
            f"{kind} pixels (Pillow mode {img.mode}, {img.format or 'unknown format'}) have no known range to "
            "scale to 8 bits from; save the image with 8 or 16 bits per channel"
        )
    return img.convert("RGB")


def decode_image(data: bytes, *, max_pixels: int, thumbnail: int | None = None,
                 exact: bool = False) -> tuple[Image.Image, ImageInfo]:
    """The image as 8-bit RGB (``_to_rgb``, as a model gets it: 16-bit grey scaled, not clipped
    white; ``exact`` for a mask) within ``max_pixels`` and the header's info (the stored size);
    with ``thumbnail`` (longest side), JPEG is scaled down while decoding and the result shrunk to fit."""
    from PIL import Image

    with _open(data) as img:
        info = ImageInfo(int(img.size[0]), int(img.size[1]), image_depth(img.mode), img.format, img.mode)
        target = None
        if thumbnail is not None:
            ratio = max(info.width, info.height) / thumbnail
            target = (max(1, round(info.height / ratio)), max(1, round(info.width / ratio))) if ratio > 1 else None
        _reduce_while_decoding(img, info, max_pixels, target)
        try:
            img.load()
            out = _to_rgb(img, exact=exact)  # a new image: inside ``with``, where the format (PNG's ``I``) is known
        except ImageError:
            raise
        except Image.DecompressionBombError as exc:
            raise ImageTooLarge(f"too large: {_bomb_detail(exc)}") from None
        except Exception as exc:
            raise ImageUnreadable(f"not a readable image ({type(exc).__name__}: {_short(exc)})") from None
    if thumbnail is not None:
        out.thumbnail((thumbnail, thumbnail))
    return out, info


def decoded_pixels(info: ImageInfo, max_pixels: int, size: tuple[int, int] | None = None) -> int:
    """The pixels ``decode_rgb`` will hold for an image with this header (``ImageTooLarge`` when
    it would refuse it): what a caller counts against a batch's budget before decoding. Resized
    to a model's input ``size``, it holds that size when larger (a small image made 4096x4096)."""
    scale = _plan(info, max_pixels, size)
    decoded = -(-info.width // scale) * -(-info.height // scale)
    return max(decoded, size[0] * size[1]) if size is not None else decoded


def check_input_size(size: tuple[int, int] | None, max_pixels: int, source: str) -> None:
    """A model input size within the pixel budget (``UsageError`` otherwise): every image is resized
    to it, so an ``--input-size 100000`` made each image 30 GB and the job was killed for memory."""
    from ._errors import UsageError

    if size is not None and size[0] * size[1] > max_pixels:
        raise UsageError(
            f"{source} {size[0]}x{size[1]} is {size[0] * size[1]:,} pixels per image, over the pixel budget of "
            f"{max_pixels:,} (--max-image-pixels); every image is resized to it"
        )


def _plan(info: ImageInfo, max_pixels: int, size: tuple[int, int] | None) -> int:
    """The JPEG reduction (1, 2, 4 or 8) to decode with."""
    is_jpeg = info.format in ("JPEG", "MPO")
    scale = 1
    if size is not None and is_jpeg:  # the smallest decode not below the model's input
        fit = min(info.width // max(size[1], 1), info.height // max(size[0], 1))
        scale = next((s for s in (8, 4, 2, 1) if fit >= s), 1)
    if info.pixels <= max_pixels or (is_jpeg and _reduced(info, scale) <= max_pixels):
        return scale
    if is_jpeg:
        for s in _JPEG_SCALES:
            if s > scale and _reduced(info, s) <= max_pixels:
                return s
        raise ImageTooLarge(
            f"too large: {info.width}x{info.height} = {info.pixels:,} pixels; even decoded at 1/8 it is over "
            f"the pixel budget of {max_pixels:,} (--max-image-pixels)"
        )
    raise ImageTooLarge(
        f"too large: {info.width}x{info.height} = {info.pixels:,} pixels is over the pixel budget of "
        f"{max_pixels:,} (--max-image-pixels); {info.format or 'this format'} cannot be reduced while decoding "
        "(only JPEG can), so it is not decoded"
    )


def _reduced(info: ImageInfo, scale: int) -> int:
    return -(-info.width // scale) * -(-info.height // scale)


def _reduce_while_decoding(img: Image.Image, info: ImageInfo, max_pixels: int, size: tuple[int, int] | None) -> None:
    scale = _plan(info, max_pixels, size)
    if scale > 1:
        img.draft("RGB", (info.width // scale, info.height // scale))
    if img.size[0] * img.size[1] > max_pixels:  # the decoder did not reduce as planned
        raise ImageTooLarge(
            f"too large: {info.width}x{info.height} = {info.pixels:,} pixels is over the pixel budget of "
            f"{max_pixels:,} (--max-image-pixels) and could not be reduced while decoding"
        )


def _bomb_detail(exc: BaseException) -> str:
    found = re.search(r"\((\d+) pixels\)", str(exc))
    declared = f"{int(found.group(1)):,} pixels" if found else "more pixels"
    return f"declares {declared}, over Pillow's decompression-bomb limit; not decoded"


def _short(exc: BaseException, limit: int = 160) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
