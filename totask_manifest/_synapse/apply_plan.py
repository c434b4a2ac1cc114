"""Planning an apply: which job, which converter, and each manifest line turned into a task write.

``load_job_target`` reads what apply needs from the job folder; ``converter`` picks the label to
task data conversion; ``plan_writes`` turns the output manifest, line by line, into ``Planned``
writes (task id, new data and its fingerprint, the fingerprint recorded at export), reporting the
lines that cannot be applied (no task id, no label, a label that cannot be converted or converts
to nothing) as they go. No request is sent here: the run in ``apply`` does that.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from .._compact import IntMap
from .._errors import JobError, ManifestError, StorageError, UsageError
from .._formats.native import EMPTY_RESULT, is_empty, native_format, refused_as_empty
from .._jobs.job import Job
from .._jobs.state import JobState
from .._jobs.status import COMPLETED
from .._manifest.io import read_lines
from .._manifest.naming import marks_no_label
from .._manifest.ranges import CHUNK
from .._storage import exists, open_read
from . import DATA_FORMATS, DM_V1, OBJECTS
from .apply_report import FAILED, NO_TASK_ID, NOT_LABELED, TaskResult
from .taskdata import data_hash, exact

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class JobTarget:
    """What apply needs from a job folder."""

    job_url: str
    label_attribute: str
    task_type: str
    output_manifest: str
    #: the output manifest's non-blank lines, counted as its checksum was read (what the ToTask
    #: action reports progress against: it read the whole file once more for it)
    lines: int = 0
    #: the job folders this job was chained or cloned from, nearest first (``lineage``): a task
    #: holding one of their writes holds what this job's lines follow on from, not someone's edit
    lineage: tuple[str, ...] = ()


#: how far back ``lineage`` follows ``chained-from`` and ``cloned-from``
MAX_LINEAGE = 64


def lineage(job: Job) -> tuple[str, ...]:
    """The job folders ``job`` was chained or cloned from, nearest first, as far as each still
    holds that very job (``_follows``: one moved, deleted or replaced by another job ends it; so
    does a loop). Why: its lines carry the export's fingerprint of each task, so after the job it
    was chained from was applied every task looked changed since export, a conflict, and
    ``--force``, the only way through, also overwrote a reviewer's real edit."""
    found: list[str] = []
    seen = {job.url}
    state = job.state
    while len(found) < MAX_LINEAGE:
        parent = state.chained_from or state.cloned_from
        if not parent or parent in seen:
            break
        try:
            parent_state = Job.open(parent).state
        except (JobError, StorageError, UsageError):
            break
        if not _follows(state, parent_state, chained=state.chained_from is not None):
            log.warning("apply: %s is no longer the job %s was %s from (another job started in its folder since): "
                        "its writes are not taken for this job's lineage", parent, state.config.job_name,
                        "chained" if state.chained_from else "cloned")
            break
        seen.add(parent)
        found.append(parent)
        state = parent_state
    return tuple(found)


def _follows(child: JobState, parent: JobState, *, chained: bool) -> bool:
    """Whether ``parent`` is the job ``child`` was chained (or cloned) from, not one started in its
    folder since (rolled back, deleted, and its name taken again): started before the child, and
    the child read the parent's output as a run of it recorded it (chained), or the same input
    (cloned). A job an older version recorded without checksums is not followed: the safe side,
    its tasks stay conflicts."""
    read = child.given_sha256[0] if child.given_sha256 else child.input_sha256
    if not read or not parent.created < child.created:
        return False
    if chained:
        return any(isinstance(run, dict) and isinstance(run.get("output"), dict) and run["output"].get("sha256") == read
                   for run in parent.runs)
    return read == (parent.given_sha256[0] if parent.given_sha256 else parent.input_sha256)


def load_job_target(job_url: str) -> JobTarget:
    """What apply needs from ``job.json``: a COMPLETED job, its attribute, task type and output."""
    job = Job.open(job_url.rstrip("/"))
    job.require(COMPLETED)
    output = job.output_manifest
    if not exists(output):
        raise JobError(f"job {job.url} has no output manifest ({output}): resume it to write it again from its "
                       f"checkpoint (totask-manifest resume {job.url})")
    # a head -25 onto it was applied as the job's labels, and an edit of the same size too: its
    # sha256 (read whole, as chain does) is checked before any request, since the writes go out
    # while the file is read; its lines are counted in the same pass
    if changed := job.output_changed():
        raise JobError(changed)
    sha256, lines = sha256_and_lines(output)
    if changed := job.output_changed(sha256):
        raise JobError(changed)
    config = job.state.config
    return JobTarget(job.url, config.label_attribute, config.task_type, output, lines, lineage(job))


def sha256_and_lines(url: str, chunk: int = CHUNK) -> tuple[str, int]:
    """The file's sha256 and its non-blank lines (``Line.is_blank``: white space only), in one
    read: a pass for each cost about 0.1 s per 100 MB."""
    digest, lines, carry = hashlib.sha256(), 0, b""
    with open_read(url) as f:
        while block := f.read(chunk):
            digest.update(block)
            parts = (carry + block).split(b"\n") if carry else block.split(b"\n")
            carry = parts.pop()  # the line the next block goes on with
            lines += sum(1 for part in parts if part and not part.isspace())
    if carry and not carry.isspace():
        lines += 1
    return digest.hexdigest(), lines


