"""The ``inference`` method's pipeline for a local model: fetch, decode, predict, label.

Three stages overlap, so the model (on a GPU above all) waits for as little as possible:

* fetches run a window of a few batches ahead (``PREFETCH_BATCHES``) and read each image's header;
  a batch is then cut so that its decoded pixels stay within ``--max-image-pixels`` (one image
  always fits), and it is decoded in the pool while the model runs on the batch before it, so at
  most two batches of decoded pixels are held, whatever the images declare;
* the model runs in the caller's thread (Ctrl-C and the model's own ``KeyboardInterrupt`` are
  told apart there: ``runners.model_call``); after a first stop signal no new batch enters it: the
  batch in the model finishes and is labeled, and the lines fetched ahead are left for ``resume``
  (not labeled, not failed), since a forward pass may take a minute and a fetch is cheap to redo
  (each of the three prefetched batches cost a whole forward pass before, minutes on a slow model);
* a batch's predictions are labeled (thresholds, NMS, the Ground Truth label) in a thread of their
  own while the model runs on the next batch: on a GPU, labeling a detector's batch took about a
  third of the pipeline's time, all of it with the GPU idle. One batch is labeled at a time, in
  order, so the labeler is never used by two threads at once, and an error it raises (a broken
  model's output stops the job) comes out of ``result()`` in the caller's thread.
"""

from __future__ import annotations

import concurrent.futures
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from .._errors import counted
from .._models.labeler import Labeler, PendingMask
from .._models.runners import ModelRunner, predict_each
from .._outcomes import Failed, Item, Outcome
from .inference_images import DecodedImage, ImageLoader, Probed

#: batches whose images are fetched ahead of the model (fetch + decode overlap the forward pass)
PREFETCH_BATCHES = 3

Pairs = list[tuple[Item, Outcome | PendingMask]]
#: an image's width, height, depth, and its scale from the decoded pixels back to the stored image
Shape = tuple[int, int, int, float, float]


class LocalBatches:
    """Batches of (item, outcome or mask to write), in input order, from a local runner."""

    def __init__(self, runner: ModelRunner, labeler: Labeler, loader: ImageLoader, *, batch_size: int,
                 pool: concurrent.futures.Executor, max_image_pixels: int,
                 image_url: Callable[[Item], str | Failed], stopped: Callable[[], bool] = lambda: False) -> None:
        self.runner = runner
        self.labeler = labeler
        self.loader = loader
        self.batch_size = batch_size
        self.pool = pool
        self.max_image_pixels = max_image_pixels
        self.image_url = image_url
        #: whether a first stop signal came (``JobRun.stop``): no new batch enters the model
        self.stopped = stopped
        #: lines in the batch the model is running on; 0 between forward passes
        self.in_model = 0

    def finishing(self) -> str | None:
        """What a first stop signal waits for, as its line says it; None when no batch is in the
        model. Read by the signal handler: no lock, one int read."""
        n = self.in_model
        if not n:
            return None
        return f"the batch in the model ({counted(n, 'line')}); lines fetched ahead are left for resume"

    def label(self, out: Pairs, shapes: list[tuple[Item, Shape]], preds: list[Any]) -> Pairs:
        """``out`` (the batch's failed lines) with each predicted line's outcome added. It is given
        the images' sizes, not the images: their pixels are freed once the model has them, so at
        most two batches of pixels are held while a third is labeled."""
        head = self.runner.head
        for (item, (width, height, depth, scale_x, scale_y)), pred in zip(shapes, preds, strict=True):
            pred = head.rescale(pred, scale_x, scale_y)
            out.append((item, self.labeler.outcome(item, pred, width, height, depth)))
        return out

    def __call__(self, items: Iterable[Item]) -> Iterator[Pairs]:
        source = iter(items)
        window = PREFETCH_BATCHES * self.batch_size
        pending: deque[tuple[Item, concurrent.futures.Future]] = deque()  # futures of Probed | Failed
        started: list[list[tuple[Item, concurrent.futures.Future]]] = []
        exhausted = False
        size = self.runner.input_size
        loader = self.loader

        def fill() -> None:
            nonlocal exhausted
            while not exhausted and len(pending) < window:
                try:
                    item = next(source)
                except StopIteration:
                    exhausted = True
                    return
                pending.append((item, loader.load(self.image_url(item), size)))

        def take_batch() -> list[tuple[Item, concurrent.futures.Future]]:
            batch: list[tuple[Item, concurrent.futures.Future]] = []
            pixels = images = 0
            while pending and images < self.batch_size:
                item, fut = pending[0]
                probed = fut.result()
                if isinstance(probed, Probed):
                    if images and pixels + probed.pixels > self.max_image_pixels:
                        break
                    pixels += probed.pixels
                    images += 1
                    fut = self.pool.submit(loader.decode, probed, size)
                pending.popleft()
                batch.append((item, fut))
            fill()
            started.append(batch)
            return batch

        labeling = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="totask-label")
        labeled: concurrent.futures.Future | None = None  # the batch before this one, being labeled
        try:
            fill()
            current = take_batch()
            while current and not self.stopped():
                results = [(item, fut.result()) for item, fut in current]
                upcoming = take_batch()  # decoded while the model runs on this batch
                ready: list[tuple[Item, DecodedImage]] = []
                out: Pairs = []
                for item, result in results:
                    if isinstance(result, Failed):
                        out.append((item, result))
                    else:
                        ready.append((item, result))
                del results
                shapes = [(item, (img.width, img.height, img.depth, img.scale_x, img.scale_y)) for item, img in ready]
                if self.stopped():  # came while this batch was decoded: it does not enter the model
                    break
                self.in_model = len(ready)
                try:
                    preds = predict_each(self.runner, [img.pixels for _, img in ready]) if ready else []
                except BaseException:
                    # the model failed (or Ctrl-C came) on this batch: the batch before it is labeled
                    # and goes out first, so what was done is recorded, then the error
                    if labeled is not None:
                        done, labeled = labeled.result(), None
                        yield done
                    raise
                finally:
                    self.in_model = 0
                del ready
                started.pop(0)
                if labeled is not None:
                    yield labeled.result()
                labeled = labeling.submit(self.label, out, shapes, preds)
                del preds
                current = upcoming
            if labeled is not None:
                yield labeled.result()
                labeled = None
        finally:
            for _item, fut in pending:
                fut.cancel()
            for batch in started:
                for _item, fut in batch:
                    fut.cancel()
            labeling.shutdown(wait=True, cancel_futures=True)  # a batch being labeled ends before the model closes
