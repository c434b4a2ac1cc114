"""A new job's configuration checked and made whole before anything is written (``_api``'s
step 0): paths absolute, where relative URLs resolve, the label attribute against the task type,
numbers job.json can hold, option keys and types, and the method's own check of its options.
A mistake found here costs nothing: no folder, no lease, no job.json."""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ._annotators.base import check_installed, get_annotator_class
from ._errors import JobError, JobExistsError, TotaskError, UsageError, agreeing
from ._jobs.config import TUNING_OPTIONS, JobConfig, JobResult, as_recorded, as_recorded_path, identity
from ._jobs.held_labels import JobClasses
from ._jobs.input_identity import file_behind
from ._jobs.job import Job
from ._jobs.layout import check_job_name
from ._jobs.lease import lease_timeout
from ._jobs.plugin_errors import plugin_raised_as_usage
from ._jobs.state import (
    START_ANEW,
    JobState,
    failures_missing,
    input_changed_run,
    output_changed,
    output_stale,
)
from ._jobs.status import COMPLETED
from ._manifest.naming import check_label_attribute, default_label_attribute
from ._options import Options, mistyped, option, path_options
from ._plugin_output import plugin_code
from ._storage import escape_undecodable, exists, redact_secret_url, redact_url, refuse_half_scheme
from ._task_types import get_task_type

log = logging.getLogger("totask_manifest")

#: options about the data rather than the method, kept when a chained job changes method
DATA_OPTIONS = ("relative_to", "allow_root", "allow_hosts", "relative_to_appended")  # fetch.APPENDED_BASES


def _absolute(url: str) -> str:
    """Local paths are kept absolute in job.json, so resume and chain work from any folder."""
    if "://" in url:
        return url
    refuse_half_scheme(url)  # 's3:/bucket' is no local path to make absolute
    return os.path.abspath(url)


#: methods that fetch, whose relative URLs resolve against the input manifest's folder (as on the CLI)
_FETCHING_METHODS = ("file", "inference")


def _absolute_options(options: dict[str, Any], method: str) -> dict[str, Any]:
    """The method's path options (``option(path=...)``) absolute, so chain works from anywhere."""
    out = dict(options)
    for key, value, absolute in path_options(get_annotator_class(method).Options, options):
        out[key] = (absolute or _absolute)(value)
    return out


#: the largest integer job.json holds (orjson writes 64-bit integers)
_MAX_INT = 2**63 - 1


def refuse_out_of_range(values: dict[str, Any]) -> None:
    """A number job.json cannot hold is refused naming its flag, before anything is written: an
    integer too big (``--checkpoint-every 99999999999999999999``: writing job.json raised a
    TypeError) or a float that is not finite (``--timeout inf``: orjson writes it as null, so the
    job ran with no timeout and a resume with the default)."""
    for key, value in values.items():
        if isinstance(value, int) and not isinstance(value, bool) and not -_MAX_INT <= value <= _MAX_INT:
            raise UsageError(f"--{key.replace('_', '-')} {value} is out of range (at most {_MAX_INT:,})")
        if isinstance(value, float) and not math.isfinite(value):
            raise UsageError(f"--{key.replace('_', '-')} {value} is out of range (a finite number)")


@dataclass(frozen=True)
class _Tuning(Options):
    """The tuning options' kinds, for a method that does not declare them (``check_tuning``):
    ``Options.checked`` words a wrong type the same way for one that does."""

    concurrency: int | None = option(None, cli=False)
    timeout: float | None = option(None, cli=False)
    retries: int | None = option(None, cli=False)
    batch_size: int | None = option(None, cli=False)
    device: str | None = option(None, cli=False)


#: the tuning options whose rules are the fetch policy's (``FetchPolicy``: one rule, one wording)
_FETCH_KEYS = ("concurrency", "timeout", "retries")


