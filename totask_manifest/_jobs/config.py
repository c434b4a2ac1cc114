"""A job's configuration: everything needed to run, resume, chain or clone it, kept in job.json."""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from .._errors import UsageError, json_kind
from .._storage import join
from .status import COMPLETED

#: method options that change how fast a job runs, not what it writes: they may differ between
#: runs of one job (``resume --concurrency 64``, the same ``annotate`` again with another batch size)
TUNING_OPTIONS = ("concurrency", "timeout", "retries", "batch_size", "device")
#: configuration fields of the same kind
TUNING_FIELDS = ("checkpoint_every", "checkpoint_seconds")
#: options the job sets itself when it starts, from its input and ``--append`` manifests (where each
#: appended manifest's lines start: ``_fetch.APPENDED_BASES``), never given the same way again: the
#: same ``annotate --append`` again was refused as "another configuration" for them. What they are
#: derived from is compared (the URLs here, the manifests' checksums by ``inputs.refuse_changed_copy``)
DERIVED_OPTIONS = ("relative_to_appended",)


@dataclass
class JobConfig:
    job_name: str
    #: URL of the input manifest (any fsspec URL)
    input: str
    #: URL of the output root; the job lives in ``<output_root>/<job_name>/``
    output_root: str
    label_attribute: str
    task_type: str
    method: str = "file"
    #: the annotator's own options (its ``Options``, as ``Options.to_dict`` writes them), JSON-serialisable
    options: dict[str, Any] = field(default_factory=dict)
    #: lines per checkpoint part: the most work a ``kill -9`` can cost
    checkpoint_every: int = 500
    #: seconds between checkpoint parts when lines come slowly
    checkpoint_seconds: float = 5.0
    #: manifests whose lines are added at the end of the input (``--append``)
    append: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        # a pathlib.Path is a path as a str is (validate_manifest and read_lines take one too):
        # made text here, so job.json, the lease and every URL function see a str
        self.input = _fspath(self.input)
        self.output_root = _fspath(self.output_root)
        if isinstance(self.append, list | tuple):
            self.append = [_fspath(u) for u in self.append]

    @property
    def job_url(self) -> str:
        return join(self.output_root, self.job_name)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JobConfig:
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass
class JobResult:
    job_url: str
    status: str
    metrics: dict[str, int]
    output_manifest: str
    failures_url: str
    #: the signal that stopped the run, if one did
    signal: int | None = None
    #: why a job that did not complete ended as it did (job.json's ``error``): a full disk while
    #: the output manifest was written is not in the log, and the result must not hide it
    error: str | None = None
    #: the output manifest there is an earlier run's: the last run could not write its own
    output_stale: bool = False
    #: the last run wrote no output manifest because its input changed while it ran
    input_changed: bool = False

    @property
    def ok(self) -> bool:
        return self.status == COMPLETED


def _fspath(value: Any) -> Any:
    return os.fspath(value) if isinstance(value, os.PathLike) else value


def path_argument(value: Any, name: str) -> str:
    """A path or URL the caller gave (a str or a ``pathlib.Path``) as text; anything else is
    refused naming the argument, rather than failing deep inside with a ``TypeError``."""
    value = _fspath(value)
    if not isinstance(value, str):
        raise UsageError(f"{name} must be a path or URL (a str or a pathlib.Path), not {json_kind(value)} {value!r}")
    return value


