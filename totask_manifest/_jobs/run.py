"""One run of a job: the one value the job runner, the engine and the annotator share.

``api`` makes it (the configuration, the engine, who watches progress); ``jobs.execute`` fills
in what the run reads (the manifest, the lines already finished, the recorder) and hands it to
the engine; the engine hands it to each annotator it builds, which reads its job facts from it. What only the
driver holds (recorder, engine, signals, progress callback) is left out when it is sent to a
worker process (Ray pickles it).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any

from .config import JobConfig

#: called with the job's counters (total, success, failed, routed, stand_by) as lines finish, in the
#: job's thread; not again once it raised (``execute._Callback``: raised to the caller at the end)
ProgressCallback = Callable[[dict[str, int]], None]

#: what only the driver holds: not sent to workers
_DRIVER_ONLY = ("engine", "recorder", "stop", "hard_stop", "building", "on_progress", "in_flight")


@dataclass
class JobRun:
    config: JobConfig
    #: the manifest actually read (the input, or the input combined with ``--append``); relative
    #: references in its lines resolve against its folder
    input_url: str = ""
    #: lines up to this 0-based index are finished (from the checkpoint); -1 for a fresh job
    after_index: int = -1
    #: the engine that runs it (an ``engines.base.Engine``)
    engine: Any = None
    #: takes outcomes in input order (a ``jobs.recorder.Recorder``)
    recorder: Any = None
    #: set on the first SIGINT/SIGTERM/SIGHUP: take no new lines, finish those in flight
    stop: threading.Event = field(default_factory=threading.Event)
    #: set on the second signal: leave now; unfinished lines are redone on resume
    hard_stop: threading.Event = field(default_factory=threading.Event)
    #: set while the engine builds its annotator (a model loads): no line is in flight yet, so a stop
    #: signal then leaves at once (``execute.stop_on_signals``) rather than wait for the whole load
    building: threading.Event = field(default_factory=threading.Event)
    #: what the lines in flight are, for the first stop signal's line ("finishing ..."); set by an
    #: annotator that knows (the inference method: the batch in the model); None or a None answer:
    #: "lines in flight". Called in the signal handler: it only reads.
    in_flight: Callable[[], str | None] | None = None
    on_progress: ProgressCallback | None = None
    #: record every failure as final: no stop on a failure that points at the configuration
    #: (``--keep-going``; this run only, never kept in job.json)
    keep_going: bool = False
    #: the option names of the job's method (``annotators.base.method_options``), for the advice of a
    #: stop on a rule an option fixes (``SystematicFailure``); None: unknown, any flag may be named
    method_options: frozenset[str] | None = None

    # -- what an annotator reads ------------------------------------------------------------

    @property
    def job_name(self) -> str:
        return self.config.job_name

    @property
    def label_attribute(self) -> str:
        return self.config.label_attribute

    @property
    def task_type(self) -> str:
        return self.config.task_type

    @property
    def options(self) -> dict[str, Any]:
        """The method's options as job.json keeps them (an annotator reads them typed, ``self.options``)."""
        return self.config.options

    @property
    def job_url(self) -> str:
        """The job folder; annotators that write files (masks) put them under it."""
        return self.config.job_url

    @property
    def manifest_url(self) -> str:
        return self.input_url

    # -- sent to workers -------------------------------------------------------------------

    def __getstate__(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in _DRIVER_ONLY}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.engine = self.recorder = self.on_progress = self.in_flight = None
        self.stop, self.hard_stop, self.building = threading.Event(), threading.Event(), threading.Event()
