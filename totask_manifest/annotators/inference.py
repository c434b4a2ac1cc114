"""The ``inference`` method: label images with a torch model (or a model endpoint), batched.

A pipeline keeps the model busy: image bytes come through the same fetch layer as the ``file``
method (an event loop in a background thread, ``concurrency`` requests in flight), Pillow decodes
and resizes them in a thread pool (it releases the GIL while decoding), and a bounded window of
a few batches is loaded ahead while the model runs in the caller's thread. A line whose image
cannot be fetched or decoded fails alone; the batch runs without it. Post-processing (NMS,
thresholds, Ground Truth formats) lives in ``models.postprocess``; loading in ``models.loading``.

This module imports no torch: the CLI imports every method to build its options, and only a job
that runs this method pays for torch.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import logging
import os
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

from ..errors import FetchError, JobError, TotaskError, UsageError, json_kind, json_text
from ..fetch import (
    FetchOptions,
    FetchPolicy,
    SyncFetcher,
    base_for_line,
    base_of,
    check_fetch_options,
    has_scheme,
    resolve_reference,
    scrub,
)
from ..imaging import (
    DEFAULT_MAX_IMAGE_PIXELS,
    ImageError,
    ImageInfo,
    check_budget,
    decode_rgb,
    decoded_pixels,
    read_info,
)
from ..jobs.run import JobRun
from ..models.params import (
    MODEL_KINDS,
    check_params_for_task,
    default_confidence_threshold,
    load_params_file,
    resolve_params,
)
from ..options import Options, nested, option
from ..storage import join
from ..task_types import get_task_type
from .base import Annotator, Failed, Item, Labeled, Outcome, Resources, Routed
from .file import CLASS_NAMES_HELP, load_class_names

log = logging.getLogger("totask_manifest.inference")

DEFAULT_IMAGE_KEY = "source-ref"
_NO_NAMES = (
    "--model {model}: no class names; pass --class-names FILE (one per line) or give the model a "
    "class_names attribute (see docs/inference.md)"
)
#: batches loaded ahead of the model (fetch + decode overlap the forward pass)
PREFETCH_BATCHES = 3
#: a model that labeled no image in this run and failed on this many stops the job (it is broken)
#: remote endpoint requests in flight
HTTP_IN_FLIGHT = 4
#: flags that override one parameter each (option key -> parameter path)
FLAG_PARAMS = {
    "confidence_threshold": ("confidence_threshold",),
    "nms_threshold": ("nms_threshold",),
    "batch_size": ("model_config", "batch_size"),
    "device": ("model_config", "device"),
    "use_fp16": ("model_config", "use_fp16"),
}


def effective_params(
    options: dict[str, Any], task_type: str | None = None, *, notes: list[str] | None = None
) -> dict[str, Any]:
    """The parameter file's content with the flags laid over it, checked and completed; notes on
    values that do not apply go to ``notes`` when given, else to the log (see ``resolve_params``)."""
    raw: dict[str, Any] = dict(options.get("params") or {})
    model_config = dict(raw.get("model_config") or {}) if isinstance(raw.get("model_config"), dict) else None
    for key, path in FLAG_PARAMS.items():
        value = options.get(key)
        if value is None:
            continue
        if len(path) == 1:
            raw[path[0]] = value
            post = raw.get("post_processing")
            if isinstance(post, dict) and path[0] in post:  # the flag beats the file's alias block too
                raw["post_processing"] = {k: v for k, v in post.items() if k != path[0]}
        else:
            model_config = model_config if model_config is not None else {}
            model_config[path[1]] = value
    if model_config is not None:
        raw["model_config"] = model_config
    source = f"--params {options['params_file']}" if options.get("params_file") else "parameters"
    return resolve_params(raw, task_type, source=source, notes=notes)


@dataclass
class _Image:
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
class _Probed:
    """A fetched image whose header was read: what decoding it will cost, before it is decoded."""

    data: bytes
    info: ImageInfo
    pixels: int


def decode_image(data: bytes, size: tuple[int, int] | None, max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS) -> _Image:
    """Decode to RGB under the pixel budget (``imaging.decode_rgb``); ``size`` (height, width)
    resizes to a model's fixed input. ``ImageError`` for an image refused or unreadable."""
    decoded = decode_rgb(data, max_pixels=max_pixels, size=size)
    info = decoded.info
    scale_x, scale_y = (1.0, 1.0) if size is not None else (decoded.scale_x, decoded.scale_y)
    return _Image(decoded.pixels, info.width, info.height, info.depth, scale_x, scale_y)


