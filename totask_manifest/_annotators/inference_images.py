"""What one image goes through before a local model sees it: fetch, header probe, decode.

Fetches run on the fetch layer's event loop; the header is read in the decode pool as soon as the
bytes arrive, so a batch can be cut by what decoding will cost (``decoded_pixels``) before any
pixel is decoded; decoding (``imaging.decode_rgb``, under the pixel budget) runs in the pool one
batch ahead of the model. Every failure is the line's own ``Failed``, never an exception.
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .._errors import FetchError
from .._fetch import scrub
from .._imaging import DEFAULT_MAX_IMAGE_PIXELS, ImageError, ImageInfo, decode_rgb, decoded_pixels, read_info
from .._outcomes import Failed


@dataclass
class DecodedImage:
    """A decoded image: model input (uint8 HWC, resized when the model needs a fixed size, reduced
    when the image is over the pixel budget) and the size of the image as stored, which labels
    are written in."""

    pixels: Any
    width: int
    height: int
    depth: int
    #: stored size over decoded size: a detector's boxes are multiplied by these
    scale_x: float = 1.0
    scale_y: float = 1.0


@dataclass
class Probed:
    """A fetched image whose header was read: what decoding it will cost, before it is decoded."""

    data: bytes
    info: ImageInfo
    pixels: int


def decode_image(data: bytes, size: tuple[int, int] | None, max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS) -> DecodedImage:
    """Decode to RGB under the pixel budget (``imaging.decode_rgb``); ``size`` (height, width)
    resizes to a model's fixed input. ``ImageError`` for an image refused or unreadable."""
    decoded = decode_rgb(data, max_pixels=max_pixels, size=size)
    info = decoded.info
    scale_x, scale_y = (1.0, 1.0) if size is not None else (decoded.scale_x, decoded.scale_y)
    return DecodedImage(decoded.pixels, info.width, info.height, info.depth, scale_x, scale_y)


class ImageLoader:
    """Fetches and probes images into futures, and decodes probed ones, under one pixel budget."""

    def __init__(
        self,
        fetch: Callable[[str], concurrent.futures.Future],
        pool: concurrent.futures.Executor,
        max_pixels: int,
    ) -> None:
        self.fetch = fetch
        self.pool = pool
        self.max_pixels = max_pixels

    def load(self, url: str | Failed, size: tuple[int, int] | None) -> concurrent.futures.Future:
        """A future of the fetched image with its header read (``Probed``) or of ``Failed``;
        never raises. No pixel is decoded here: a batch is sized by what decoding will cost."""
        out: concurrent.futures.Future = concurrent.futures.Future()
        if isinstance(url, Failed):
            out.set_result(url)
            return out
        fetched = self.fetch(url)
        budget = self.max_pixels

        def probe(data: bytes) -> None:
            if out.cancelled():
                return
            try:
                info = read_info(data)
                result: Any = Probed(data, info, decoded_pixels(info, budget, size))
            except ImageError as exc:  # over the budget and not reducible, or not an image
                result = Failed(f"image: {exc.reason}", rule=exc.rule)
            _settle(out, result)

        def on_fetched(f: concurrent.futures.Future) -> None:
            if f.cancelled():
                out.cancel()
                return
            exc = f.exception()
            if exc is not None:
                reason = str(exc) if isinstance(exc, FetchError) else f"{type(exc).__name__}: {scrub(str(exc), 160)}"
                _settle(out, Failed(f"fetch: {reason}"))
                return
            try:
                self.pool.submit(probe, f.result())
            except RuntimeError:  # the pool is shut down: the job is closing
                out.cancel()

        fetched.add_done_callback(on_fetched)
        return out

    def decode(self, probed: Probed, size: tuple[int, int] | None) -> DecodedImage | Failed:
        try:
            return decode_image(probed.data, size, self.max_pixels)
        except ImageError as exc:
            return Failed(f"image: {exc.reason}", rule=exc.rule)
        except Exception as exc:  # corrupt, truncated or not an image: this line only
            return Failed(f"image: {_image_error(exc)}")


def _image_error(exc: Exception) -> str:
    from PIL import UnidentifiedImageError

    if isinstance(exc, UnidentifiedImageError):
        return "not a readable image (no image format Pillow knows)"
    return f"not a readable image ({type(exc).__name__}: {scrub(str(exc), 160)})"


def _settle(fut: concurrent.futures.Future, value: Any) -> None:
    """Set a result unless the future was cancelled meanwhile (the job is closing)."""
    try:
        fut.set_result(value)
    except concurrent.futures.InvalidStateError:
        pass
