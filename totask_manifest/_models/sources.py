"""Where a model comes from, one class per kind of ``--model`` value, in a registry.

``source_for(ref)`` returns the first source in ``SOURCES`` that matches the reference; that
source checks it cheaply before a job (no model loaded), makes its paths absolute for job.json (a
resumed or chained job may run from another folder), and loads a runner for a head:

* ``http(s)://...``: a model endpoint the user runs (``HttpRunner``; it fetches the images);
* ``synapse:...``: refused, a Synapse pre-processor is its own method;
* ``module:factory`` or ``file.py:factory``: a Python factory, with ``--weights`` as a state dict;
* ``*.pt2``: a ``torch.export`` program, checked by ``models.safety`` before torch reads it;
* anything else: a TorchScript file (any fsspec URL).

Only ``local`` sources run in this process; their runners take decoded images.
"""

from __future__ import annotations

import logging
import os
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

from .._errors import JobError, StorageError, TotaskError, UsageError
from .._fetch import has_scheme
from .._signals import own_interrupts
from . import loading
from .heads import DEFAULT_INPUT_SIZE, Head, first_tensor
from .runners import (
    MODEL_AUTHORIZATION,
    HttpRunner,
    ModelInterrupt,
    ModelRunner,
    TorchRunner,
    _model_error,
    model_authorization,
    model_call,
)

log = logging.getLogger("totask_manifest.inference")


@dataclass(frozen=True)
class RunnerSettings:
    """What a runner is built with besides its source and head; each source reads its part."""

    #: a state dict for a factory (``--weights``)
    weights: str | None = None
    #: (height, width) given by ``--input-size``
    input_size: tuple[int, int] | None = None
    device: str = "auto"
    use_fp16: bool = False
    #: the parameters an endpoint receives with each request
    params: dict[str, Any] = field(default_factory=dict)
    timeout: float = 60.0
    retries: int = 3


class ModelSource(ABC):
    """One kind of ``--model`` reference."""

    #: the kind's name in messages
    name: ClassVar[str]
    #: the model runs in this process on decoded images (else it fetches images itself)
    local: ClassVar[bool] = True
    #: ``--weights`` applies to it
    takes_weights: ClassVar[bool] = False

    def __init__(self, ref: str) -> None:
        self.ref = ref

    @classmethod
    @abstractmethod
    def matches(cls, ref: str) -> bool:
        """Whether ``ref`` (stripped) is this kind of reference."""

    def check(self, weights: str | None = None) -> None:
        """Cheap checks before a job starts: no model is loaded."""
        if weights and not self.takes_weights:
            raise UsageError(
                f"--weights applies to a module:factory model only; --model {self.ref} is a {self.name} model "
                "that carries its own weights"
            )
        self._check_ref()
        if weights and not _exists(weights, "--weights"):
            raise UsageError(f"--weights: no such file: {weights}")

    def _check_ref(self) -> None:
        """What the reference itself must satisfy (a file that exists)."""

    def absolute(self) -> str:
        """The reference as job.json keeps it; URLs and module names stay as given."""
        return self.ref

    def load(self, weights: str | None = None) -> loading.LoadedModule:
        """The torch model on the CPU with what it declares (``local`` sources only)."""
        raise UsageError(f"--model {self.ref}: a {self.name} model is not loaded in this process")

    @abstractmethod
    def runner(self, head: Head, settings: RunnerSettings) -> ModelRunner:
        """The model, ready to predict for ``head``."""


class _TorchSource(ModelSource):
    """A torch model loaded into this process."""

    @abstractmethod
    def load(self, weights: str | None = None) -> loading.LoadedModule: ...

    def runner(self, head: Head, settings: RunnerSettings) -> ModelRunner:
        """A torch runner on the device the settings choose, images sized for the head."""
        from .device import select_device

        plan = select_device(settings.device, settings.use_fp16)
        loaded = self.load(settings.weights)
        return TorchRunner(loaded, head, plan, head.input_size(settings.input_size, loaded.input_size))


