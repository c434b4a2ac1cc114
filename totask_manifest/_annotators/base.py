"""The one small interface every annotator implements, and the registry that names them.

An annotator turns selected manifest lines into outcomes. It knows nothing about checkpoints,
ordering, metadata common to every type, or engines: the job does that, so the same annotator
runs under the local engine and on Ray.

The outcome types (``Item``, ``Labeled``, ``Failed``, ``Routed``) live on the ground floor,
``totask_manifest._outcomes``; they are re-exported here so annotator code keeps importing them
from one place.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

from .._errors import JobError, RaisedInThread, TotaskError, UsageError, counted
from .._jobs.run import JobRun
from .._options import Options
from .._outcomes import Failed, Item, Labeled, Outcome, Routed
from .._plugin_output import plugin_code

__all__ = [
    "Annotator",
    "BatchAnnotator",
    "Failed",
    "Item",
    "ItemStream",
    "JobRun",
    "Labeled",
    "Options",
    "Outcome",
    "Resources",
    "Routed",
    "annotator_names",
    "check_installed",
    "get_annotator_class",
    "register_annotator",
]


class ItemStream(Iterator[Item]):
    """The items an engine hands to ``Annotator.annotate``, with back-pressure.

    The job records outcomes in input order, so lines finished out of order wait behind a slow
    one. ``wants_pause()`` says that backlog is full: a concurrent annotator should finish work in
    flight before it pulls more, so memory stays bounded however long one line takes.
    """

    def __init__(self, items: Iterator[Item], wants_pause: Callable[[], bool]) -> None:
        self._items = items
        self.wants_pause = wants_pause

    def __iter__(self) -> ItemStream:
        return self

    def __next__(self) -> Item:
        return next(self._items)


@dataclass(frozen=True)
class Resources:
    """What one annotator instance needs from an engine: CPUs and GPUs (fractions share one)."""

    cpus: float = 1.0
    gpus: float = 0.0


class Annotator(ABC):
    """Base class: subclasses set ``name``, declare their ``Options`` and implement ``annotate``
    (or derive from ``BatchAnnotator`` and implement ``annotate_batch``).

    The CLI makes flags of ``Options`` (``cli._options``); a job keeps their values in job.json
    and the annotator reads them, typed, as ``self.options``.
    """

    name: ClassVar[str]
    #: this annotator's options (a frozen dataclass, see ``totask_manifest._options``)
    Options: ClassVar[type[Options]] = Options
    #: the Python packages the method imports only once it runs (so its module imports without
    #: them), each with the extra of this package that installs it: checked before a job exists
    requires: ClassVar[dict[str, str]] = {}

    def __init__(self, context: JobRun) -> None:
        #: the run this annotator serves: job name, task type, label attribute, job folder,
        #: the manifest read, and job.json's options object (``context.options``)
        self.context = context
        self.options = self.Options.from_dict(context.options)

    @classmethod
    def check(cls, options: Any, task_type: str) -> None:
        """Raise ``UsageError`` before the job starts when ``options`` (an ``Options``) cannot work."""

    @classmethod
    def class_names(cls, options: Any, task_type: str) -> tuple[list[str], str] | None:
        """The class names (index = class id) every label the job writes names its classes by, and
        where they come from as a message says it (``"--class-names FILE"``), where known before the
        job starts; else None (the default). Why: a job labeling an attribute whose earlier lines
        name a class otherwise is refused before it exists (``_jobs.held_labels.JobClasses``)."""
        return None

    @classmethod
    def resources(cls, options: Any) -> Resources:
        """What each instance needs (an engine sizes its workers by it): one CPU by default."""
        return Resources()

    @abstractmethod
    def annotate(self, items: Iterable[Item]) -> Iterator[tuple[Item, Outcome]]:
        """Stream an outcome per item; may yield out of order (the job puts them back in order).
        Must not raise for one bad item."""

    def close(self) -> None:
        """Release connections, models, worker pools."""

    def __enter__(self) -> Annotator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class BatchAnnotator(Annotator):
    """An annotator that works on lists of items: implement ``annotate_batch``."""

    #: how many items ``annotate`` hands to ``annotate_batch`` at once
    batch_size: int = 64

    @abstractmethod
    def annotate_batch(self, items: list[Item]) -> list[Outcome]:
        """One outcome per item, in the same order. Must not raise for one bad item."""

    def annotate(self, items: Iterable[Item]) -> Iterator[tuple[Item, Outcome]]:
        batch: list[Item] = []
        for item in items:
            batch.append(item)
            if len(batch) >= self.batch_size:
                yield from self._paired(batch)
                batch = []
        if batch:
            yield from self._paired(batch)

    def _paired(self, batch: list[Item]) -> Iterator[tuple[Item, Outcome]]:
        """Each item with its outcome, once the count is known to match: ``zip(strict=True)``
        yielded the first pairs before it noticed one missing, so a dropped outcome gave each
        later line of the batch the next line's label."""
        returned = self.annotate_batch(batch)
        try:
            outcomes = list(returned)
        except TypeError:  # None (a forgotten return): the job failed with a traceback of ours
            cls = type(self)
            what = "None" if returned is None else f"a {type(returned).__name__}"
            raise JobError(f"{cls.__module__}:{cls.__qualname__}: annotate_batch returned {what} for lines "
                           f"{batch[0].number}-{batch[-1].number}; it returns a list of outcomes, one per item, in the same order") from None
        if len(outcomes) != len(batch):
            cls = type(self)
            raise JobError(f"{cls.__module__}:{cls.__qualname__}: annotate_batch returned "
                           f"{counted(len(outcomes), 'outcome')} for {counted(len(batch), 'item')} (lines {batch[0].number}-{batch[-1].number}); "
                           "it must return one per item, in the same order")
        yield from zip(batch, outcomes, strict=True)