@dataclass(frozen=True)
class InferenceOptions(Options):
    """``--method inference``'s options. ``--class-names`` and the fetch options are shared with
    ``--method file`` (one flag each on the command line)."""

    model: str | None = option(None, metavar="MODEL",
                               help="TorchScript file, torch.export .pt2 file, module:factory (or file.py:factory), "
                               "or an http(s) model endpoint")
    weights: str | None = option(None, metavar="FILE",
                                 help="state dict for a module:factory model (read with torch.load(weights_only=True))")
    class_names: str | None = option(None, metavar="FILE", help=CLASS_NAMES_HELP)
    input_size: str | None = option(
        None, metavar="N|H,W",
        help="classifier/segmenter input size (default: the model's input_size attribute, else 224)")
    params_file: str | None = option(
        None, flag="--params", metavar="FILE",
        help="inference parameters, JSON or YAML, in the ToTask guide's pre_processor_params shape")
    #: the content of ``params_file``, kept so a resumed or chained job needs no file
    params: dict | None = option(None, cli=False)
    confidence_threshold: float | None = option(
        None, type=float, metavar="P",
        help="drop boxes / classes below P (default 0.5 for boxes and multi-label, else 0)")
    nms_threshold: float | None = option(None, type=float, metavar="IOU",
                                         help="class-wise NMS IoU threshold for boxes (default 0.5)")
    batch_size: int | None = option(None, type=int, metavar="N", help="images per model call (default 16)")
    device: str | None = option(None, metavar="DEVICE",
                                help="auto, cpu, cuda, cuda:N or mps (default auto; falls back to the CPU)")
    use_fp16: bool | None = option(None, flag="--fp16", action=argparse.BooleanOptionalAction,
                                   help="half precision on CUDA (ignored on the CPU)")
    review_below: float | None = option(
        None, type=float, metavar="C",
        help="route lines whose confidence is below C to human review instead of labeling them")
    image_key: str | None = option(None, metavar="K",
                                   help=f"take each line's image URL from key K (default {DEFAULT_IMAGE_KEY})")
    max_image_pixels: int | None = option(
        None, type=int, metavar="N",
        help=f"pixel budget per image and per model call (default {DEFAULT_MAX_IMAGE_PIXELS:,}): "
        "a larger JPEG is scaled down while decoding, a larger image of another format fails its line")
    fetch: FetchOptions = nested(FetchOptions)

    @classmethod
    def from_cli(cls, values: dict[str, Any]) -> dict[str, Any]:
        """``--params FILE``: the file's content is kept too."""
        if values.get("params_file"):
            values = {**values, "params": load_params_file(values["params_file"])}
        return values