def check_signature(loaded: loading.LoadedModule, head: Head) -> None:
    """``UsageError`` when a TorchScript model's ``forward`` takes the other input than ``head``
    gives it (a batch ``Tensor`` for a classifier or segmenter, a ``List[Tensor]`` for a detector):
    the model does not fit the task type, so every image would fail alike with TorchScript's
    argument error. Only TorchScript declares its argument types; other models are not checked."""
    schema = getattr(getattr(loaded.module, "forward", None), "schema", None)
    arguments = list(getattr(schema, "arguments", ()))[1:]  # after self
    if not arguments:
        return
    first = arguments[0]
    kind = first.type.kind()
    wanted, given = ("TensorType", "a Tensor [B, 3, H, W]") if head.stacked else ("ListType", "a List[Tensor] of images")
    if kind not in ("TensorType", "ListType") or kind == wanted:
        return
    raise UsageError(
        f"--model {loaded.source}: forward takes {first.name}: {first.type}, but a {head.kind} is given {given} "
        "(docs/inference.md, The model protocol); is --task-type the model's?"
    )


def check_class_count(loaded: loading.LoadedModule, head: Head, input_size: tuple[int, int] | None,
                      names: list[str], class_names_file: str | None) -> None:
    """``UsageError`` when a classifier's logits are not one per class name (3 logits, 6 names), or
    a segmenter's channels neither one per name nor one more (the background's): the job would
    fail on its first batch, after its folder exists. Found by one forward, on the
    CPU, of one blank image of the size the job feeds, before the job (on the driver only: Ray's
    workers never call this). Only a head whose width is certain (``Head.counts_classes``) is run;
    a forward that fails on a blank image is left to the job, which names the error per line. One
    that runs but answers in another head's form (a detector's list of dicts given a batch: any
    model, TorchScript or not) does not fit the task type: refused as ``check_signature`` refuses
    a TorchScript one, before a job is left FAILED under the name."""
    if not head.counts_classes or input_size is None:
        return
    import numpy as np

    from .device import select_device

    try:
        runner = TorchRunner(loaded, head, select_device("cpu"), input_size)
        count = head.class_count_of(model_call(runner, [np.zeros((*input_size, 3), dtype=np.uint8)])[0])
    except JobError as exc:  # only the head raises it: the model ran, its output is not this head's
        raise _not_this_head(loaded, head, exc) from None
    except (Exception, SystemExit) as exc:  # the model's own code: its error is the job's to report
        log.debug("class count not checked: the model failed on a blank image (%s)", type(exc).__name__)
        return
    needed = None if count is None else head.class_names_needed(count[0], len(names))
    if count is not None and needed is not None:  # a classifier: one per logit; a segmenter: C or C-1
        named_by = f"--class-names {class_names_file}" if class_names_file else "the model"
        raise UsageError(
            f"--model {loaded.source}: the {head.kind} gives {count[0]} {count[1]} but {named_by} gives "
            f"{len(names)} class names; {needed} (docs/inference.md)"
        )


def _not_this_head(loaded: loading.LoadedModule, head: Head, exc: JobError | str) -> UsageError:
    """The one line for a model whose output on the blank image is another head's."""
    reason = str(exc).removeprefix("model output: ")
    return UsageError(
        f"--model {loaded.source}: run once as a {head.kind} on a blank image, its output does not fit: "
        f"{reason} (docs/inference.md, The model protocol); is --task-type the model's?"
    )


