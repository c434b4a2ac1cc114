"""The Ray engine: the same job, annotated by a pool of actors on a Ray cluster.

Only annotation moves. Ray Data reads the input manifest in byte ranges (each range's first line
number counted once on the driver), keeps the selected lines, and hands batches to a pool of
actors, each holding one annotator built once (a model loads once per actor, a file annotator
keeps its connection pool). Results come back to the driver in input order
(``preserve_order``), and the driver gives them to the same ``Recorder`` the local engine uses,
so checkpoint parts, the output manifest, resume and failures are exactly the local engine's.

A worker that dies mid-batch is restarted and its batch retried (``max_restarts`` /
``max_task_retries``); the driver records each line index once, in increasing order, so a
retried batch can neither lose nor duplicate a line. A driver that dies leaves complete
checkpoint parts behind, and ``resume`` continues after the last one.

``ray`` is imported at module level on purpose: without the ``ray`` extra, ``get_engine("ray")``
turns the ``ModuleNotFoundError`` into a usage error that says how to install it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import signal
import sys
import threading
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
import ray
import ray.data

from ..annotators.base import Annotator, AnnotatorContext, Failed, Item, Labeled, Outcome, Routed
from ..errors import JobError, UsageError
from ..jobs.selection import needs_label
from ..manifest.io import iter_lines_from
from ..manifest.line import Line
from ..storage import is_local, open_read, size, url_to_fs
from .base import Engine, RunPlan

log = logging.getLogger("totask_manifest")

DEFAULT_BATCH_SIZE = 256
DEFAULT_MAX_RETRIES = 4
_SCAN_CHUNK = 1 << 20


# -- reading: byte ranges --------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class ByteRange:
    start: int
    end: int
    #: 1-based number of the range's first line (the first line starting at or after ``start``)
    first_number: int


def plan_ranges(url: str, *, lines_per_range: int) -> list[ByteRange]:
    """Cut the file after every ``lines_per_range``-th newline.

    Ranges are counted in lines, not bytes, because a range is the unit that comes back to the
    driver (Ray Data returns one block per task): a fixed number of lines keeps checkpoints
    regular and bounds what a stop waits for or a crash redoes. One streaming pass finds the
    newlines (numpy, at memory speed); a range holds the lines that *start* inside it, the rule
    of ``iter_lines_from``, so its first line number is known exactly.
    """
    total = size(url)
    if total == 0:
        return []
    step = max(1, lines_per_range)
    starts = [0]
    seen = 0  # newlines before the current chunk
    offset = 0
    with open_read(url) as f:
        while chunk := f.read(_SCAN_CHUNK):
            positions = np.flatnonzero(np.frombuffer(chunk, dtype=np.uint8) == 0x0A)
            # the newlines that end a range: the step-th, 2*step-th, ... newline of the file
            first_cut = (-seen - 1) % step  # index in ``positions`` of the next cutting newline
            starts.extend(int(offset + p + 1) for p in positions[first_cut::step])
            seen += len(positions)
            offset += len(chunk)
    if starts[-1] >= total:  # the file ends with a cutting newline: no line starts there
        starts.pop()
    ends = [*starts[1:], total]
    return [ByteRange(s, e, 1 + k * step) for k, (s, e) in enumerate(zip(starts, ends, strict=True))]


def read_range(row: dict[str, Any], *, url: str, attribute: str, after_index: int) -> Iterator[dict[str, Any]]:
    """Rows for the selected lines of one byte range (runs in a Ray task)."""
    with open_read(url) as f:
        for line in iter_lines_from(f, start=int(row["start"]), end=int(row["end"]),
                                    first_number=int(row["first_number"])):
            index = line.number - 1
            if index <= after_index or line.is_blank:
                continue
            if needs_label(line.record(), attribute):
                yield {"index": index, "body": line.body, "newline": line.newline, "prefix": line.prefix}


# -- annotating: the actor ------------------------------------------------------------------

def encode_outcome(outcome: Outcome) -> tuple[str, str, bytes]:
    """(kind, reason, payload): Arrow-friendly columns; value and metadata travel pickled so that
    the driver records exactly the objects the annotator returned, as the local engine does."""
    if isinstance(outcome, Labeled):
        return "labeled", "", pickle.dumps((outcome.value, outcome.metadata, outcome.metadata_order), protocol=5)
    if isinstance(outcome, Routed):
        return "routed", outcome.reason, pickle.dumps((None, outcome.metadata), protocol=5)
    if isinstance(outcome, Failed):
        return "failed", outcome.reason, b""
    raise JobError(f"annotator returned {type(outcome).__name__}, not Labeled, Failed or Routed")


def decode_outcome(kind: str, reason: str, payload: bytes) -> Outcome:
    if kind == "failed":
        return Failed(reason)
    value, metadata, *order = pickle.loads(payload)
    if kind == "labeled":
        return Labeled(value, metadata, *order)
    return Routed(reason, metadata)


class AnnotatorHolder:
    """One annotator per actor, built once; each call annotates one batch of rows.

    The annotator's own ``annotate`` is used, so a file annotator keeps its requests in flight
    across the batch and a model annotator batches its forward passes as it does locally.
    """

    def __init__(self, annotator_cls: type[Annotator], context: AnnotatorContext) -> None:
        self.annotator = annotator_cls(context)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        indices = [int(i) for i in batch["index"]]
        items = [Item(i, i + 1, orjson.loads(body)) for i, body in zip(indices, batch["body"], strict=True)]
        outcomes: dict[int, Outcome] = {}
        for item, outcome in self.annotator.annotate(iter(items)):
            outcomes[item.index] = outcome
        missing = [i + 1 for i in indices if i not in outcomes]
        if missing:
            raise JobError(f"annotator returned no outcome for line(s) {missing[:5]}")
        encoded = [encode_outcome(outcomes[i]) for i in indices]
        return {
            "index": batch["index"],
            "body": batch["body"],
            "newline": batch["newline"],
            "prefix": batch["prefix"],
            "kind": np.array([e[0] for e in encoded], dtype=object),
            "reason": np.array([e[1] for e in encoded], dtype=object),
            "payload": np.array([e[2] for e in encoded], dtype=object),
        }

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.annotator.close()


# -- the engine -----------------------------------------------------------------------------

def _env_number(name: str, kind: type = int) -> Any:
    raw = os.environ.get(name)
    if raw in (None, ""):
        return None
    try:
        return kind(raw)
    except ValueError:
        raise UsageError(f"{name}={raw!r} is not {'an integer' if kind is int else 'a number'}") from None


def _code_root(cls: type) -> str | None:
    """The folder to put on the workers' ``PYTHONPATH`` so they can import ``cls`` by name
    (a plugin annotator given as ``package.module:Class`` from a checkout, not installed)."""
    module = sys.modules.get(cls.__module__)
    path = getattr(module, "__file__", None)
    if cls.__module__ == "__main__" or not path:
        return None  # cloudpickle sends classes from __main__ by value
    if cls.__module__.split(".")[0] == __name__.split(".")[0]:
        return None  # the project's own annotators: the workers have the package installed
    root = os.path.dirname(os.path.abspath(path))
    for _ in range(cls.__module__.count(".")):
        root = os.path.dirname(root)
    if os.path.basename(root) in ("site-packages", "dist-packages"):
        return None  # installed: another node's Python must not be pointed at this one's packages
    return root


@contextlib.contextmanager
def _keep_signal_handlers() -> Iterator[None]:
    """``ray.init`` installs its own SIGTERM handler (exit at once); the job's handlers, which
    stop cleanly and commit the output, must stay in charge."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, handler in saved.items():
            if handler is not None:
                signal.signal(s, handler)


