"""A job's configuration: everything needed to run, resume, chain or clone it, kept in job.json."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

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

    @property
    def ok(self) -> bool:
        return self.status == COMPLETED


def identity(config: JobConfig) -> dict[str, Any]:
    """What makes two configurations the same job: everything but the tuning options and what the
    job derives from its input (``DERIVED_OPTIONS``)."""
    data = {k: v for k, v in config.to_dict().items() if k not in TUNING_FIELDS}
    data["options"] = {k: v for k, v in config.options.items() if k not in TUNING_OPTIONS and k not in DERIVED_OPTIONS}
    return data


def identity_differences(old: JobConfig, new: JobConfig) -> list[str]:
    """The identity keys in which two configurations differ, as job.json spells them
    (``task_type``, ``options.url_key``): keys only, since an option's value may be a secret."""
    a, b = identity(old), identity(new)
    out = [k for k in sorted(set(a) | set(b)) if k != "options" and a.get(k) != b.get(k)]
    oa, ob = a["options"], b["options"]
    return out + [f"options.{k}" for k in sorted(set(oa) | set(ob)) if oa.get(k) != ob.get(k)]