def check_tuning(method: str, options: Mapping[str, Any]) -> None:
    """The tuning values given (``TUNING_OPTIONS``; None is the default) refused naming their flag
    where they cannot work, before anything is written, for the options a method does not
    declare. Why: a method checks only the options it declares, so a plugin that declares no
    ``concurrency`` let ``resume --concurrency -1`` (and ``annotate``) write -1 into job.json, for
    any later run or chained method to meet. An option the method declares is its own, checked
    by its ``Options`` with its own meaning (a plugin's ``retries: -1`` may mean "for ever", its
    ``device`` a GPU index): the rules here never overrule it. The rules are those of the
    built-in methods that declare them: the fetch policy's, a batch of at least one image, the
    devices inference knows (``check_device``)."""
    declared = {f.name for f, _ in get_annotator_class(method).Options.leaves()}
    given = {f.name: value for f, _ in _Tuning.leaves()
             if f.name not in declared and (value := options.get(f.name)) is not None}
    if wrong := mistyped(_Tuning, given):
        raise UsageError(f"option {wrong[0]}")
    if fetch := {key: given[key] for key in _FETCH_KEYS if key in given}:
        from ._fetch.policy import FetchPolicy  # on use: the fetch package imports aiohttp

        FetchPolicy(**fetch)
    if given.get("batch_size", 1) < 1:
        raise UsageError(f"--batch-size must be at least 1 (got {given['batch_size']!r})")
    if "device" in given:
        from ._models.params import DEVICES, check_device  # on use: it imports yaml

        try:
            check_device("--device", "device", given["device"])
        except UsageError:
            raise UsageError(f"--device must be one of {', '.join(DEVICES)} (or cuda:N) "
                             f"(got {given['device']!r})") from None


def refuse_undecodable(config: JobConfig) -> None:
    """A path that is not valid UTF-8 (a folder named by a Latin-1 system: Python holds its bytes
    as surrogates) is refused naming its flag, before anything is written: job.json holds text,
    and writing it raised a TypeError once the job's folder and lease were made."""
    given = [("input manifest", config.input), ("--output", config.output_root)]
    given += [("--append", url) for url in config.append]
    given += [(f"--{key.replace('_', '-')}", value) for key, value in config.options.items()]
    for flag, value in given:
        for text in value if isinstance(value, list) else [value]:
            refuse_undecodable_path(flag, text)


def refuse_undecodable_path(what: str, text: Any) -> None:
    """``what`` named with ``text`` as its bytes read, where ``text`` is not valid UTF-8."""
    if isinstance(text, str) and (shown := escape_undecodable(text)) != text:
        # a URL's password or signature never shown: the path's bytes are what to find
        raise UsageError(f"{what} {redact_secret_url(shown)} is not valid UTF-8: job.json keeps paths as text; "
                         "rename the file or folder (convmv converts a tree's names)")


def check_config(config: JobConfig) -> None:
    """A new job's configuration made whole (paths absolute, where relative URLs resolve) and
    checked, before anything is written: a mistake costs nothing."""
    check_job_name(config.job_name)
    config.input = file_behind(_absolute(config.input), "input manifest")
    config.output_root = _absolute(config.output_root)
    config.append = [file_behind(_absolute(u), "--append manifest") for u in config.append]
    if config.method in _FETCHING_METHODS and not config.options.get("relative_to"):
        # the CLI records where relative URLs resolve; the API does the same, so a chained job
        # (whose input is in the job folder) still finds the files the first job read
        from ._fetch import base_of

        config.options = {**config.options, "relative_to": base_of(config.input)}
    config.options = _absolute_options(config.options, config.method)
    if not isinstance(config.label_attribute, str) or not config.label_attribute:
        raise UsageError("the label attribute is empty; give --label-attribute a name (or leave the option out "
                         "to use the job name)")
    task_type = get_task_type(config.task_type)
    config.task_type = task_type.name
    check_label_attribute(config.label_attribute, task_type)
    refuse_out_of_range({**config.options, "checkpoint_every": config.checkpoint_every})
    refuse_undecodable(config)
    if config.checkpoint_every < 1:
        raise UsageError(f"--checkpoint-every must be at least 1 (got {config.checkpoint_every})")
    check_tuning(config.method, config.options)
    check_options(config.method, config.options, task_type.name)