def check_detector_output(loaded: loading.LoadedModule, head: Head, input_size: tuple[int, int] | None) -> None:
    """``UsageError`` when a model given as a detector answers as a classifier or segmenter: a
    ``Tensor`` of scores instead of one dict of boxes per image. A Python model (a ``file.py:factory``)
    declares nothing, and a TorchScript one whose ``forward`` takes the detector's list (``check_signature``
    passed it) may still return a tensor, so the job started and every line failed, its folder left
    FAILED. Found as ``check_class_count`` finds the reverse: one forward, on the CPU, of one blank
    image (``input_size``: the model's, else 224), given as the detector's list; where a model that
    declares no argument types fails on a list, it is given the image as a batch ``Tensor`` once more,
    and a tensor answer is refused too (a TorchScript one takes no batch: its types say so). Any other
    failure is left to the job, which names it per line."""
    if head.stacked:
        return
    import numpy as np

    from .device import select_device
    from .postprocess import NotClassIds, detection_tensors

    size = input_size or (DEFAULT_INPUT_SIZE, DEFAULT_INPUT_SIZE)
    try:
        runner = TorchRunner(loaded, head, select_device("cpu"), None)
    except (Exception, SystemExit):  # left to the job, as the model's errors below
        return
    try:
        detection_tensors(model_call(runner, [np.zeros((*size, 3), dtype=np.uint8)])[0])
    except NotClassIds:  # a detector's form, its values off the protocol: the job stops naming them
        return
    except JobError as exc:  # the head or the protocol check: the model ran, its output is no detector's
        raise _not_this_head(loaded, head, exc) from None
    except (Exception, SystemExit) as exc:  # the model's own code: does it take a batch instead?
        shape = None if _declared_arguments(loaded) else _batch_output_shape(runner, size)
        if shape is None:
            log.debug("detector output not checked: the model failed on a blank image (%s)", type(exc).__name__)
            return
        raise _not_this_head(loaded, head, (
            f"given a list of images it fails ({str(_model_error(exc)).removeprefix('model: ')}), given a batch Tensor [1, 3, {size[0]}, "
            f"{size[1]}] it returns a Tensor {shape}: a classifier's or segmenter's output, not one dict of "
            "boxes per image")) from None


def _declared_arguments(loaded: loading.LoadedModule) -> bool:
    """Whether the model's ``forward`` declares its argument types (TorchScript's do)."""
    schema = getattr(getattr(loaded.module, "forward", None), "schema", None)
    return len(list(getattr(schema, "arguments", ()))) > 1  # more than self


def _batch_output_shape(runner: TorchRunner, size: tuple[int, int]) -> list[int] | None:
    """The shape of the tensor the runner's model returns for a blank ``[1, 3, H, W]`` batch;
    None when it fails on one or returns no tensor."""
    import torch

    try:
        with own_interrupts(ModelInterrupt), torch.inference_mode():
            out = runner.module(torch.zeros(1, 3, *size))
            return list((out if isinstance(out, torch.Tensor) else first_tensor(out)).shape)
    except (Exception, SystemExit):
        return None


class HttpSource(ModelSource):
    name = "http"
    local = False

    @classmethod
    def matches(cls, ref: str) -> bool:
        return ref.lower().startswith(("http://", "https://"))

    def _check_ref(self) -> None:
        """``TOTASK_MODEL_AUTHORIZATION`` checked before any request (a pasted control character)."""
        model_authorization()

    def absolute(self) -> str:
        """The URL a new job stores, refused when it carries user info or a query: job.json (and a
        chained or cloned job's) would keep the secret. One line, the value not echoed."""
        from .._storage import carries_secret

        if carries_secret(self.ref.strip()):
            raise UsageError(
                "--model: an endpoint URL must not carry a user name, password or query ('user:pw@', '?...'): "
                f"the job would store it in job.json; give the plain URL and put the credentials in {MODEL_AUTHORIZATION} "
                "(the whole Authorization header value, e.g. 'Bearer <token>'), read from the environment by "
                "every run and sent to that endpoint only"
            )
        return self.ref

    def runner(self, head: Head, settings: RunnerSettings) -> ModelRunner:
        from .._storage import carries_secret

        if carries_secret(self.ref.strip()):  # a job an older version wrote: it runs as it was configured
            log.warning("this job's --model URL (stored by an older version) carries credentials in job.json; they "
                        "are used as they are and nothing new is stored: for a new job (chain, clone) give the plain "
                        "URL and set %s", MODEL_AUTHORIZATION)
        return HttpRunner(self.ref, head=head, params=settings.params, timeout=settings.timeout,
                          retries=settings.retries)


