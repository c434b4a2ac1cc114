"""What an annotator makes of one selected line: the ground-floor types every floor above shares.

An ``Item`` is a selected line; each ends as exactly one outcome: ``Labeled`` (a label and its
type-specific metadata), ``Failed`` (a reason and its rule) or ``Routed`` (left for human
review). Formats, analytics and the job read and write these, annotators produce them; none of
those imports another floor to do so.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ._failure_rules import checked_rule, rule_of


@dataclass(slots=True)
class Item:
    """A line selected for labeling. ``index`` is 0-based, ``number`` is the 1-based line number."""

    index: int
    number: int
    record: dict

    @property
    def source(self) -> str | None:
        return self.record.get("source-ref", self.record.get("source"))

    @property
    def task_id(self) -> Any:
        """The Synapse task id for exported lines, else None."""
        syn = self.record.get("synapse")
        return syn.get("task_id") if isinstance(syn, dict) else None

    @property
    def display(self) -> str:
        tid = self.task_id
        return str(tid) if tid is not None else f"line {self.number}"


@dataclass(slots=True)
class Labeled:
    """A label value plus the type-specific metadata fields (``class-map``, ``objects``, ...).

    The job adds ``type``, ``job-name``, ``human-annotated`` and ``creation-date``.
    ``metadata_order`` is the key order of the Ground Truth metadata the label was read from
    (common fields included), so the job writes the keys back where Ground Truth had them.
    """

    value: Any
    metadata: dict = field(default_factory=dict)
    metadata_order: tuple[str, ...] = ()
    #: URLs of files the annotator wrote for this label alone (a segmentation mask): the job
    #: removes them when the line ends failed after all (its label refused), since no line names them
    files: tuple[str, ...] = ()


@dataclass(slots=True)
class Failed:
    """The line could not be labeled; it gets ``failure-reason`` so a chained job retries it,
    and ``failure-rule``, the stable id failures are grouped by (``failure_rules``). ``rule``
    may be left out: it is then read from the reason (``failure_rules.rule_of``)."""

    reason: str
    rule: str = ""

    def __post_init__(self) -> None:
        self.rule = checked_rule(self.rule) if self.rule else rule_of(self.reason)


@dataclass(slots=True)
class Routed:
    """Labeled by a model with too little confidence: left unlabeled and marked for human review."""

    reason: str
    metadata: dict = field(default_factory=dict)


Outcome = Labeled | Failed | Routed