def _known_options(method: str) -> set[str]:
    """The option keys a job of ``method`` may hold: its own, the tuning ones, and where relative URLs resolve."""
    return {f.name for f, _ in get_annotator_class(method).Options.leaves()} | {*DATA_OPTIONS, *TUNING_OPTIONS}


def refuse_unknown_options(method: str, options: dict[str, Any] | None) -> None:
    """Options given by the caller must be the method's, the tuning ones (which ``resume`` takes
    for any method) or where relative URLs resolve: ``Options.from_dict`` ignores other keys, so
    ``{"allow_rot": ...}`` would be kept in job.json and the job run without it. Only what the
    caller passes is checked: a stored job's options (an older version's keys) are not."""
    known = _known_options(method)
    unknown = sorted(k for k in options or () if k not in known)
    if unknown:
        raise UsageError(f"unknown {agreeing(len(unknown), 'option', 'options')} {', '.join(map(repr, unknown))} for "
                         f"method {method!r}; its options: {', '.join(sorted(known))}")


def undeclared_options(method: str, options: dict[str, Any]) -> list[str]:
    """The keys of a stored job's ``options`` that plugin ``method`` no longer declares (renamed
    or removed by a newer version of it), sorted; none for a built-in method, whose older keys are
    kept on purpose. ``Options.from_dict`` ignores such keys: the job would go on without them."""
    if ":" not in method:
        return []
    known = _known_options(method)
    return sorted(k for k in options if k not in known)


def refuse_undeclared_options(job_name: str, method: str, options: dict[str, Any]) -> None:
    """A job is not resumed with options its plugin no longer reads: the lines labeled before and
    after would be labeled two ways, with nothing said (a renamed option took its default)."""
    if gone := undeclared_options(method, options):
        shown = ", ".join(f"{k!r}" for k in gone)
        raise UsageError(f"job {job_name!r} was started with {agreeing(len(gone), 'option', 'options')} {shown} that method {method!r} no longer "
                         f"declares (renamed or removed since?); resume it with the plugin version that started it, "
                         f"or chain a new job with this version's options")


def check_options(method: str, options: dict[str, Any], task_type: str) -> None:
    """The method's own check of its options (typed from job.json's object), before anything runs."""
    cls = get_annotator_class(method)
    check_installed(method, cls)
    with plugin_raised_as_usage(method, "its options"):  # a plugin's Options.__post_init__ may raise
        typed = cls.Options.checked(options)  # a value of the wrong type named before the check reads it
    with plugin_raised_as_usage(method, "its check of the options"), plugin_code():
        cls.check(typed, task_type)


def job_classes(config: JobConfig) -> JobClasses | None:
    """The class names a new job writes, where its method knows them before it starts
    (``Annotator.class_names``), for the scan to hold the labels it passes over to them."""
    from ._manifest.line_rules import MAP_TYPES, SINGLE_TYPES  # on use: the CLI starts without the rules

    if get_task_type(config.task_type).name not in MAP_TYPES | SINGLE_TYPES:  # no model loaded for nothing
        return None
    cls = get_annotator_class(config.method)
    with plugin_raised_as_usage(config.method, "its class names"), plugin_code():
        known = cls.class_names(cls.Options.checked(config.options), config.task_type)
    return JobClasses.of(config.task_type, *known) if known is not None else None


def path_keys(config: JobConfig) -> frozenset[str]:
    """The options of ``config``'s method that name local files (compared as the files they name)."""
    try:
        cls = get_annotator_class(config.method)
    except TotaskError:  # a method no longer installed: its options compared as written
        return frozenset()
    return frozenset(key for key, _value, _absolute in path_options(cls.Options, config.options))