class InferenceAnnotator(Annotator):
    """Labels images with a model (``--method inference``)."""

    name: ClassVar[str] = "inference"
    Options = InferenceOptions

    def __init__(self, context: JobRun) -> None:
        super().__init__(context)
        options = context.options
        self.task_type = get_task_type(context.task_type).name
        self._check_static(options, self.task_type)
        self.params = effective_params(options, self.task_type)
        self.kind = MODEL_KINDS[self.task_type]
        self.batch_size = self.params["model_config"]["batch_size"]
        threshold = self.params["confidence_threshold"]
        self.confidence_threshold = default_confidence_threshold(self.task_type) if threshold is None else threshold
        self.review_below: float | None = options.get("review_below")
        self.image_key: str = options.get("image_key") or DEFAULT_IMAGE_KEY
        self.max_image_pixels: int = options.get("max_image_pixels") or DEFAULT_MAX_IMAGE_PIXELS
        self.policy = FetchPolicy.from_options(options)
        self.base: str | None = options.get("relative_to") or (
            base_of(context.manifest_url) if context.manifest_url else None
        )
        self.job_url = _absolute(context.job_url) if context.job_url else ""
        self._sync: SyncFetcher | None = None
        workers = max(2, min(8, os.cpu_count() or 2))
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="totask-decode")
        self.runner: Any = None
        try:
            self.runner = self._load_runner(options)
            file_names = load_class_names(options["class_names"]) if options.get("class_names") else None
            self.class_names: list[str] | None = file_names or self.runner.class_names
            if self.class_names is None and self.runner.takes_tensors:
                raise UsageError(_NO_NAMES.format(model=options["model"]))
            self._allowed: set[int] | None = None
            self._resolve_filter()
        except BaseException:
            self.close()
            raise
        log.info("inference: %s, batch %d", self.runner.description, self.batch_size)

    @classmethod
    def check(cls, options: InferenceOptions, task_type: str) -> None:
        """Everything, before the job exists: options, parameters, and a torch model loaded once
        on the CPU (a wrong file, weights that do not fit, or missing class names fail here)."""
        raw = options.to_dict()
        cls._check_static(raw, task_type)
        from ..models.loading import load_module, model_source_kind

        if model_source_kind(raw["model"]) == "http":
            return
        loaded = load_module(raw["model"], raw.get("weights"))
        names = load_class_names(raw["class_names"]) if raw.get("class_names") else loaded.class_names
        if names is None:
            raise UsageError(_NO_NAMES.format(model=raw["model"]))
        from ..models.postprocess import resolve_class_filter

        resolve_class_filter(effective_params(raw, task_type, notes=[])["class_filter"], names)

    @classmethod
    def resources(cls, options: InferenceOptions) -> Resources:
        """A GPU per instance for a local model, unless the device is the CPU or Apple's."""
        device = str(options.device or "auto").lower()
        remote = str(options.model or "").startswith(("http://", "https://"))
        return Resources() if device in ("cpu", "mps") or remote else Resources(gpus=1.0)

    @classmethod
    def _check_static(cls, options: dict[str, Any], task_type: str) -> None:
        from ..models.loading import check_model_spec, parse_input_size

        name = get_task_type(task_type).name
        check_params_for_task({}, name)
        check_model_spec(options.get("model"), options.get("weights"))
        params = effective_params(options, name, notes=[])  # the job logs its notes once, when it runs
        check_params_for_task(params, name, notes=[])
        parse_input_size(options.get("input_size"))
        review = options.get("review_below")
        if review is not None and (isinstance(review, bool) or not isinstance(review, int | float) or not 0 <= review <= 1):
            raise UsageError(f"--review-below must be a number between 0 and 1, got {json_text(review)}")
        key = options.get("image_key")
        if key is not None and (not isinstance(key, str) or not key.strip()):
            raise UsageError("--image-key must name a key")
        if options.get("class_names"):
            load_class_names(options["class_names"])
        if options.get("max_image_pixels") is not None:
            check_budget(options["max_image_pixels"])
        check_fetch_options(options)

    # -- set-up --------------------------------------------------------------------------------

    def _load_runner(self, options: dict[str, Any]) -> Any:
        from ..models.loading import HttpRunner, load_torch_runner, model_source_kind, parse_input_size

        spec = options["model"]
        if model_source_kind(spec) == "http":
            params = {**self.params, "task_type": self.task_type}
            return HttpRunner(
                spec, kind=self.kind, params=params, class_names=None,
                multilabel=self.task_type == "image-classification-multilabel",
                timeout=max(self.policy.timeout, 60.0), retries=self.policy.retries,
            )
        from ..models.device import select_device

        mc = self.params["model_config"]
        plan = select_device(mc["device"], mc["use_fp16"])
        return load_torch_runner(
            spec, kind=self.kind, plan=plan, weights=options.get("weights"),
            input_size=parse_input_size(options.get("input_size")),
        )

    def _resolve_filter(self) -> None:
        from ..models.postprocess import resolve_class_filter

        wanted = self.params["class_filter"]
        if wanted is None:
            return
        if self.class_names is None and any(isinstance(v, str) for v in wanted):
            raise UsageError("class_filter names classes, but the model endpoint's class names are not known yet; "
                             "pass --class-names FILE or filter by class id")
        self._allowed = resolve_class_filter(wanted, self.class_names or [])

    def _fetcher(self) -> SyncFetcher:
        if self._sync is None:
            self._sync = SyncFetcher(self.policy)
        return self._sync

    def close(self) -> None:
        if self._sync is not None:
            self._sync.close()
            self._sync = None
        self._pool.shutdown(wait=True, cancel_futures=True)
        runner = getattr(self, "runner", None)
        if runner is not None:
            runner.close()

    # -- the pipeline --------------------------------------------------------------------------

    def annotate(self, items: Iterable[Item]) -> Iterator[tuple[Item, Outcome]]:
        """Batches in input order; mask writes finish in the background (yielded when done)."""
        self._writes: deque[tuple[Item, concurrent.futures.Future]] = deque()
        stages = self._batches_remote(items) if not self.runner.takes_tensors else self._batches_local(items)
        try:
            for pairs in stages:
                for item, outcome in pairs:
                    if outcome is not _DEFERRED:
                        yield item, outcome
                yield from self._finished_writes(block=False)
            yield from self._finished_writes(block=True)
        finally:
            close = getattr(stages, "close", None)
            if close is not None:
                close()
            for _item, fut in self._writes:
                fut.cancel()

    def _batches_local(self, items: Iterable[Item]) -> Iterator[list[tuple[Item, Outcome]]]:
        """Fetches run a window of a few batches ahead and read each image's header; a batch is
        then cut so that its decoded pixels stay within ``--max-image-pixels`` (one image always
        fits), and it is decoded while the model runs on the batch before it. So at most two
        batches of decoded pixels are held, whatever the images declare."""
        source = iter(items)
        window = PREFETCH_BATCHES * self.batch_size
        pending: deque[tuple[Item, concurrent.futures.Future]] = deque()  # futures of _Probed | Failed
        started: list[list[tuple[Item, concurrent.futures.Future]]] = []
        exhausted = False
        size = self.runner.input_size if self.kind != "detector" else None

        def fill() -> None:
            nonlocal exhausted
            while not exhausted and len(pending) < window:
                try:
                    item = next(source)
                except StopIteration:
                    exhausted = True
                    return
                pending.append((item, self._load(item, size)))

        def take_batch() -> list[tuple[Item, concurrent.futures.Future]]:
            batch: list[tuple[Item, concurrent.futures.Future]] = []
            pixels = images = 0
            while pending and images < self.batch_size:
                item, fut = pending[0]
                probed = fut.result()
                if isinstance(probed, _Probed):
                    if images and pixels + probed.pixels > self.max_image_pixels:
                        break
                    pixels += probed.pixels
                    images += 1
                    fut = self._pool.submit(self._decode, probed, size)
                pending.popleft()
                batch.append((item, fut))
            fill()
            started.append(batch)
            return batch

        try:
            fill()
            current = take_batch()
            while current:
                results = [(item, fut.result()) for item, fut in current]
                upcoming = take_batch()  # decoded while the model runs on this batch
                ready: list[tuple[Item, _Image]] = []
                out: list[tuple[Item, Outcome]] = []
                for item, result in results:
                    if isinstance(result, Failed):
                        out.append((item, result))
                    else:
                        ready.append((item, result))
                del results
                if ready:
                    preds = self._predict([img for _, img in ready], [it for it, _ in ready])
                    for (item, img), pred in zip(ready, preds, strict=True):
                        pred = _scale_boxes(pred, img.scale_x, img.scale_y) if self.kind == "detector" else pred
                        out.append((item, self._outcome(item, pred, img.width, img.height, img.depth)))
                del ready
                started.pop(0)
                yield out
                current = upcoming
        finally:
            for _item, fut in pending:
                fut.cancel()
            for batch in started:
                for _item, fut in batch:
                    fut.cancel()

    def _decode(self, probed: _Probed, size: tuple[int, int] | None) -> _Image | Failed:
        try:
            return decode_image(probed.data, size, self.max_image_pixels)
        except ImageError as exc:
            return Failed(f"image: {exc.reason}")
        except Exception as exc:  # corrupt, truncated or not an image: this line only
            return Failed(f"image: {_image_error(exc)}")

    def _load(self, item: Item, size: tuple[int, int] | None) -> concurrent.futures.Future:
        """A future of the fetched image with its header read (``_Probed``) or of ``Failed``;
        never raises. No pixel is decoded here: a batch is sized by what decoding will cost."""
        out: concurrent.futures.Future = concurrent.futures.Future()
        try:
            url = self._image_url(item)
        except _LineFailure as exc:
            out.set_result(Failed(exc.reason))
            return out
        fetched = self._fetcher().submit(url)
        budget = self.max_image_pixels

        def probe(data: bytes) -> None:
            if out.cancelled():
                return
            try:
                info = read_info(data)
                result: Any = _Probed(data, info, decoded_pixels(info, budget, size))
            except ImageError as exc:  # over the budget and not reducible, or not an image
                result = Failed(f"image: {exc.reason}")
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
                self._pool.submit(probe, f.result())
            except RuntimeError:  # the pool is shut down: the job is closing
                out.cancel()

        fetched.add_done_callback(on_fetched)
        return out

    def _image_url(self, item: Item) -> str:
        value = item.record.get(self.image_key)
        if value is None and self.image_key == DEFAULT_IMAGE_KEY:
            raise _LineFailure(f"no image: the line has no {DEFAULT_IMAGE_KEY!r} (use --image-key for another key)")
        if value is None:
            raise _LineFailure(f"no image: the line has no key {self.image_key!r}")
        if not isinstance(value, str) or not value.strip():
            raise _LineFailure(f"no image: {self.image_key} is {'empty' if isinstance(value, str) else json_kind(value)}")
        return resolve_reference(value, base_for_line(self.context.options, item.index, self.base))

    def _predict(self, images: list[_Image], items: list[Item]) -> list[Any]:
        """Raw predictions; a model error on one image becomes that image's prediction (its line
        fails with the error as reason) and a failed batch runs its images one by one, so a bad
        image fails alone whatever the batch size. A model that fails on every image is stopped by
        the job (``failure_rules.SystematicFailure``: ``model-error`` is a configuration rule)."""
        import numpy as np
        import torch

        def tensors(imgs: list[_Image]) -> Any:
            if self.kind == "detector":
                return [torch.from_numpy(i.pixels).permute(2, 0, 1).contiguous() for i in imgs]
            return torch.from_numpy(np.stack([i.pixels for i in imgs])).permute(0, 3, 1, 2).contiguous()

        try:
            preds = self.runner.predict(tensors(images))
        except (JobError, UsageError):
            raise
        except Exception as exc:
            if len(images) == 1:
                return [self._model_error(exc)]
            first = exc
        else:
            return preds
        log.warning("model failed on a batch of %d (%s); running its images one by one",
                    len(images), scrub(str(first), 160))
        out: list[Any] = []
        for img in images:
            try:
                pred = self.runner.predict(tensors([img]))[0]
            except (JobError, UsageError):
                raise
            except Exception as exc:
                out.append(self._model_error(exc))
            else:
                out.append(pred)
        return out

    def _model_error(self, exc: Exception) -> JobError:
        """The failure of one image in the model (rule ``model-error``). A model failing on every
        image stops the job through the recorder's ``SystematicFailure``, as for any method."""
        return JobError(f"model: {type(exc).__name__}: {scrub(str(exc), 160)}")

    def _batches_remote(self, items: Iterable[Item]) -> Iterator[list[tuple[Item, Outcome]]]:
        """An endpoint fetches its own images: send URLs, a few requests in flight."""
        source = iter(items)
        pending: deque[tuple[list[tuple[Item, str]], list[Failed | None], concurrent.futures.Future]] = deque()
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
                try:
                    batch.append((item, self._image_url(item)))
                except _LineFailure as exc:
                    early.append((item, Failed(exc.reason)))
            if not batch and not early:
                return False
            fut = self._pool.submit(self.runner.predict_urls, [u for _, u in batch]) if batch else None
            pending.append((batch, early, fut))  # type: ignore[arg-type]
            return True

        try:
            while len(pending) < HTTP_IN_FLIGHT and submit_next():
                pass
            while pending:
                batch, early, fut = pending.popleft()
                out: list[tuple[Item, Outcome]] = list(early)  # type: ignore[arg-type]
                if fut is not None:
                    preds = fut.result()
                    for (item, url), pred in zip(batch, preds, strict=True):
                        out.append((item, self._remote_outcome(item, url, pred)))
                while len(pending) < HTTP_IN_FLIGHT and submit_next():
                    pass
                yield out
        finally:
            for _b, _e, fut in pending:
                if fut is not None:
                    fut.cancel()

    def _remote_outcome(self, item: Item, url: str, pred: Any) -> Outcome:
        if isinstance(pred, Exception):
            return Failed(scrub(str(pred), 240))
        if self.class_names is None:
            self.class_names = self.runner.class_names
            if self.class_names is None:
                raise UsageError("the model endpoint sent no class_names; pass --class-names FILE")
        width = height = depth = 0
        if self.kind != "classifier":
            try:
                width, height, depth = _size_from_prediction(pred) or self._fetch_size(url)
            except _LineFailure as exc:
                return Failed(exc.reason)
        return self._outcome(item, pred, width, height, depth)

    def _fetch_size(self, url: str) -> tuple[int, int, int]:
        try:
            data = self._fetcher().fetch(url)
        except FetchError as exc:
            raise _LineFailure(f"image size: {exc}") from None
        try:
            info = read_info(data)  # the header only
        except ImageError as exc:
            raise _LineFailure(f"image size: {exc.reason}") from None
        return info.width, info.height, info.depth

    # -- from a prediction to an outcome -----------------------------------------------------------

    def _outcome(self, item: Item, pred: Any, width: int, height: int, depth: int) -> Outcome:
        from ..models import postprocess as pp

        if isinstance(pred, Exception):
            return Failed(scrub(str(pred), 240))
        names = self.class_names or []
        p = self.params
        if self.kind == "detector":
            det = pp.filter_detections(
                pred, width=width, height=height, confidence_threshold=self.confidence_threshold,
                nms_threshold=p["nms_threshold"], min_object_size=p["min_object_size"],
                max_objects=p["max_objects"], allowed=self._allowed,
            )
            value, meta = pp.detection_label(det, width=width, height=height, depth=depth, class_names=names)
            return self._route_or_label(value, meta, det.confidence)
        logits = pred.get("logits") if isinstance(pred, dict) else pred
        if self.task_type == "image-classification":
            c = pp.classify_single(logits, class_names=names, confidence_threshold=self.confidence_threshold,
                                   allowed=self._allowed)
            if c.below_threshold:
                return Routed(
                    f"top confidence {c.confidence:.3f} is below confidence_threshold {self.confidence_threshold:g}",
                    {"review-status": "routed", "confidence": round(c.confidence, pp.SCORE_DECIMALS)},
                )
            return self._route_or_label(c.value, c.metadata, c.confidence)
        if self.task_type == "image-classification-multilabel":
            c = pp.classify_multi(logits, class_names=names, confidence_threshold=self.confidence_threshold,
                                  allowed=self._allowed)
            return self._route_or_label(c.value, c.metadata, c.confidence)
        seg = pp.segment(logits, width=width, height=height, class_names=names,
                         confidence_threshold=self.confidence_threshold, allowed=self._allowed)
        routed = self._routed(seg.confidence)
        if routed is not None:
            return routed
        url = join(self.job_url, "annotations", "masks", f"{item.number}.png")
        self._writes.append((item, self._pool.submit(_write_mask, url, seg, pp)))
        return _DEFERRED

    def _routed(self, confidence: float | None) -> Routed | None:
        """Routed for review below ``--review-below``; an unscored label (None) is never routed:
        a missing score is not a low one."""
        if self.review_below is None or confidence is None or confidence >= self.review_below:
            return None
        return Routed(
            f"confidence {confidence:.3f} is below --review-below {self.review_below:g}",
            {"review-status": "routed", "confidence": round(confidence, 4), "review-threshold": self.review_below},
        )

    def _route_or_label(self, value: Any, metadata: dict, confidence: float | None) -> Outcome:
        return self._routed(confidence) or Labeled(value, metadata)

    def _finished_writes(self, *, block: bool) -> Iterator[tuple[Item, Outcome]]:
        while self._writes and (block or self._writes[0][1].done()):
            item, fut = self._writes.popleft()
            try:
                yield item, fut.result()
            except TotaskError as exc:
                yield item, Failed(f"mask: {scrub(str(exc), 200)}")
            except Exception as exc:
                yield item, Failed(f"mask: {type(exc).__name__}: {scrub(str(exc), 200)}")


