"""Which manifest, and which two attributes: given, from a job's lineage, or from ``human-annotated``.

A job folder chained from another holds both sides on the same lines: the previous job's
attribute and this job's. ``job.json`` records the previous job (``chained-from``) and each job's
method. The attribute a model made (the one job of the two whose method is not ``file``, which
imports labels made elsewhere) is the prediction; failing that, ``human-annotated`` orients the pair
(the attribute all ``no`` against the one all ``yes``). The order of the jobs tells nothing: the file
method writes ``human-annotated: "no"``, and a model chained after a file import (the README's chain)
was scored backwards, the files as the prediction. Where neither tells (two imports alike), the
command stops rather than guess. Without a lineage (a plain manifest, or a job not chained),
``human-annotated`` decides: the one attribute whose labels say ``no`` is the prediction, the one
saying ``yes`` the reference. Anything else needs ``--predicted`` and ``--reference``.
"""

from __future__ import annotations

import itertools
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import orjson

from ..._errors import JobError, TotaskError, UsageError
from ..._jobs.job import Job, lineage_mask_folders
from ..._jobs.layout import job_folder_holding
from ..._jobs.state import output_changed, output_missing
from ..._manifest.file_kind import refuse_not_text
from ..._manifest.ranges import iter_bodies
from ..._storage import exists, is_dir, open_read, redact_url
from ..._task_types import task_type_of_metadata
from ..labels import JOB_OUTPUT
from ..stats import count_manifest, refuse_absent_names
from .views import comparable_types

METADATA = "-metadata"
#: lines read to find the attributes and who labeled them
SCAN_LINES = 2000


#: the method that imports labels made elsewhere (people's, or another tool's): every other method
#: (``inference``, ``synapse-preprocessor``, a plugin) computes its own, and in a lineage that job's
#: attribute is the prediction
IMPORT_METHOD = "file"


