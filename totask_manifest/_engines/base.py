"""What an engine is given: one run of a job (``jobs.run.JobRun``: the selected lines, the
recorder that takes outcomes in input order, the stop signals), and the registry that names
engines. Engines differ only in where annotation runs; each declares its ``Options``."""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from typing import Any, ClassVar

from .._errors import UsageError
from .._jobs.config import JobConfig
from .._jobs.run import JobRun
from .._options import Options


class Engine(ABC):
    name: ClassVar[str]
    #: this engine's options (the CLI's ``--NAME-*`` flags)
    Options: ClassVar[type[Options]] = Options

    def __init__(self, options: Options | None = None) -> None:
        self.options = options or self.Options()

    @abstractmethod
    def run(self, run: JobRun) -> None:
        """Annotate every selected line after ``run.after_index`` unless stopped."""

    def check(self, config: JobConfig) -> None:
        """Refuse, before a job is created or resumed, a configuration this engine cannot run."""


#: name -> (engine "module:Class", its options "module:Class"): the options load without the engine
_ENGINES: dict[str, tuple[str, str]] = {
    "local": ("totask_manifest._engines.local:LocalEngine", "totask_manifest._options:Options"),
    "ray": ("totask_manifest._engines.ray:RayEngine", "totask_manifest._engines.ray_options:RayOptions"),
}


def engine_names() -> list[str]:
    return sorted(_ENGINES)


def _target(name: str, which: int) -> Any:
    try:
        target = _ENGINES[name][which]
    except KeyError:
        raise UsageError(f"unknown engine {name!r}; known engines: {', '.join(engine_names())}") from None
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.split(".")[0] == "ray":
            raise UsageError("--engine ray needs Ray: pip install 'totask-manifest[ray]'") from None
        raise
    return getattr(module, attr)


def engine_options_class(name: str) -> type[Options]:
    """An engine's options class, without importing the engine (nor Ray)."""
    return _target(name, 1)


def get_engine(name: str, **options: Any) -> Engine:
    """The engine ``name`` with these options (``get_engine("ray", actors=4)``)."""
    cls = engine_options_class(name)
    known = {f.name for f, _path in cls.leaves()}
    unknown = sorted(set(options) - known)
    if unknown:
        raise UsageError(f"engine {name!r} has no option {', '.join(unknown)}"
                         + (f"; its options: {', '.join(sorted(known))}" if known else ""))
    return _target(name, 0)(cls.from_dict(options))