def _image_error(exc: Exception) -> str:
    from PIL import UnidentifiedImageError

    if isinstance(exc, UnidentifiedImageError):
        return "not a readable image (no image format Pillow knows)"
    return f"not a readable image ({type(exc).__name__}: {scrub(str(exc), 160)})"


def _scale_boxes(pred: Any, scale_x: float, scale_y: float) -> Any:
    """A detector's boxes from the decoded (reduced) image back to the image as stored."""
    if (scale_x == 1.0 and scale_y == 1.0) or not isinstance(pred, dict) or pred.get("boxes") is None:
        return pred
    import torch

    boxes = pred["boxes"]
    if isinstance(boxes, torch.Tensor) and boxes.dim() == 2 and boxes.shape[-1] == 4:
        factor = torch.tensor([scale_x, scale_y, scale_x, scale_y], dtype=boxes.dtype)
        return {**pred, "boxes": boxes * factor}
    return pred


def _settle(fut: concurrent.futures.Future, value: Any) -> None:
    """Set a result unless the future was cancelled meanwhile (the job is closing)."""
    try:
        fut.set_result(value)
    except concurrent.futures.InvalidStateError:
        pass


class _LineFailure(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _Deferred:
    """Placeholder outcome of a line whose mask is still being written; never yielded."""


_DEFERRED: Any = _Deferred()


def _write_mask(url: str, seg: Any, pp: Any) -> Labeled:
    from ..storage import write_bytes_atomic

    write_bytes_atomic(url, pp.mask_png(seg.mask, seg.palette))
    return Labeled(url, seg.metadata)


def _size_from_prediction(pred: Any) -> tuple[int, int, int] | None:
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


def _absolute(url: str) -> str:
    return url if has_scheme(url) else os.path.abspath(url)


def _absolute_model(spec: str) -> str:
    """Local model files and ``file.py:factory`` become absolute (a resumed job may run elsewhere);
    URLs and ``package.module:factory`` stay as given."""
    from ..models.loading import model_source_kind

    kind = model_source_kind(spec)
    if kind in ("torchscript", "export"):
        return _absolute(spec)
    if kind == "entrypoint":
        module, _, attr = spec.rpartition(":")
        return f"{os.path.abspath(module)}:{attr}" if module.endswith(".py") else spec
    return spec