def lineage_differences(existing: JobState, chained_from: str | None, cloned_from: str | None) -> list[str]:
    """``chained_from`` and/or ``cloned_from`` where they name another job folder than ``existing``
    recorded (through links to the recorded one counts as the same: ``as_recorded_path``)."""
    return [name for name, new, old in (("chained_from", chained_from, existing.chained_from),
                                         ("cloned_from", cloned_from, existing.cloned_from))
            if as_recorded_path(new, old) != old]


def same_job(existing: JobState, config: JobConfig, chained_from: str | None, cloned_from: str | None) -> bool:
    """Whether ``annotate`` (or ``chain``, ``clone``) is the same command as the one that started
    ``existing`` (tuning options aside): it carries on (or reports) that job rather than refuse."""
    return (identity(existing.config) == identity(as_recorded(config, existing.config, path_keys(config)))
            and not lineage_differences(existing, chained_from, cloned_from))


def completed_as_is(job: Job) -> JobResult | None:
    """The result of a job that is COMPLETED with its output manifest in place: nothing to do, so
    it is reported without taking the lease (a folder on a read-only mount or store cannot take
    one, and a report writes nothing). None for any other job, and for one whose input URL still
    holds a secret (``resume`` moves that input into the folder, rewriting job.json, under the lease).
    The lease's setting (``TOTASK_LEASE_TIMEOUT``) is read all the same: a bad value is refused as
    for a job that takes the lease, whatever the job's state, not passed over until one does."""
    from ._jobs.inputs import secret_fields

    lease_timeout()
    state = job.state
    if secret_fields(state):
        return None
    return completed_result(state)


def completed_result(state: JobState) -> JobResult | None:
    """The report of ``state`` when it is COMPLETED with its output manifest (and failures.jsonl,
    where lines failed) in place (said, as after a run: the summary prints whole); None otherwise."""
    from . import _signals  # on use: as the commands that run a job
    from ._jobs.execute import job_result

    if state.status != COMPLETED or not exists(state.layout.output_manifest):
        return None
    # first: a changed output is the user's file, which writing failures.jsonl again would replace
    if changed := output_changed(state.runs, state.layout.output_manifest, state.config.job_name):  # not the job's
        raise JobError(changed)
    if failures_missing(state.status, state.metrics, state.layout.failures, state.config.job_name, state.config.job_url):
        return None  # deleted: resume writes it again, with the output manifest, from the checkpoint
    if input_changed(state):  # "nothing to do" would say the input as it is now was labeled
        raise JobError(input_changed_text(state))
    log.info("job %s is already COMPLETED; nothing to do", state.config.job_name)
    _signals.done("the job COMPLETED")
    return job_result(state)


def refuse_own_name(config: JobConfig, chained_from: str | None, cloned_from: str | None) -> None:
    """A chain or clone whose ``--job-name`` is the job it starts from: its folder exists, so it was
    refused as any job of another configuration, "differs in: cloned_from" (or every option of the
    new method, chained), which did not say that the name given is the one to change."""
    source = chained_from or cloned_from
    if source is not None and source.rstrip("/") == config.job_url.rstrip("/"):
        how = "chained" if chained_from else "cloned"
        raise JobExistsError(f"job {config.job_name!r} at {redact_secret_url(config.job_url)} is the job being {how}: "
                             "--job-name names the new job, written beside it; choose another --job-name")


def chained_attribute(prev: JobState, job_name: str, label_attribute: str | None, task_type: str) -> str:
    """The attribute a chained job labels: given, else Ground Truth's console default (the new
    job's name after a COMPLETED job, the previous attribute after a STOPPED or FAILED one).

    Labeling the previous job's attribute labels only its lines still unlabeled, so it must be
    with the previous job's task type: another type there would leave one attribute holding two
    kinds of label (boxes on most lines, a class id on the rest), which no reader can take as one
    label column. Refused before anything is written, naming the attribute, both types and the way
    forward (exit 2: the options chosen are the mistake, not the data)."""
    if label_attribute is None:
        if prev.status == COMPLETED:
            return default_label_attribute(job_name, task_type)
        label_attribute = prev.config.label_attribute
    if label_attribute == prev.config.label_attribute and task_type != prev.config.task_type:
        raise UsageError(
            f"label attribute {label_attribute!r} holds the {prev.config.task_type} labels of job "
            f"{prev.config.job_name!r}; a chained {task_type} job labeling it would leave one attribute holding two kinds of label "
            f"(as in Ground Truth, an attribute keeps its task type): give --label-attribute a new name for the "
            f"{task_type} labels, or --task-type {prev.config.task_type} to label the lines still unlabeled"
        )
    return label_attribute


