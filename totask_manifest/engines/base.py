"""What an engine is given: the selected lines of one job run, an annotator to build, and a
recorder that takes outcomes in input order. Engines differ only in where annotation runs."""

from __future__ import annotations

import importlib
import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

from ..annotators.base import Annotator, AnnotatorContext
from ..errors import UsageError
from ..jobs.config import JobConfig
from ..jobs.recorder import Recorder


@dataclass
class RunPlan:
    config: JobConfig
    #: the manifest actually read (the input, or the input combined with ``--append``)
    input_url: str
    #: lines up to this 0-based index are finished (from the checkpoint); -1 for a fresh job
    after_index: int
    annotator_cls: type[Annotator]
    context: AnnotatorContext
    recorder: Recorder
    #: set on the first SIGINT/SIGTERM: take no new lines, finish those in flight
    stop: threading.Event = field(default_factory=threading.Event)
    #: set on the second signal: leave now; unfinished lines are redone on resume
    hard_stop: threading.Event = field(default_factory=threading.Event)
    options: dict[str, Any] = field(default_factory=dict)


class Engine(ABC):
    name: str

    @abstractmethod
    def run(self, plan: RunPlan) -> None:
        """Annotate every selected line after ``plan.after_index`` unless stopped."""

    def check(self, config: JobConfig) -> None:
        """Refuse, before a job is created or resumed, a configuration this engine cannot run."""


_ENGINES = {
    "local": "totask_manifest.engines.local:LocalEngine",
    "ray": "totask_manifest.engines.ray:RayEngine",
}


def engine_names() -> list[str]:
    return sorted(_ENGINES)


def get_engine(name: str, **options: Any) -> Engine:
    try:
        target = _ENGINES[name]
    except KeyError:
        raise UsageError(f"unknown engine {name!r}; known engines: {', '.join(engine_names())}") from None
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.split(".")[0] == "ray":
            raise UsageError("--engine ray needs Ray: pip install 'totask-manifest[ray]'") from None
        raise
    return getattr(module, attr)(**options)