class NotOriented(UsageError):
    """A chained job's pair whose prediction cannot be told (two imports, or two models, alike):
    ``evaluate`` stops (exit 2); ``report`` says why its section has no figures, as the job has a
    pair to compare. ``reason`` is the message without the advice on flags ``report`` has not."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"{reason}; give --predicted and --reference")
        self.reason = reason


@dataclass
class Lineage:
    """A chained job's pair as ``job.json`` records it: the previous job's attribute (None when it
    is no reference: another task type, ``other_type`` saying why) and this job's, with each job's
    name and method."""

    previous: str | None
    attribute: str
    previous_job: str | None
    previous_method: str | None
    job: str
    method: str
    other_type: str | None = None


@dataclass
class Target:
    manifest: str
    predicted: str
    reference: str
    how_found: str
    #: fetch options of the job (``allow_root``, ``allow_hosts``) for masks, when a job folder was given
    fetch_options: dict[str, Any] = field(default_factory=dict)


def is_job_folder(source: str) -> bool:
    return Job(source).exists


def lineage_of(job_url: str) -> tuple[Lineage, dict[str, Any], str]:
    """(the pair ``job.json`` records, fetch options, manifest). A job chained with another task
    type added a label of its own, no review of the previous one: no previous attribute, and the
    line saying so."""
    job = Job.open(job_url, read_only=True)  # evaluate reads: a newer version's job.json too
    state = job.state
    options = job_fetch_options(job)
    config = state.config
    lineage = Lineage(None, config.label_attribute, None, None, config.job_name, config.method)
    if state.chained_from:
        try:
            prev = Job.open(state.chained_from, read_only=True).state.config
        except JobError:
            prev = None
        if prev is not None and comparable_types(prev.task_type, config.task_type):
            lineage.previous, lineage.previous_job, lineage.previous_method = (prev.label_attribute, prev.job_name,
                                                                               prev.method)
        elif prev is not None:
            lineage.other_type = (f"job {redact_url(job.url)} has no reference to compare with: it was chained from "
                                  f"job {prev.job_name!r}, whose attribute {prev.label_attribute!r} is "
                                  f"{prev.task_type}, not {config.task_type} (a new label of another task type, "
                                  "no review of it)")
    return lineage, options, job.output_manifest


def job_fetch_options(job: Job) -> dict[str, Any]:
    """The fetch options masks of ``job``'s output are read with: its own (``allow_root``,
    ``allow_hosts``: what ``annotate`` was given) and the folders of the masks it and the jobs it
    was chained from wrote (``own_roots``)."""
    config_options = job.state.config.options
    options = {k: config_options[k] for k in ("allow_root", "allow_hosts") if config_options.get(k)}
    options["own_roots"] = lineage_mask_folders(job.url)
    return options


def output_manifest_options(manifest: str) -> dict[str, Any]:
    """For a job's own output manifest (``JOB/manifests/output/output.manifest`` beside the job's
    ``job.json``), the job's fetch options (``job_fetch_options``), as evaluating ``JOB`` reads its
    masks; none for any other manifest. The manifest form read the job's relative masks where the
    job did, but under no policy: "refused by policy: local file ... needs --allow-root" where
    ``evaluate JOB`` read them."""
    if not manifest.endswith(JOB_OUTPUT) or not is_job_folder(job_url := manifest[: -len(JOB_OUTPUT)]):
        return {}
    return job_fetch_options(Job.open(job_url, read_only=True))


def human_annotated(manifest: str) -> dict[str, Counter]:
    """Per labeled attribute in the first lines: how many labels say ``human-annotated`` yes / no."""
    found: dict[str, Counter] = {}
    with open_read(manifest) as f:
        refuse_not_text(f, manifest)  # its own refusal, not "cannot tell the attributes to compare"
        lines = itertools.chain.from_iterable(iter_bodies(f))
        for raw in itertools.islice(lines, SCAN_LINES):
            try:
                rec = orjson.loads(raw)
            except orjson.JSONDecodeError:
                continue
            if not isinstance(rec, dict):
                continue
            for key, meta in rec.items():
                if not key.endswith(METADATA) or task_type_of_metadata(meta) is None:
                    continue
                attr = key[: -len(METADATA)]
                if rec.get(attr) is None:
                    continue
                found.setdefault(attr, Counter())[str(meta.get("human-annotated", "?")).lower()] += 1
    return found


def _all_say(counts: Counter | None) -> str | None:
    """``yes`` or ``no`` when every label of an attribute says it; None otherwise."""
    if counts and counts["yes"] and not counts["no"]:
        return "yes"
    if counts and counts["no"] and not counts["yes"]:
        return "no"
    return None


def _oriented(lineage: Lineage, manifest: str, source: str) -> tuple[str, str, str]:
    """(predicted, reference, how found) for a chained job's pair: the attribute a model made (the
    one job of the two not importing files), else the one ``human-annotated`` says no against yes;
    ``NotOriented`` where neither tells (two imports alike: which is the prediction is the user's
    to say). The order of the jobs tells nothing: a model runs before a review or after an import."""
    prev, attr = lineage.previous, lineage.attribute
    assert prev is not None
    computed = [(a, m) for a, m in ((prev, lineage.previous_method), (attr, lineage.method)) if m != IMPORT_METHOD]
    if len(computed) == 1:
        return _pair(computed[0][0], prev, attr, f"job lineage, the model's attribute: method {computed[0][1]}")
    found = human_annotated(manifest)
    said = {a: _all_say(found.get(a)) for a in (prev, attr)}
    if sorted(said.values(), key=str) == ["no", "yes"]:
        return _pair(prev if said[prev] == "no" else attr, prev, attr, "job lineage, oriented by human-annotated")
    methods = (f"both by method {lineage.method}" if lineage.previous_method == lineage.method else
               f"by methods {lineage.previous_method} and {lineage.method}")
    raise NotOriented(
        f"job {redact_url(source)}: cannot tell the prediction from the reference: {prev!r} (job "
        f"{lineage.previous_job!r}) and {attr!r} (job {lineage.job!r}) were made {methods} and human-annotated "
        f"says {dict(found.get(prev, {}))} and {dict(found.get(attr, {}))}")


def _pair(predicted: str, prev: str, attr: str, how: str) -> tuple[str, str, str]:
    return predicted, (attr if predicted == prev else prev), how


def _one_side_given(lineage: Lineage, predicted: str | None, reference: str | None) -> tuple[str | None, str | None]:
    """One of the pair given: the other attribute of the pair is the other side. Anything else as given."""
    pair = (lineage.previous, lineage.attribute)
    given = predicted if predicted is not None else reference
    if given not in pair:
        return predicted, reference
    other = pair[1] if given == pair[0] else pair[0]
    return (predicted, other) if predicted is not None else (other, reference)


def _by_human(manifest: str) -> tuple[str | None, str | None, dict[str, Counter]]:
    found = human_annotated(manifest)
    machine = [a for a, c in found.items() if _all_say(c) == "no"]
    human = [a for a, c in found.items() if _all_say(c) == "yes"]
    return (machine[0] if len(machine) == 1 else None), (human[0] if len(human) == 1 else None), found


def _refuse_a_side_no_line_holds(manifest: str, found: dict[str, Counter], **sides: str | None) -> None:
    """Refuse a side given that no line holds (a misspelt ``--predicted``, usually) before saying the
    other cannot be told: ``evaluate JOB --predicted boxs`` said "give --reference", blaming a flag
    not given, where with both flags the same name is refused as absent (exit 1). Said as the
    evaluation says it; the whole file is read only for a name the first lines do not label, on the
    way to an error."""
    for side, name in sides.items():
        if name is not None and name not in found:
            counts = count_manifest(manifest, label_attributes=[name])
            refuse_absent_names(manifest, counts, [name], f"--{side}", unnamed_too=True)


def _say_output_state(job_url: str, manifest: str) -> None:
    """Refuse a job folder whose output manifest is not there, saying it is gone (deleted since the
    job wrote it: resume writes it again) where it is, as ``status`` says it. Before: "no output
    manifest yet" for a deleted one."""
    if exists(manifest):
        return
    state = Job(job_url).state
    gone = output_missing(state.status, manifest, state.config.job_name, job_url, state.runs)
    raise UsageError(f"job {redact_url(job_url)}: output manifest {gone}" if gone else
                     f"job {redact_url(job_url)} has no output manifest yet ({redact_url(manifest)})")