def chained_output(job: Job) -> str:
    """The output manifest a job is chained from, refused (``JobError``) where it is not there,
    is an earlier run's (the last run could not write it: chained from, it would lose, label
    again, what that run labeled), or changed since the job wrote it (its size; the checksum
    once the new job's scan has read it)."""
    prev = job.state
    output = job.output_manifest
    resume_first = f"resume it first (totask-manifest resume {redact_secret_url(prev.config.job_url)})"
    if input_changed_run(prev.runs):  # resume would refuse it: the one way forward, as resume says
        raise JobError(f"job {prev.config.job_name!r} ended {prev.status} without writing its output manifest: "
                       f"{input_changed_text(prev, while_running=True)}")
    if not exists(output):
        raise JobError(f"job {prev.config.job_name!r} has no output manifest at {redact_secret_url(output)}; {resume_first}")
    if output_stale(prev.runs):
        raise JobError(f"job {prev.config.job_name!r} ended {prev.status} without writing its output manifest: "
                       f"{redact_secret_url(output)} is an earlier run's, without the lines labeled since; {resume_first}")
    if changed := job.output_changed():
        raise JobError(changed)
    return output


def input_changed(state: JobState) -> bool:
    """Whether the job's input is not the version it read (its checksum differs), looked at
    without writing anything (a COMPLETED job is reported from a read-only folder): the input is
    read again only where its fingerprint (size, modification time, ETag) is not the one its
    ``selection.bin`` kept. An input that cannot be read is not said to have changed (a
    COMPLETED job does not need it; ``resume`` names it where it does)."""
    from ._errors import StorageError
    from ._jobs.input_identity import stands_for_open_file
    from ._jobs.scan_ranges import fingerprint, sha256_of
    from ._jobs.selection import LineSelection

    if stands_for_open_file(state.effective_input):  # this command's own stdin: not the job's input, never read
        return False
    kept = LineSelection.load(state.layout.selection)
    if kept is not None and kept.fingerprint is not None and kept.fingerprint == fingerprint(state.effective_input):
        return kept.sha256 != state.input_sha256
    try:
        return sha256_of(state.effective_input) != state.input_sha256
    except (StorageError, OSError):
        return False


def input_changed_text(state: JobState, *, while_running: bool = False) -> str:
    """What ``resume``, the same ``annotate`` again, ``chain`` and ``status`` say of a job whose
    input changed (since it read it, or ``while_running``): one way forward, the same in each."""
    when = "while the job ran" if while_running else f"since job {state.config.job_name!r} read it"
    return f"{_input_changed(state, when)}; {START_ANEW}"


def completed_input_changed_text(state: JobState) -> str:
    """What ``status`` says of a COMPLETED job whose input changed since it read it: resume has
    nothing to do for it (``input_changed_text``'s "put back the version the job read and resume
    it" led nowhere), and its output manifest, which chain and apply read, keeps the labels of the
    version it read; a job labels the input as it is now, a clone of this one included."""
    return (f"{_input_changed(state, f'since job {state.config.job_name!r} read it')}; the job is COMPLETED, "
            "so nothing is left to resume: its output manifest keeps the labels of that version (chain and apply "
            "read it, not the input); to label the input as it is now, start a new job from it (another "
            "--job-name, or clone this one)")


def _input_changed(state: JobState, when: str) -> str:
    """The first words of every text saying a job's input changed ``when``."""
    return (f"the input manifest {redact_url(state.effective_input)} changed {when} (checksum differs): the job's "
            "lines are of the version it read")

