"""The ``inference`` method's pipeline for a model endpoint: it sends image URLs, not pixels.

An endpoint fetches its own images, so there is nothing to decode here: each batch of URLs is
one request, a few requests are in flight (``HTTP_IN_FLIGHT``), and batches are yielded in input
order. Labels that need the image's size (boxes, masks) take it from the prediction's
``image_size`` or else read the image's header through the job's fetch layer.
"""

from __future__ import annotations

import concurrent.futures
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from .._errors import FetchError, UsageError
from .._imaging import ImageError, read_info
from .._models.labeler import Labeler, PendingMask
from .._models.runners import ModelRunner
from .._outcomes import Failed, Item, Outcome

#: remote endpoint requests in flight
HTTP_IN_FLIGHT = 4


class EndpointBatches:
    """Batches of (item, outcome or mask to write) from a remote runner."""

    def __init__(
        self,
        runner: ModelRunner,
        labeler: Labeler,
        *,
        batch_size: int,
        pool: concurrent.futures.Executor,
        image_url: Callable[[Item], str | Failed],
        fetch: Callable[[str], bytes],
    ) -> None:
        self.runner = runner
        self.labeler = labeler
        self.batch_size = batch_size
        self.pool = pool
        self.image_url = image_url
        self.fetch = fetch

    def __call__(self, items: Iterable[Item]) -> Iterator[list[tuple[Item, Outcome | PendingMask]]]:
        source = iter(items)
        pending: deque[tuple[list[tuple[Item, str]], list[tuple[Item, Failed]], concurrent.futures.Future | None]]
        pending = deque()
        exhausted = False

        def submit_next() -> bool:
            nonlocal exhausted
            batch: list[tuple[Item, str]] = []
            early: list[tuple[Item, Failed]] = []
            while not exhausted and len(batch) < self.batch_size:
                try:
                    item = next(source)
                except StopIteration:
                    exhausted = True
                    break
                url = self.image_url(item)
                if isinstance(url, Failed):
                    early.append((item, url))
                else:
                    batch.append((item, url))
            if not batch and not early:
                return False
            fut = self.pool.submit(self.runner.predict, [u for _, u in batch]) if batch else None
            pending.append((batch, early, fut))
            return True

        try:
            while len(pending) < HTTP_IN_FLIGHT and submit_next():
                pass
            while pending:
                batch, early, fut = pending.popleft()
                out: list[tuple[Item, Outcome | PendingMask]] = list(early)
                if fut is not None:
                    preds = fut.result()
                    for (item, url), pred in zip(batch, preds, strict=True):
                        out.append((item, self._outcome(item, url, pred)))
                while len(pending) < HTTP_IN_FLIGHT and submit_next():
                    pass
                yield out
        finally:
            for _b, _e, fut in pending:
                if fut is not None:
                    fut.cancel()

    def _outcome(self, item: Item, url: str, pred: Any) -> Outcome | PendingMask:
        if isinstance(pred, Exception):
            return self.labeler.outcome(item, pred, 0, 0, 0)
        if self.labeler.class_names is None:
            self.labeler.class_names = self.runner.class_names
            if self.labeler.class_names is None:
                raise UsageError("the model endpoint sent no class_names; pass --class-names FILE")
        width = height = depth = 0
        if self.labeler.head.needs_image_size:
            size = size_from_prediction(pred) or self._fetch_size(url)
            if isinstance(size, Failed):
                return size
            width, height, depth = size
        return self.labeler.outcome(item, pred, width, height, depth)

    def _fetch_size(self, url: str) -> tuple[int, int, int] | Failed:
        try:
            data = self.fetch(url)
        except FetchError as exc:
            return Failed(f"image size: {exc}")
        try:
            info = read_info(data)  # the header only
        except ImageError as exc:
            return Failed(f"image size: {exc.reason}")
        return info.width, info.height, info.depth


def size_from_prediction(pred: Any) -> tuple[int, int, int] | None:
    """``image_size`` as ``{"width", "height"[, "depth"]}``, ``[{...}]`` (GT style) or ``[w, h]``."""
    size = pred.get("image_size") if isinstance(pred, dict) else None
    if isinstance(size, list) and len(size) == 1 and isinstance(size[0], dict):
        size = size[0]
    try:
        if isinstance(size, dict):
            return int(size["width"]), int(size["height"]), int(size.get("depth", 3))
        if isinstance(size, list) and len(size) in (2, 3):
            return int(size[0]), int(size[1]), int(size[2]) if len(size) == 3 else 3
    except (KeyError, TypeError, ValueError):
        return None
    return None
