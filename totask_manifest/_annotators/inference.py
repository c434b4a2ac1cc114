"""The ``inference`` method: label images with a torch model (or a model endpoint), batched.

A pipeline keeps the model busy: image bytes come through the same fetch layer as the ``file``
method (an event loop in a background thread, ``concurrency`` requests in flight), Pillow decodes
and resizes them in a thread pool (it releases the GIL while decoding), and a bounded window of
a few batches is loaded ahead while the model runs in the caller's thread. A line whose image
cannot be fetched or decoded fails alone; the batch runs without it. The model is the
``models`` package's: its source (``models.sources``) loads a runner, its head
(``models.heads``) says what the output means, and ``models.labeler`` makes each prediction a
line's outcome. A model endpoint fetches its own images (``inference_endpoint``).

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

from .._cpus import usable_cpus
from .._errors import TotaskError, UsageError, json_kind, json_text
from .._fetch import (
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
from .._formats.class_names import read_class_names as load_class_names
from .._imaging import DEFAULT_MAX_IMAGE_PIXELS, check_budget, check_input_size
from .._jobs.run import JobRun
from .._models.heads import head_for
from .._models.labeler import Labeler, PendingMask
from .._models.loading import parse_input_size
from .._models.params import check_params_for_task, emit_notes, load_params_file, resolve_params
from .._models.runners import ModelRunner
from .._models.sources import RunnerSettings, absolute_model_ref, source_for
from .._options import Options, nested, option
from .._task_types import get_task_type
from .base import Annotator, Failed, Item, Outcome, Resources
from .file import CLASS_NAMES_HELP
from .inference_endpoint import EndpointBatches
from .inference_images import ImageLoader
from .inference_local import LocalBatches

log = logging.getLogger("totask_manifest.inference")

DEFAULT_IMAGE_KEY = "source-ref"
_NO_NAMES = (
    "--model {model}: no class names; pass --class-names FILE (one per line) or give the model a "
    "class_names attribute (see docs/inference.md)"
)
#: flags that override one parameter each (option key -> parameter path)
FLAG_PARAMS = {
    "confidence_threshold": ("confidence_threshold",),
    "nms_threshold": ("nms_threshold",),
    "batch_size": ("model_config", "batch_size"),
    "device": ("model_config", "device"),
    "use_fp16": ("model_config", "use_fp16"),
}
#: the command-line flag of each option above, named in its error
FLAG_NAMES = {"use_fp16": "--fp16"}


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
        # checked alone first, so a bad flag is named as the flag, not blamed on the params file
        alone = {path[0]: value} if len(path) == 1 else {path[0]: {path[1]: value}}
        resolve_params(alone, source=FLAG_NAMES.get(key, "--" + key.replace("_", "-")), notes=[])
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
    pending: list[str] = []
    params = resolve_params(raw, task_type, source=source, notes=pending)
    pending.extend(_input_size_ignored(options, task_type))
    emit_notes(pending, notes)
    return params


def _input_size_ignored(options: dict[str, Any], task_type: str | None) -> list[str]:
    """The note for an ``--input-size`` this job has no use for: a detector takes each image at
    its own size and an endpoint fetches its own images, so the value (kept in job.json, as given)
    changes nothing, which a user expecting resized inputs is told as an unused parameter is."""
    given = options.get("input_size")
    if given is None:
        return []
    shown = given if isinstance(given, str) else json_text(given)
    if options.get("model") and not source_for(options["model"]).local:
        return [f"--input-size {shown} ignored: a model endpoint fetches its images itself, at their own size"]
    name = get_task_type(task_type).name if task_type is not None else None
    if name is not None and not head_for(name).stacked:
        return [f"--input-size {shown} ignored: it applies to classifiers and segmenters (images resized to it), "
                f"not {name}: a detector takes each image at its own size"]
    return []


@dataclass(frozen=True)
class InferenceOptions(Options):
    """``--method inference``'s options. ``--class-names`` and the fetch options are shared with
    ``--method file`` (one flag each on the command line)."""

    model: str | None = option(None, metavar="MODEL", path=absolute_model_ref,
                               help="TorchScript file, torch.export .pt2 file, module:factory (or file.py:factory), "
                               "or an http(s) model endpoint")
    weights: str | None = option(None, metavar="FILE", path=True,
                                 help="state dict for a module:factory model (read with torch.load(weights_only=True))")
    class_names: str | None = option(None, metavar="FILE", help=CLASS_NAMES_HELP, path=True)
    input_size: str | int | list | None = option(
        None, metavar="N|H,W",
        help="classifier/segmenter input size (default: the model's input_size attribute, else 224)")
    params_file: str | None = option(
        None, flag="--params", metavar="FILE", path=True,
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
    requires: ClassVar[dict[str, str]] = {"torch": "inference"}  # an endpoint's too: post-processing is torch

    def __init__(self, context: JobRun) -> None:
        super().__init__(context)
        options = context.options
        self.task_type = get_task_type(context.task_type).name
        self._check_static(options, self.task_type)
        self.params = effective_params(options, self.task_type)
        self.source = source_for(options["model"])
        self.head = head_for(self.task_type)
        self.batch_size = self.params["model_config"]["batch_size"]
        self.image_key: str = options.get("image_key") or DEFAULT_IMAGE_KEY
        self.max_image_pixels: int = options.get("max_image_pixels") or DEFAULT_MAX_IMAGE_PIXELS
        self.policy = FetchPolicy.from_options(options)
        self.base: str | None = options.get("relative_to") or (
            base_of(context.manifest_url) if context.manifest_url else None
        )
        self.job_url = _absolute(context.job_url) if context.job_url else ""
        self._sync: SyncFetcher | None = None
        workers = max(2, min(8, usable_cpus()))
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="totask-decode")
        self.runner: Any = None
        try:
            self.runner = self._load_runner(options)
            file_names = load_class_names(options["class_names"]) if options.get("class_names") else None
            class_names = file_names or self.runner.class_names
            if class_names is None and self.source.local:
                raise UsageError(self.runner.names_refused or _NO_NAMES.format(model=options["model"]))
            self.labeler = Labeler(self.head, self.params, task_type=self.task_type, class_names=class_names,
                                   review_below=options.get("review_below"), job_url=self.job_url)
        except BaseException:
            self.close()
            raise
        log.info("inference: %s, batch %d", self.runner.description, self.batch_size)

    #: the class names ``check`` read from the model it loaded, taken by ``class_names`` right after
    #: it as a job starts: a big model loaded on the CPU costs seconds, once is enough (``check``
    #: runs first at every start, so an entry is never older than the model file it read)
    _checked_names: ClassVar[dict[tuple[Any, Any], Any]] = {}

    @classmethod
    def check(cls, options: InferenceOptions, task_type: str) -> None:
        """Everything, before the job exists: options, parameters, and a torch model loaded once
        on the CPU (a wrong file, weights that do not fit, or missing class names fail here)."""
        raw = options.to_dict()
        cls._check_static(raw, task_type)
        source = source_for(raw["model"])
        if not source.local:
            return
        loaded = source.load(raw.get("weights"))
        cls._checked_names[(raw["model"], raw.get("weights"))] = loaded.class_names
        from .._models.heads import head_for
        from .._models.sources import check_class_count, check_detector_output, check_signature

        head = head_for(get_task_type(task_type).name)
        check_signature(loaded, head)
        check_detector_output(loaded, head, loaded.input_size)
        if raw.get("input_size") is None and head.stacked:  # the model's own input_size, as the job will use it
            check_input_size(head.input_size(None, loaded.input_size), raw.get("max_image_pixels")
                             or DEFAULT_MAX_IMAGE_PIXELS, f"--model {raw['model']}: its input_size")
        names = load_class_names(raw["class_names"]) if raw.get("class_names") else loaded.class_names
        if names is None:
            raise UsageError(loaded.names_refused or _NO_NAMES.format(model=raw["model"]))
        from .._models.postprocess import resolve_class_filter

        resolve_class_filter(effective_params(raw, task_type, notes=[])["class_filter"], names)
        check_class_count(loaded, head, head.input_size(parse_input_size(raw.get("input_size")), loaded.input_size),
                          names, raw.get("class_names"))

    @classmethod
    def class_names(cls, options: InferenceOptions, task_type: str) -> tuple[list[str], str] | None:
        """``--class-names``, else a local model's own (loaded on the CPU, as ``check`` loads it);
        an endpoint's are known only once it answers. A ``class_filter`` is not applied: a class
        the model may name is one the job may write."""
        raw = options.to_dict()
        if raw.get("class_names"):
            return load_class_names(raw["class_names"]), f"--class-names {raw['class_names']}"
        source = source_for(raw["model"])
        if not source.local:
            return None
        key = (raw["model"], raw.get("weights"))
        names = cls._checked_names.pop(key) if key in cls._checked_names else source.load(raw.get("weights")).class_names
        return (list(names), f"the model's class names, --model {raw['model']}") if names else None

    @classmethod
    def resources(cls, options: InferenceOptions) -> Resources:
        """A GPU per instance for a local model, unless the device is the CPU or Apple's."""
        device = str(options.device or "auto").lower()
        remote = bool(options.model) and not source_for(options.model).local  # an endpoint runs elsewhere
        return Resources() if device in ("cpu", "mps") or remote else Resources(gpus=1.0)

    @classmethod
    def _check_static(cls, options: dict[str, Any], task_type: str) -> None:
        from .._models.loading import parse_input_size
        from .._models.sources import check_model_ref

        name = get_task_type(task_type).name
        check_params_for_task({}, name)
        check_model_ref(options.get("model"), options.get("weights"))
        params = effective_params(options, name, notes=[])  # the job logs its notes once, when it runs
        check_params_for_task(params, name, notes=[])
        budget = options.get("max_image_pixels")
        budget = DEFAULT_MAX_IMAGE_PIXELS if budget is None else check_budget(budget)
        size = parse_input_size(options.get("input_size"))
        if head_for(name).stacked:  # a detector takes each image at its own size
            check_input_size(size, budget, "--input-size")
        review = options.get("review_below")
        if review is not None and (isinstance(review, bool) or not isinstance(review, int | float) or not 0 <= review <= 1):
            raise UsageError(f"--review-below must be a number between 0 and 1, got {json_text(review)}")
        key = options.get("image_key")
        if key is not None and (not isinstance(key, str) or not key.strip()):
            raise UsageError("--image-key must name a key")
        if options.get("class_names"):
            load_class_names(options["class_names"])
        check_fetch_options(options)

    # -- set-up --------------------------------------------------------------------------------

    def _load_runner(self, options: dict[str, Any]) -> ModelRunner:
        mc = self.params["model_config"]
        settings = RunnerSettings(
            weights=options.get("weights"), input_size=parse_input_size(options.get("input_size")),
            device=mc["device"], use_fp16=mc["use_fp16"], params={**self.params, "task_type": self.task_type},
            timeout=max(self.policy.timeout, 60.0), retries=self.policy.retries,
        )
        return self.source.runner(self.head, settings)

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
        stages = self._batches_local(items) if self.source.local else self._batches_remote(items)
        try:
            for pairs in stages:
                for item, outcome in pairs:
                    if isinstance(outcome, PendingMask):
                        self._writes.append((item, self._pool.submit(outcome.write)))
                    else:
                        yield item, outcome
                yield from self._finished_writes(block=False)
            yield from self._finished_writes(block=True)
        finally:
            close = getattr(stages, "close", None)
            if close is not None:
                close()
            for _item, fut in self._writes:
                fut.cancel()

    def _batches_local(self, items: Iterable[Item]) -> Iterator[list[tuple[Item, Any]]]:
        """Images fetched and decoded here, labeled by the local model (``inference_local``)."""
        loader = ImageLoader(lambda url: self._fetcher().submit(url), self._pool, self.max_image_pixels)
        batches = LocalBatches(self.runner, self.labeler, loader, batch_size=self.batch_size, pool=self._pool,
                               max_image_pixels=self.max_image_pixels, image_url=self._image_url,
                               stopped=self.context.stop.is_set)
        self.context.in_flight = batches.finishing  # what a first Ctrl-C's line says it waits for
        return batches(items)

    def _image_url(self, item: Item) -> str | Failed:
        """The line's image URL, resolved against its base; ``Failed`` for a line without one."""
        value = item.record.get(self.image_key)
        if value is None and self.image_key == DEFAULT_IMAGE_KEY:
            return Failed(f"no image: the line has no {DEFAULT_IMAGE_KEY!r} (use --image-key for another key)")
        if value is None:
            return Failed(f"no image: the line has no key {self.image_key!r}")
        if not isinstance(value, str) or not value.strip():
            return Failed(f"no image: {self.image_key} is {'empty' if isinstance(value, str) else json_kind(value)}")
        return resolve_reference(value, base_for_line(self.context.options, item.index, self.base))

    def _batches_remote(self, items: Iterable[Item]) -> Iterator[list[tuple[Item, Any]]]:
        """An endpoint fetches its own images: send URLs, a few requests in flight."""
        return EndpointBatches(
            self.runner, self.labeler, batch_size=self.batch_size, pool=self._pool,
            image_url=self._image_url, fetch=lambda url: self._fetcher().fetch(url),
        )(items)

    def _finished_writes(self, *, block: bool) -> Iterator[tuple[Item, Outcome]]:
        while self._writes and (block or self._writes[0][1].done()):
            item, fut = self._writes.popleft()
            try:
                yield item, fut.result()
            except TotaskError as exc:
                yield item, Failed(f"mask: {scrub(str(exc), 200)}")
            except Exception as exc:
                yield item, Failed(f"mask: {type(exc).__name__}: {scrub(str(exc), 200)}")


def _absolute(url: str) -> str:
    return url if has_scheme(url) else os.path.abspath(url)
