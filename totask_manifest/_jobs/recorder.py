"""Turning an annotator's outcome into the line the output manifest will hold.

This is where a job's common metadata is added (Ground Truth's ``type``, ``job-name``,
``human-annotated``, ``creation-date``) and where every label is checked against its schema
before it is recorded: an invalid label fails its line with the rule it broke. Every
annotator's output passes here (whatever the engine), so this is the one place a label is
checked; annotators do not check it again.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from .._credentials import env_credentials
from .._errors import JobError
from .._failure_rules import SystematicFailure
from .._manifest.line import DELETE, Line
from .._manifest.naming import MAX_ATTRIBUTE_CHARS, label_attribute_violations, metadata_key
from .._outcomes import Failed, Item, Labeled, Outcome, Routed
from .._redaction import hide_secrets
from .._storage import redact_secret_url
from .._task_types import (
    TaskType,
    common_metadata,
    get_task_type,
    order_metadata,
    task_type_of_metadata,
    written_job_name,
)
from .checkpoint import CheckpointWriter, Part
from .config import JobConfig
from .plugin_errors import not_an_outcome

log = logging.getLogger("totask_manifest")

#: outcomes that carry a reason (a tuple built once: ``A | B`` makes a union on every call)
_WITH_REASON = (Failed, Routed)


def _check_label() -> Callable[[str, Any, dict], list] | None:
    try:
        from .._manifest.label_check import check_label
    except ImportError:  # pragma: no cover - validation module always ships
        return None
    return check_label


class Recorder:
    """Receives outcomes in input order; writes checkpoint records; keeps the counters."""

    def __init__(self, config: JobConfig, writer: CheckpointWriter, counts: dict[str, int],
                 selected: int = 0, job_name: str | None = None, *, keep_going: bool = False,
                 method_options: frozenset[str] | None = None, recorded_files: frozenset[str] = frozenset()) -> None:
        """``selected``: lines this run is to finish; the first of them are watched for a
        failure that points at the configuration (``SystematicFailure``). ``job_name``: the
        ``job-name`` every line gets (``JobState.label_job_name``, the form the job began with);
        by default that of the job's task type (``written_job_name``). ``keep_going``: no such
        stop; every failure is final (``--keep-going``). ``method_options``: the option names of the
        job's method (``JobRun.method_options``), so a stop's advice names only a flag it has;
        ``recorded_files``: the options whose files the job recorded, which a resume refuses changed
        (``JobState.option_files``), so a stop on a model file's errors does not advise a resume."""
        self.config = config
        self.writer = writer
        self.counts = counts
        self.attr = config.label_attribute
        self.meta_key = metadata_key(config.label_attribute)
        self.task_type = get_task_type(config.task_type)
        # one form for the whole job: a kept document's own type (custom) does not change it
        self.job_name = job_name if job_name is not None else written_job_name(self.task_type, config.job_name)
        self.check = _check_label()
        self.warned = 0  # the warnings of the label ``updates_for`` last checked
        #: the environment's credentials, read once: a plugin's words must not carry them (read
        #: for each failed line, the dozen variables cost more than the rest of its recording)
        self.secrets = env_credentials()
        self.listeners: list[Callable[[str], None]] = []
        self.systematic = SystematicFailure(selected, watch=not keep_going, options=method_options,
                                            files=recorded_files, model=config.options.get("model"))
        #: the last records, not yet handed to the checkpoint writer: failures the fail-fast
        #: window or a mid-run streak may yet declare not final (``SystematicFailure.at_stake``)
        self.held: deque[tuple[dict[str, Any], bytes, int]] = deque()
        #: the lines the run stopped on (``stopped_part``): in this run's output, not in the checkpoint
        self.stopped: list[tuple[dict[str, Any], bytes, int]] = []

    def _common(self) -> dict[str, Any]:
        return common_metadata(self.task_type, self.config.job_name, written_name=self.job_name)

    def updates_for(self, item: Item, outcome: Outcome) -> tuple[str, dict[str, Any], Outcome]:
        """The status, the keys to set on the line, and the outcome finally recorded (a label
        that breaks its schema is recorded as a failure); ``warned`` is then the label's warnings."""
        self.warned = 0
        drop_null = DELETE if self.attr in item.record else None
        if isinstance(outcome, (Failed, Routed)):  # a plugin's words: no credential of the environment
            reason = hide_secrets(outcome.reason, self.secrets)
            if reason != outcome.reason:
                outcome = replace(outcome, reason=reason)
        if isinstance(outcome, Labeled):
            # an annotator may declare the label's own type: a document kept as it is (Ground
            # Truth's custom type, formats.native) is not a label of the job's task type
            task_type = task_type_of_metadata(outcome.metadata) or self.task_type
            if task_type != self.task_type and (naming := _attribute_misnamed(self.attr, task_type)) is not None:
                return self.updates_for(item, naming)
            common = common_metadata(task_type, self.config.job_name, written_name=self.job_name)
            metadata = order_metadata(task_type, {**outcome.metadata, **common}, outcome.metadata_order)
            try:
                found = self.check(task_type, outcome.value, metadata) if self.check is not None else None
            except (TypeError, ValueError) as exc:  # a value JSON has no form for (bytes, a set)
                return self.updates_for(item, Failed(f"label cannot be written as JSON: {exc}", rule="label-not-json"))
            if found:
                problems = [p for p in found if getattr(p, "severity", "error") == "error"]
                self.warned = len(found) - len(problems)  # written as they are, counted (LINE_COUNTS)
                if problems:
                    where = _not_a_json_number(outcome.value, "") or _not_a_json_number(metadata, "metadata")
                    if where is not None:  # the check read it as null
                        reason = f"label cannot be written as JSON: {where} is not a number JSON can hold"
                        return self.updates_for(item, Failed(reason, rule="label-not-json"))
                    p = problems[0]
                    reason = f"schema: {p.rule} at {p.key or '/'}: {p.message}"
                    return self.updates_for(item, Failed(reason, rule="schema-invalid"))
            return "labeled", {self.attr: outcome.value, self.meta_key: metadata}, outcome
        if isinstance(outcome, Routed):
            metadata = {**outcome.metadata}
            metadata.setdefault("review-status", "routed")
            metadata["review-reason"] = outcome.reason
            metadata = order_metadata(self.task_type, {**metadata, **self._common()})
            updates: dict[str, Any] = {self.meta_key: metadata}
            if drop_null is not None and item.record.get(self.attr) is None:
                updates[self.attr] = drop_null
            return "routed", updates, outcome
        if not isinstance(outcome, Failed):
            raise not_an_outcome(self.config.method, item, outcome)
        common = self._common()
        metadata = {"failure-reason": outcome.reason, "failure-rule": outcome.rule, "type": common["type"],
                    "job-name": common["job-name"], "creation-date": common["creation-date"]}
        updates = {self.meta_key: metadata}
        if drop_null is not None and item.record.get(self.attr) is None:
            updates[self.attr] = drop_null
        return "failed", updates, outcome

    def accept(self, line: Line, item: Item, outcome: Outcome) -> str:
        labeled = outcome
        status, updates, outcome = self.updates_for(item, outcome)
        try:
            new = line.with_values(updates)
        except (TypeError, ValueError) as exc:  # NaN or infinity in a label: JSON has no form for them
            status, updates, outcome = self.updates_for(
                item, Failed(f"label cannot be written as JSON: {exc}", rule="label-not-json"))
            new = line.with_values(updates)
        if status != "failed" and len(new.body) > MAX_ATTRIBUTE_CHARS:
            # a line validate would refuse (a label over 20,000 characters, a line over 100,000)
            # is not written: the line fails with the rule it would break
            from .._manifest.label_check import input_line_problems  # rare: imported on use

            problems = input_line_problems(new)
            if problems:
                p = problems[0]
                where = f" at {p.key}" if p.key else ""
                failed = Failed(f"output line: {p.message}{where}", rule=p.rule)
                status, updates, outcome = self.updates_for(item, failed)
                new = line.with_values(updates)
        if status == "failed" and isinstance(labeled, Labeled) and labeled.files:
            _remove_files(labeled.files, item)
        reason = outcome.reason if isinstance(outcome, _WITH_REASON) else None
        rule = outcome.rule if isinstance(outcome, Failed) else None
        record: dict[str, Any] = {"i": item.index, "s": status}
        dropped = dropped_count(updates.get(self.meta_key)) if status == "labeled" else 0
        if dropped:
            record["d"] = dropped  # a label that dropped something the user allowed to drop
            self.counts["dropped"] = self.counts.get("dropped", 0) + 1
        if self.warned and status == "labeled":
            record["w"] = self.warned  # a label the check warns of (a box past its image): written, counted
            self.counts["warnings"] = self.counts.get("warnings", 0) + 1
        if reason is not None:
            record["reason"] = reason
            if rule is not None:
                record["rule"] = rule
            src = item.record.get("source-ref", item.record.get("source"))
            if isinstance(src, str):  # failures.jsonl and the report show it: no password, no signature
                record["source"] = redact_secret_url(src)[:500]
            if item.task_id is not None:
                record["task_id"] = item.task_id
        if status == "failed":
            log.warning("[task %s] failed: %s", item.display, reason)
        # the line as the output manifest will hold it: the commit copies these bytes as they are
        self.held.append((record, new.prefix + new.body + new.newline, len(line.raw)))
        self.counts[status] += 1
        for listener in self.listeners:
            listener(status)
        try:
            self.systematic.observe(status, rule, reason)  # raises JobError when the configuration is wrong
        except JobError:
            # the lines that stopped the run are not final: shown failed in this run's output manifest
            # and failures.jsonl, never in the checkpoint, so a resume (the cause fixed) tries them again
            self.stopped = [self.held.pop() for _ in range(self.systematic.undone)][::-1]
            self.release()
            raise
        keep = self.systematic.at_stake()
        if len(self.held) > keep:
            self.release(keep)
        return status

    def release(self, keep: int = 0) -> None:
        """Hand the held records to the checkpoint writer but the last ``keep``; the engine's run
        ends with ``release()`` (whatever ended it: those records are outcomes then). Held records
        are never written before the decision: a crash meanwhile redoes them, as for the lines of a
        part not yet written."""
        held = self.held
        while len(held) > keep:  # taken off before it is added: a second Ctrl-C never adds one twice
            self.writer.add(*held.popleft())

    def stopped_part(self) -> Part | None:
        """The lines the run stopped on, as a part held in memory that the commit merges after the
        checkpoint's (they come after every recorded line); None when the run did not stop so."""
        if not self.stopped:
            return None
        records, bodies, in_bytes = zip(*self.stopped, strict=True)
        extra = {j: {k: v for k, v in r.items() if k not in ("i", "s")} for j, r in enumerate(records)}
        return Part("(the lines the run stopped on, not recorded)", [r["i"] for r in records],
                    "".join(r["s"][0] for r in records), [len(b) for b in bodies], list(in_bytes),
                    {j: x for j, x in extra.items() if x}, data=b"".join(bodies))