class SynapseSource(ModelSource):
    name = "synapse"
    local = False

    @classmethod
    def matches(cls, ref: str) -> bool:
        return ref.lower().startswith(("synapse:", "synapse-preprocessor"))

    def check(self, weights: str | None = None) -> None:
        raise self._refusal()

    def runner(self, head: Head, settings: RunnerSettings) -> ModelRunner:
        raise self._refusal()

    def _refusal(self) -> UsageError:
        return UsageError(
            f"--model {self.ref}: a Synapse pre-processor is its own method; use --method synapse-preprocessor"
        )


class EntryPointSource(_TorchSource):
    name = "entrypoint"
    takes_weights = True

    @classmethod
    def matches(cls, ref: str) -> bool:
        return "://" not in ref and bool(loading.ENTRY_POINT.match(ref)) and not os.path.exists(ref)

    def absolute(self) -> str:
        """``file.py:factory`` gets an absolute file; ``package.module:factory`` stays."""
        module, _, attr = self.ref.rpartition(":")
        return f"{os.path.abspath(module)}:{attr}" if module.endswith(".py") else self.ref

    def load(self, weights: str | None = None) -> loading.LoadedModule:
        return loading.load_entry_point(self.ref, weights)


class _FileSource(_TorchSource):
    """A model file at a path or any fsspec URL."""

    def _check_ref(self) -> None:
        if not _exists(self.ref, "--model"):
            hint = " (for a Python factory write module:function)" if ":" in self.ref else ""
            raise UsageError(f"--model: no such file: {self.ref}{hint}")

    def absolute(self) -> str:
        return self.ref if has_scheme(self.ref) else os.path.abspath(self.ref)


class ExportSource(_FileSource):
    name = "export"

    @classmethod
    def matches(cls, ref: str) -> bool:
        return ref.lower().endswith(".pt2")

    def load(self, weights: str | None = None) -> loading.LoadedModule:
        return loading.load_exported(self.ref)


class TorchScriptSource(_FileSource):
    name = "torchscript"

    @classmethod
    def matches(cls, ref: str) -> bool:
        return True  # the fallback: a file of any other name

    def load(self, weights: str | None = None) -> loading.LoadedModule:
        return loading.load_torchscript(self.ref)


#: tried in order; the first that matches is the reference's source
SOURCES: tuple[type[ModelSource], ...] = (HttpSource, SynapseSource, EntryPointSource, ExportSource, TorchScriptSource)


def source_for(ref: Any) -> ModelSource:
    """The source of a ``--model`` value (not yet checked: see ``ModelSource.check``)."""
    if not isinstance(ref, str) or not ref.strip():
        raise UsageError("--method inference needs --model (a TorchScript or .pt2 file, module:factory, or an http(s) URL)")
    stripped = ref.strip()
    return next(cls for cls in SOURCES if cls.matches(stripped))(ref)


def check_model_ref(ref: Any, weights: str | None = None) -> ModelSource:
    """``source_for`` and its checks: what a job checks before it starts."""
    source = source_for(ref)
    source.check(weights)
    return source


def absolute_model_ref(ref: str) -> str:
    """``--model`` as job.json keeps it: local model files and ``file.py:factory`` absolute."""
    return source_for(ref).absolute()


def _exists(url: str, option: str) -> bool:
    from .._storage import exists

    try:
        return exists(url)
    except StorageError as exc:
        raise UsageError(f"{option}: {exc}") from None


def model_file(ref: str) -> str | None:
    """The file a ``--model`` value is read from: the ``.py`` of ``file.py:factory``, the value
    of a model file; None for an imported module or an endpoint. What ``resume`` compares and
    what no ``report -o`` may write over."""
    try:
        source = source_for(ref)
    except TotaskError:
        return None
    if isinstance(source, HttpSource | SynapseSource):
        return None
    if isinstance(source, EntryPointSource):
        module = ref.strip().rpartition(":")[0]
        return module if module.endswith(".py") else None
    return ref