#: threads an annotator started and left running once closed (``note_threads_left``): the
#: command does not wait for them as it exits (``cli.main``), where Python would, forever
THREADS_LEFT: list[threading.Thread] = []


class ThreadErrors:
    """What the threads an annotator started raised while ``thread_errors`` runs. Called, it
    raises the first as ``RaisedInThread`` (the engine calls it before it records an outcome);
    ``late`` takes the first once the run is over (its last outcome given, ``close()`` run)."""

    def __init__(self) -> None:
        self.raised: list[Any] = []  # threading.ExceptHookArgs

    def __call__(self) -> None:
        error = self.late()
        if error is not None:
            raise error

    def late(self) -> RaisedInThread | None:
        """The first error kept (the others dropped: the first is what broke), as ``RaisedInThread``."""
        if not self.raised:
            return None
        first = self.raised.pop(0)
        self.raised.clear()
        name = first.thread.name if first.thread is not None else "?"
        error = RaisedInThread(name)
        error.__cause__ = first.exc_value
        return error


@contextlib.contextmanager
def thread_errors() -> Iterator[ThreadErrors]:
    """While the block runs, what a thread raises (a plugin's worker) is kept, not printed; the
    object it gives, called, raises the first as ``RaisedInThread`` (the engine calls it before
    it records an outcome: the batch that thread served is not recorded, its lines left for
    resume). Python's own hook printed a traceback and the job went on to say COMPLETED. One
    raised after the last outcome (in ``close()``) is the engine's to take (``late``: the job is
    not COMPLETED, as for a ``close()`` that raises); one left when the block ends (the run broke
    first) is said in one warning line."""
    errors = ThreadErrors()
    previous = threading.excepthook

    def keep(args: Any) -> None:
        if issubclass(args.exc_type, SystemExit):  # Python's hook says nothing of it either
            return
        errors.raised.append(args)

    threading.excepthook = keep
    try:
        yield errors
    finally:
        threading.excepthook = previous
        for args in errors.raised:
            logging.getLogger("totask_manifest").warning(
                "a thread of the annotator's (%r) raised %s: %s as the run ended", getattr(args.thread, "name", "?"),
                args.exc_type.__name__, args.exc_value)


def note_threads_left(method: str, before: set[threading.Thread]) -> None:
    """Note (and log) the non-daemon threads started since ``before`` that are still running
    once ``method``'s annotator is closed: a plugin's worker thread never stopped kept the
    process alive after its job ended, and a ``timeout`` or one Ctrl-C then stopped nothing."""
    left = [t for t in threading.enumerate() if t not in before and t.is_alive() and not t.daemon]
    THREADS_LEFT.extend(left)
    pools = sys.modules.get("totask_manifest._fetch.pool_threads")  # not imported: no pool of ours ran
    theirs = [t for t in left if pools is None or not pools.is_own_pool_thread(t)]
    if len(theirs) < len(left):  # the built-in fetch pool's, busy with a read when a job stopped early
        logging.getLogger("totask_manifest").debug("%s of the package's own pools still reading; not waited for",
                                                   counted(len(left) - len(theirs), "thread"))
    if theirs:
        names = ", ".join(repr(t.name) for t in theirs)
        logging.getLogger("totask_manifest").warning(
            "method %r left %s running after close(): %s; the command will not wait for them "
            "(an annotator stops its threads in close(), or starts them daemon=True)", method,
            counted(len(theirs), "thread"), names)


_REGISTRY: dict[str, str] = {
    # name -> "module:Class", imported on first use so that ``file`` never imports torch
    "file": "totask_manifest._annotators.file:FileAnnotator",
    "inference": "totask_manifest._annotators.inference:InferenceAnnotator",
    "synapse-preprocessor": "totask_manifest._annotators.synapse_preprocessor:PreProcessorAnnotator",
}