def _remove_files(urls: tuple[str, ...], item: Item) -> None:
    """The files written for a label the line no longer holds; one that cannot be removed is
    named in the log (the line's failure stands either way)."""
    from .._errors import StorageError
    from .._storage import remove_file

    for url in urls:
        try:
            remove_file(url)
        except StorageError as exc:
            log.warning("[task %s] %s (written for the label the line could not hold)", item.display, exc)


def dropped_count(metadata: Any) -> int:
    """How many things a label's metadata says were dropped (``"dropped": {"polygon": 3}`` -> 3)."""
    dropped = metadata.get("dropped") if isinstance(metadata, dict) else None
    if not isinstance(dropped, dict):
        return 0
    return sum(v for v in dropped.values() if isinstance(v, int) and not isinstance(v, bool))


def _not_a_json_number(value: Any, key: str) -> str | None:
    """Where ``value`` holds a NaN or an infinity (``confidence=NaN`` at ``annotations[0].confidence``),
    or None. Why: the schema check reads such a float as ``null`` (as orjson writes it), so a NaN
    confidence failed as "null is not of type number", hiding the NaN the annotator gave. Looked
    for only once the check found a problem: a good label costs nothing more."""
    if isinstance(value, float) and not math.isfinite(value):
        return f"{key or 'the label'}={value!r}"
    if isinstance(value, dict):
        items: Any = ((f"{key}.{k}" if key else str(k), v) for k, v in value.items())
    elif isinstance(value, list | tuple):
        items = ((f"{key}[{i}]", v) for i, v in enumerate(value))
    else:
        return None
    for sub, v in items:
        if (found := _not_a_json_number(v, sub)) is not None:
            return found
    return None


def _attribute_misnamed(attribute: str, task_type: TaskType) -> Failed | None:
    """The failure for a label whose own type (a document kept as it is: Ground Truth's custom
    type, written inline) the job's ``-ref`` attribute may not hold by Ground Truth's naming rule
    (a semantic-segmentation job's attribute holds file references): written, every such line
    failed ``validate`` of the job's own COMPLETED output. None: it may."""
    found = [v for v in label_attribute_violations(attribute, task_type) if v.rule == "label-attribute-ref-forbidden"]
    if not found:
        return None
    return Failed(f"{found[0].message}: the label is a {task_type.name} document (kept as it is: --native keep "
                  "or any); convert it to the job's task type (--native convert), or label under an attribute "
                  "that may hold it", rule="label-attribute-ref-forbidden")