def output_changed_note(source: str) -> str | None:
    """For a job folder whose output manifest changed since the job wrote it (not the job's), what
    ``evaluate`` warns, as ``report`` and ``status`` say it; None otherwise. The command says it
    once (``report``, which evaluates the job too, says it itself); it was evaluated without a word.
    Looked at before the job is evaluated, so it is said even when evaluation then fails; a source
    this cannot read gives None here, for ``evaluate_manifest`` to name it as it names every source."""
    try:
        if not is_job_folder(source):
            return None
        state = Job(source).state
        return output_changed(state.runs, Job(source).output_manifest, state.config.job_name)
    except TotaskError:
        return None


def _refuse_a_jobs_own_file(source: str) -> None:
    """A file of a job that is no manifest (its ``job.json``, ``failures.jsonl``, a checkpoint part,
    the selection) given for a manifest: ``evaluate JOB/job.json`` read it as one ("81 not a JSON
    object", exit 1). Refused naming the job folder to give, as ``status`` names it. The job's
    manifests (``*.manifest``: its output, its combined input) are read as the manifests they are."""
    if source.rstrip("/").endswith(".manifest"):
        return
    job = job_folder_holding(source, levels=4)
    if job is not None and job != source.rstrip("/"):
        raise UsageError(f"{redact_url(source)} is a file of job folder {redact_url(job)}, not a manifest: give the "
                         "job folder (its output manifest is evaluated) or a manifest")


def resolve_target(source: str, predicted: str | None, reference: str | None) -> Target:
    exists(source)  # a refusal (wrong credentials) names what was given, not the job.json looked for in it
    source = source.rstrip("/") if is_job_folder(source) else source
    how = "given"
    other_type: str | None = None
    options: dict[str, Any] = {}
    manifest = source
    if is_job_folder(source):
        # a damaged job.json is invalid data (exit 1), an unreadable one an I/O error (exit 2), as in
        # every other command: the error keeps its own class (and so its exit code)
        lineage, options, manifest = lineage_of(source)
        other_type = lineage.other_type
        # a job a live process runs has no output of its own yet (or an earlier run's): in use, exit 2
        Job(source, read_only=True).refuse_in_use()
        _say_output_state(source, manifest)
        if lineage.previous and lineage.previous != lineage.attribute:
            if predicted is None and reference is None:
                predicted, reference, how = _oriented(lineage, manifest, source)
            elif predicted is None or reference is None:
                predicted, reference = _one_side_given(lineage, predicted, reference)
                how = "job lineage (chained-from)" if predicted and reference else how
    elif exists(Job(source).layout.output_manifest):  # a job folder without job.json
        manifest = Job(source).layout.output_manifest
    elif is_dir(source):  # named as every job command names it: the job folder it is inside, or those it holds
        raise Job(source).not_a_job("no job.json and no manifests/output/output.manifest; give a job folder or a "
                                    "manifest")
    elif not exists(source):
        raise UsageError(f"manifest not found: {redact_url(source)}")
    else:
        _refuse_a_jobs_own_file(source)
        options = output_manifest_options(source)
    if predicted is None or reference is None:
        machine, human, found = _by_human(manifest)
        if predicted is None and machine and machine != reference:
            predicted, how = machine, "human-annotated (no = predicted)"
        if reference is None and human and human != predicted:
            reference, how = human, "human-annotated (yes = reference)"
        _refuse_a_side_no_line_holds(manifest, found, predicted=predicted, reference=reference)
        if (predicted is None or reference is None) and other_type:
            raise UsageError(f"{other_type}; give --predicted and --reference to compare two attributes of one type")
        if predicted is None or reference is None:
            seen = ", ".join(f"{a} (human-annotated {dict(c)})" for a, c in sorted(found.items())) or "none"
            missing = " and ".join(n for n, v in (("--predicted", predicted), ("--reference", reference)) if v is None)
            raise UsageError(f"{redact_url(manifest)}: cannot tell the attributes to compare; give {missing} "
                             f"(labeled attributes in the first {SCAN_LINES} lines: {seen})")
    if predicted == reference:
        raise UsageError(f"--predicted and --reference are the same attribute ({predicted!r})")
    return Target(manifest, predicted, reference, how, options)