def register_annotator(name: str, target: str) -> None:
    """Add an annotator (``"package.module:Class"``) under a method name."""
    _REGISTRY[name] = target


def annotator_names() -> list[str]:
    return sorted(_REGISTRY)


def _missing_module(name: str, module_name: str, exc: ModuleNotFoundError) -> Exception:
    """The error for a method whose module, or a package it imports, is not installed.

    A plugin's own module (or its package) missing is a misspelt ``--method`` or a folder not on
    ``sys.path``: no extra of this package would install it. A package that only a built-in method
    or an extra needs (torch, ray) names the extra; any other package a plugin imports is the
    plugin's own requirement."""
    missing = exc.name or ""
    if ":" in name and (module_name == missing or module_name.startswith(missing + ".")):
        return UsageError(f"method plugin {name!r}: cannot import {module_name!r}: no module named {missing!r} "
                          "(is its folder on PYTHONPATH?)")
    if not missing or missing.startswith("totask_manifest"):
        return exc
    if ":" in name and missing.split(".")[0] == module_name.split(".")[0]:  # a module of the plugin's own package
        return UsageError(f"method plugin {name!r}: cannot import {module_name!r}: its package has no module "
                          f"{missing!r}")
    extra = {"torch": "inference", "ray": "ray"}.get(missing.split(".")[0])
    if extra is None and ":" in name:
        return UsageError(f"method plugin {name!r} needs the Python package {missing!r}, which is not installed")
    return UsageError(
        f"method {name!r} needs the Python package {missing!r}: pip install 'totask-manifest[{extra or 'all'}]'")


def check_installed(name: str, cls: type[Annotator]) -> None:
    """Refuse, in one line naming the extra, a method whose run-time packages are not installed:
    a wheel installed without ``[inference]`` otherwise created the job and failed it with a
    traceback from deep in the model code. ``find_spec`` looks, it does not import (torch: seconds)."""
    import importlib.util

    for package, extra in cls.requires.items():
        if importlib.util.find_spec(package) is None:
            raise UsageError(f"method {name!r} needs the Python package {package!r}: "
                             f"pip install 'totask-manifest[{extra}]'")


def get_annotator_class(name: str) -> type[Annotator]:
    import importlib

    if ":" in name:  # a plugin given as "package.module:Class"
        target = name
    else:
        try:
            target = _REGISTRY[name]
        except KeyError:
            raise UsageError(
                f"unknown method {name!r}; known methods: {', '.join(annotator_names())} "
                "(or a plugin as 'package.module:Class')"
            ) from None
    module_name, _, attr = target.partition(":")
    try:
        with plugin_code():  # what a plugin's module prints as it loads: not on the command's stdout
            module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise _missing_module(name, module_name, exc) from None
    except Exception as exc:
        if ":" not in name:
            raise
        # the plugin's own code failed as it was imported: its author's error, said in one line
        # (a traceback is for ``python -c 'import MODULE'``, named here)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise UsageError(f"method plugin {name!r}: importing {module_name!r} failed: {type(exc).__name__}"
                         f"{': ' + first if first else ''} (python -c 'import {module_name}' shows where)") from None
    try:
        cls = getattr(module, attr)
    except AttributeError:
        raise UsageError(f"method {name!r}: {module_name} has no {attr!r}") from None
    if not (isinstance(cls, type) and issubclass(cls, Annotator)):
        raise UsageError(f"method {name!r}: {target} is not an Annotator subclass")
    _check_options_class(name, cls)
    return cls


def _check_options_class(name: str, cls: type[Annotator]) -> None:
    """A plugin's ``Options`` that is no ``Options`` subclass failed every command with a traceback
    (``no attribute 'leaves'``); one not made a dataclass had none of its fields seen, so its
    flags were ``unrecognized arguments`` and its values from Python refused as undeclared."""
    import dataclasses
    import inspect

    options = cls.Options
    if not (isinstance(options, type) and issubclass(options, Options)):
        raise UsageError(f"method {name!r}: its Options ({options!r}) is not a subclass of totask_manifest.Options")
    if options is not Options and inspect.get_annotations(options) and not (
            dataclasses.is_dataclass(options) and "__dataclass_fields__" in options.__dict__):
        raise UsageError(f"method {name!r}: its Options class {options.__qualname__} is not a dataclass: "
                         "decorate it with @dataclass(frozen=True)")


def method_options(method: str) -> frozenset[str] | None:
    """The option names of ``method`` (a stop's advice names only a flag the job's method has);
    None where the method cannot be looked at (the advice then names any)."""
    try:
        return frozenset(f.name for f, _ in get_annotator_class(method).Options.leaves())
    except (TotaskError, AttributeError, ImportError):
        return None