def int_argument(value: Any, name: str) -> None:
    """A count the caller gave: an int (not a bool, not a float, not a numeric string)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise UsageError(f"{name} must be an integer, not {json_kind(value)} {value!r}")


def options_argument(value: Any, name: str) -> dict[str, Any]:
    """Options the caller gave: a mapping of option names to values (``{"concurrency": 8}``)."""
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise UsageError(f"{name} must be a dict of option names to values, not {json_kind(value)} {value!r}")
    return {k: _fspath(v) for k, v in value.items()}  # a Path for a file option, as for the input


def append_argument(value: Any, name: str) -> list[str]:
    """``--append`` manifests the caller gave: a list of paths or URLs. A bare string is refused:
    iterated, it was a list of one-letter file names ("--append manifest not found: s")."""
    if isinstance(value, str | os.PathLike) or not isinstance(value, list | tuple):
        example = f" (e.g. [{os.fspath(value)!r}])" if isinstance(value, str | os.PathLike) else ""
        raise UsageError(f"{name} must be a list of manifest paths or URLs{example}, not {json_kind(value)} {value!r}")
    return [path_argument(u, f"{name}[{i}]") for i, u in enumerate(value)]


def check_types(config: JobConfig) -> None:
    """Each field of a configuration the caller built is of its declared type (a ``Path`` taken
    for a str), before anything reads it: ``JobConfig(options=None)`` or ``checkpoint_every="10"``
    failed deep inside with an AttributeError or TypeError, ``checkpoint_seconds="5"`` only once
    the first line was labeled (the job FAILED with a traceback)."""
    if not isinstance(config, JobConfig):
        raise UsageError(f"annotate takes a JobConfig, not {json_kind(config)} {config!r}")
    config.input = path_argument(config.input, "JobConfig.input")
    config.output_root = path_argument(config.output_root, "JobConfig.output_root")
    # an empty one is the current folder to the file system: a job written there, not where the user meant
    for what, value in (("input manifest (INPUT)", config.input), ("output root (--output)", config.output_root)):
        if not value.strip():
            raise UsageError(f"the {what} is empty: give a path or URL")
    for name in ("job_name", "label_attribute", "task_type", "method"):
        value = getattr(config, name)
        if not isinstance(value, str):
            raise UsageError(f"JobConfig.{name} must be a str, not {json_kind(value)} {value!r}")
    config.options = options_argument(config.options, "JobConfig.options")
    int_argument(config.checkpoint_every, "JobConfig.checkpoint_every")
    seconds = config.checkpoint_seconds
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not math.isfinite(seconds) or seconds <= 0:
        raise UsageError(f"JobConfig.checkpoint_seconds must be a number of seconds above 0, not {seconds!r}")
    config.append = append_argument(config.append, "JobConfig.append")


def chain_arguments(job_url: Any, output_root: Any, options: Any, append: Any,
                    checkpoint_every: Any) -> tuple[str, str | None, dict[str, Any] | None, list[str] | None]:
    """chain's and clone's arguments checked (a ``Path`` taken for a str) before the job is read."""
    if checkpoint_every is not None:
        int_argument(checkpoint_every, "checkpoint_every")
    output_root = None if output_root is None else path_argument(output_root, "output_root")
    if output_root is not None and not output_root.strip():  # as annotate's: not "the previous job's root"
        raise UsageError("the output root (--output) is empty: give a path or URL, or leave --output out for "
                         "the previous job's")
    return (path_argument(job_url, "job_url"), output_root,
            None if options is None else options_argument(options, "options"),
            None if append is None else append_argument(append, "append"))


def resume_arguments(job_url: Any, options: Any, checkpoint_every: Any) -> tuple[str, dict[str, Any]]:
    """resume's arguments checked (a ``Path`` taken for a str) before the job is read."""
    if checkpoint_every is not None:
        int_argument(checkpoint_every, "checkpoint_every")
    return path_argument(job_url, "job_url"), options_argument(options or {}, "options")


def identity(config: JobConfig) -> dict[str, Any]:
    """What makes two configurations the same job: everything but the tuning options and what the
    job derives from its input (``DERIVED_OPTIONS``)."""
    data = {k: v for k, v in config.to_dict().items() if k not in TUNING_FIELDS}
    data["options"] = {k: v for k, v in config.options.items() if k not in TUNING_OPTIONS and k not in DERIVED_OPTIONS}
    return data


def as_recorded_path(new: Any, recorded: Any) -> Any:
    """``new`` (a local path the command gives now) as the job recorded it, where it names that
    file through symbolic links and the recorded path holds none; anything else as it is.

    Why only then: a link in the recorded path may point elsewhere now (``data`` re-pointed from
    ``A`` to ``B``), and what it named when the job ran is not recorded; a recorded path without a
    link names today what it named then. So a job started as ``/mnt/disk1/data/in.manifest`` is
    the same job given as ``/data/in.manifest`` (``/data`` a link to ``/mnt/disk1/data``), which
    was refused as "another configuration (differs in: input)"."""
    if (isinstance(new, str) and isinstance(recorded, str) and new != recorded
            and new.startswith("/") and recorded.startswith("/")
            and os.path.realpath(recorded) == recorded and os.path.realpath(new) == recorded):
        return recorded
    return new


def as_recorded(new: JobConfig, old: JobConfig, path_keys: frozenset[str] = frozenset()) -> JobConfig:
    """``new`` with its local paths (the input, the appended manifests, the options in
    ``path_keys``: the method's path options) spelled as ``old`` recorded them where they name the
    same files (``as_recorded_path``): what ``identity`` compares."""
    append = [as_recorded_path(a, b) for a, b in zip(new.append, old.append, strict=False)] + new.append[len(old.append):]
    options = {k: as_recorded_path(v, old.options.get(k)) if k in path_keys else v for k, v in new.options.items()}
    return dataclasses.replace(new, input=as_recorded_path(new.input, old.input), append=append, options=options)


def identity_differences(old: JobConfig, new: JobConfig, path_keys: frozenset[str] = frozenset()) -> list[str]:
    """The identity keys in which two configurations differ, as job.json spells them
    (``task_type``, ``options.url_key``): keys only, since an option's value may be a secret.
    ``new``'s local paths are taken as ``old`` recorded them where they name the same files
    (``as_recorded``; ``path_keys``: the method's path options)."""
    a, b = identity(old), identity(as_recorded(new, old, path_keys))
    out = [k for k in sorted(set(a) | set(b)) if k != "options" and a.get(k) != b.get(k)]
    oa, ob = a["options"], b["options"]
    return out + [f"options.{k}" for k in sorted(set(oa) | set(ob)) if oa.get(k) != ob.get(k)]