def converter(data_format: str, *, allow_drop: bool = False) -> tuple[Callable[[str, Any, dict], Any], str | None]:
    """``(convert(task_type, value, metadata) -> task data, schema query value)``; ``allow_drop``:
    a multi-label's scores of classes it does not choose are left out (refused otherwise)."""
    import functools

    if data_format == DM_V1:
        from .._formats.synapse import gt_to_dm_v1

        # DM v1 has no confidence field; a classification attribute holds it, so nothing is lost
        return functools.partial(gt_to_dm_v1, confidence_attribute="confidence", allow_drop=allow_drop), None
    if data_format == OBJECTS:
        from .._formats.synapse import gt_to_objects

        return functools.partial(gt_to_objects, allow_drop=allow_drop), "any"
    raise UsageError(f"unknown --data-format {data_format!r}; choose {' or '.join(DATA_FORMATS)}")


@dataclass
class Planned:
    """One task write a manifest line asks for, with the fingerprints that decide whether it goes out."""

    line: int
    task_id: int
    project: int | None
    data: Any
    new_hash: str
    export_hash: str | None
    #: the ``schema`` query value for this task's write
    schema: str | None = None
    #: the data unit the line was exported with (``synapse.data_unit_id``): the label is for its files
    data_unit: int | None = None


def _no_label(record: dict, attr: str, metadata: Any) -> str | None:
    """Why a line holds no label of the job's to apply, or None: no value (the key missing, or
    null: Ground Truth's "no data connected to that label attribute name", which the chain's
    selection labels again, ``needs_label``), or metadata saying it failed (``failure-reason``) or
    was routed to review (``review-status: routed``), even beside a value (a chained job keeps the
    earlier value when it fails or routes a line), as ``validate``, ``stats``, ``labeled`` and the
    exports read it (``naming.marks_no_label``): such a value was sent as the job's label, and a
    null one failed its task as a label that cannot be converted."""
    if not marks_no_label(metadata):
        if attr not in record:
            return f"no {attr!r} label"
        return None if record[attr] is not None else f"no {attr!r} label ({attr!r} is null)"
    if "failure-reason" in metadata:
        return str(metadata["failure-reason"] or f"no {attr!r} label (failure-reason)")
    return "routed to review (review-status: routed)"


def plan_writes(target: JobTarget, convert: Callable[[str, Any, dict], Any], schema: str | None,
                native_schema: str | None, emit: Callable[[TaskResult], None], *,
                send_kept_empty: bool = False) -> Iterator[Planned]:
    """The writes the output manifest asks for, in line order; a line that cannot be applied goes
    to ``emit`` as its ``TaskResult`` instead. ``schema``: the query value for converted labels;
    ``native_schema``: the one asked for explicitly, for documents kept as they are;
    ``send_kept_empty``: such a document goes even when it holds no annotation (``apply_job``)."""
    attr = target.label_attribute
    seen = IntMap()  # task id -> its first line: 24 to 48 bytes a task, where a dict held about 100
    for line in read_lines(target.output_manifest):
        if line.is_blank:
            continue
        try:
            # the label as the job wrote it: an integer beyond 64 bits (a kept document's) exact
            record = exact(line.body, line.record())
        except ManifestError as exc:
            emit(TaskResult(line.number, None, FAILED, str(exc)))
            continue
        syn = record.get("synapse")
        task_id = syn.get("task_id") if isinstance(syn, dict) else None
        if not isinstance(task_id, int) or isinstance(task_id, bool):
            emit(TaskResult(line.number, None, FAILED, NO_TASK_ID))
            continue
        metadata = record.get(attr + "-metadata")
        if (no_label := _no_label(record, attr, metadata)) is not None:
            emit(TaskResult(line.number, task_id, NOT_LABELED, no_label))
            continue
        first = seen.setdefault(task_id, line.number)
        if first != line.number:
            emit(TaskResult(line.number, task_id, FAILED, f"task already applied from line {first}"))
            continue
        kept = native_format(metadata)
        line_schema = schema
        if kept is not None:  # a document kept as it is: sent unchanged
            data = record[attr]
            line_schema = native_schema or ("any" if kept == OBJECTS else None)
        else:
            try:
                data = convert(target.task_type, record[attr],
                               metadata if isinstance(metadata, dict) else {})
            except Exception as exc:  # a label that cannot be expressed fails its task only
                emit(TaskResult(line.number, task_id, FAILED, f"cannot convert the label: {exc}"))
                continue
        # asked for ``schema=any`` (the action's ``schema: any``), a kept document is sent even
        # when empty, as the SDK sends it; otherwise the backend answers 400, so it is not sent
        if (refused_as_empty(data, kept, submit_empty=send_kept_empty or native_schema == "any") if kept is not None
                else is_empty(data, kept)):
            emit(TaskResult(line.number, task_id, FAILED, EMPTY_RESULT))
            continue
        export_hash, unit = syn.get("data_hash"), syn.get("data_unit_id")
        yield Planned(line.number, task_id, syn.get("project"), data, data_hash(data),
                      export_hash if isinstance(export_hash, str) else None, line_schema,
                      unit if isinstance(unit, int) and not isinstance(unit, bool) else None)