class RayEngine(Engine):
    """Options (Python API ``engine_options``; environment variables give the CLI's defaults):

    * ``address``: an existing cluster (``auto``, ``ray://head:10001``, ``host:6379``); without
      it a private local instance is started for the run and shut down after;
    * ``num_cpus`` (``TOTASK_RAY_NUM_CPUS``): CPUs of that local instance (default: all);
    * ``actors`` (``TOTASK_RAY_ACTORS``): size of the annotator pool (default: one per GPU for a
      GPU model, else one per CPU, leaving one CPU for reading);
    * ``batch_size`` (``TOTASK_RAY_BATCH_SIZE``): lines per actor call (default 256);
    * ``gpus_per_actor`` (``TOTASK_RAY_GPUS_PER_ACTOR``): GPUs per actor when the cluster has
      GPUs and the annotator runs a local model (default 1; fractions share a GPU);
    * ``max_retries``: restarts of a dead actor and retries of its batch (default 4);
    * ``range_lines``: lines per byte range of the input (default: the batch size);
    * ``runtime_env``: a Ray runtime environment for the workers (``py_modules``, ``pip``, ...).
    """

    name = "ray"

    def __init__(
        self,
        address: str | None = None,
        *,
        num_cpus: int | None = None,
        actors: int | None = None,
        batch_size: int | None = None,
        gpus_per_actor: float | None = None,
        max_retries: int = DEFAULT_MAX_RETRIES,
        range_lines: int | None = None,
        runtime_env: dict[str, Any] | None = None,
    ) -> None:
        self.address = address or None
        self.num_cpus = num_cpus if num_cpus is not None else _env_number("TOTASK_RAY_NUM_CPUS")
        self.actors = actors if actors is not None else _env_number("TOTASK_RAY_ACTORS")
        self.batch_size = batch_size or _env_number("TOTASK_RAY_BATCH_SIZE") or DEFAULT_BATCH_SIZE
        env_gpus = _env_number("TOTASK_RAY_GPUS_PER_ACTOR", float)
        self.gpus_per_actor = gpus_per_actor if gpus_per_actor is not None else env_gpus
        self.max_retries = max_retries
        self.range_lines = range_lines or self.batch_size
        self.runtime_env = runtime_env
        for label, value in (("actors", self.actors), ("batch_size", self.batch_size),
                             ("range_lines", self.range_lines)):
            if value is not None and value < 1:
                raise UsageError(f"ray engine: {label} must be at least 1, not {value}")

    # -- cluster ---------------------------------------------------------------------------

    def _connect(self, plan: RunPlan) -> bool:
        """Join or start Ray; True when this run started it (and so shuts it down)."""
        if ray.is_initialized():
            return False
        kwargs: dict[str, Any] = {"logging_level": logging.WARNING, "log_to_driver": True}
        if self.address:
            kwargs["address"] = self.address
        else:
            kwargs.update(include_dashboard=False, num_cpus=self.num_cpus or os.cpu_count() or 1)
        if self.runtime_env:
            kwargs["runtime_env"] = self.runtime_env
        with _keep_signal_handlers():
            ray.init(**kwargs)
        return True

    def _actor_env(self, plan: RunPlan) -> dict[str, Any] | None:
        """Set on the actor pool, not at ``ray.init``, so it also applies on a cluster this run
        joined (started by a test, a notebook or ``ray start``)."""
        if self.runtime_env is not None:
            return None  # the job-level environment given by the user decides
        root = _code_root(plan.annotator_cls)
        if root is None:
            return None
        paths = [root, *(p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and p != root)]
        return {"env_vars": {"PYTHONPATH": os.pathsep.join(paths)}}

    def _wants_gpu(self, plan: RunPlan) -> bool:
        cls = plan.annotator_cls
        if not (getattr(cls, "uses_gpu", False) or getattr(cls, "name", "") == "inference"):
            return False
        options = plan.context.options
        device = str(options.get("device") or "auto").lower()
        model = str(options.get("model") or "")
        return device not in ("cpu", "mps") and not model.startswith(("http://", "https://"))

    def _pool(self, plan: RunPlan) -> tuple[int, float, float]:
        """(actors, CPUs per actor, GPUs per actor)."""
        resources = ray.cluster_resources()
        gpus = float(resources.get("GPU", 0) or 0)
        cpus = float(resources.get("CPU", 1) or 1)
        if gpus and self._wants_gpu(plan):
            per = self.gpus_per_actor or 1.0
            return self.actors or max(1, int(gpus / per)), 1.0, per
        # one CPU stays free for the reading tasks, or the pool could starve them
        return self.actors or max(1, int(cpus) - 1), 1.0, 0.0

    def _warn_about_local_paths(self, plan: RunPlan) -> None:
        with contextlib.suppress(Exception):
            if len([n for n in ray.nodes() if n.get("Alive")]) > 1:
                for label, url in (("input manifest", plan.input_url), ("output root", plan.config.output_root)):
                    fs, _ = url_to_fs(url)
                    if is_local(fs):
                        log.warning(
                            "ray: the %s %s is a local path on a multi-node cluster; workers on other nodes "
                            "cannot read it (use s3:// or another shared URL)", label, url,
                        )

    # -- run -------------------------------------------------------------------------------

    def run(self, plan: RunPlan) -> None:
        started_here = self._connect(plan)
        try:
            self._run(plan)
        finally:
            if started_here:
                with _keep_signal_handlers():
                    ray.shutdown()

    def _dataset(self, plan: RunPlan) -> ray.data.Dataset | None:
        actors, cpus, gpus = self._pool(plan)
        ranges = plan_ranges(plan.input_url, lines_per_range=self.range_lines)
        # ranges holding only finished lines are skipped (range k holds indices from k * range_lines)
        keep = [r for r in ranges if r.first_number - 1 + self.range_lines - 1 > plan.after_index]
        if not keep:
            return None
        log.info("ray: %d byte range(s), %d actor(s) x %g CPU, %g GPU, batches of %d line(s)",
                 len(keep), actors, cpus, gpus, self.batch_size)
        logging.getLogger("ray.data").setLevel(logging.WARNING)
        logging.getLogger("ray.data._internal.progress").setLevel(logging.ERROR)  # "bars disabled": ours show
        # Bounded, unlike Ray Data's default (-1, forever): an annotator that kills its worker on
        # every try (a segfaulting image decoder) must end the job FAILED, not loop. Ray 2.60 has
        # no named parameter for these yet and warns about the generic ones.
        remote_args: dict[str, Any] = {"max_restarts": self.max_retries, "max_task_retries": self.max_retries}
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*ray_remote_args.*deprecated", category=DeprecationWarning)
            return self._pipeline(plan, keep, actors, cpus, gpus, remote_args)

    def _pipeline(self, plan: RunPlan, keep: list[ByteRange], actors: int, cpus: float, gpus: float,
                  remote_args: dict[str, Any]) -> ray.data.Dataset:
        items = [{"start": r.start, "end": r.end, "first_number": r.first_number} for r in keep]
        return (
            ray.data.from_items(items, override_num_blocks=len(items))
            .flat_map(
                read_range,
                fn_kwargs={"url": plan.input_url, "attribute": plan.config.label_attribute,
                           "after_index": plan.after_index},
                num_cpus=0.5,
            )
            .map_batches(
                AnnotatorHolder,
                fn_constructor_kwargs={"annotator_cls": plan.annotator_cls, "context": plan.context},
                compute=ray.data.ActorPoolStrategy(size=actors),
                batch_size=self.batch_size,
                batch_format="numpy",
                num_cpus=cpus,
                num_gpus=gpus or None,
                runtime_env=self._actor_env(plan),
                **remote_args,
            )
        )

    def _run(self, plan: RunPlan) -> None:
        self._warn_about_local_paths(plan)
        ctx = ray.data.DataContext.get_current()
        saved = (ctx.execution_options.preserve_order, ctx.enable_progress_bars)
        ctx.execution_options.preserve_order = True  # outcomes come back in input order
        ctx.enable_progress_bars = False  # the job shows its own progress
        try:
            ds = self._dataset(plan)
            if ds is not None:
                self._record(plan, ds)
        finally:
            ctx.execution_options.preserve_order, ctx.enable_progress_bars = saved

    def _record(self, plan: RunPlan, ds: ray.data.Dataset) -> None:
        if plan.stop.is_set():  # stopped while Ray was starting
            return
        last = plan.after_index
        batches = ds.iter_batches(batch_size=None, batch_format="numpy", prefetch_batches=1)
        try:
            for batch in batches:
                for j in range(len(batch["index"])):
                    if plan.hard_stop.is_set():
                        return
                    index = int(batch["index"][j])
                    if index <= last:  # a retried block delivered again: recorded already
                        continue
                    line = Line(index + 1, bytes(batch["body"][j]), bytes(batch["newline"][j]),
                                bytes(batch["prefix"][j]))
                    item = Item(index, index + 1, line.record())
                    outcome = decode_outcome(str(batch["kind"][j]), str(batch["reason"][j]),
                                             bytes(batch["payload"][j]))
                    plan.recorder.accept(line, item, outcome)
                    last = index
                if plan.stop.is_set():  # the lines that came back are recorded; take no more
                    return
        finally:
            close = getattr(batches, "close", None)
            if close is not None:
                close()


__all__ = ["AnnotatorHolder", "ByteRange", "RayEngine", "decode_outcome", "encode_outcome",
           "plan_ranges", "read_range"]
