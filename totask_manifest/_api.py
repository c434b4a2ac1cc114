"""The Python API behind every job command: annotate, resume, chain, clone, status.

A job's lifecycle starts here: check the configuration (local paths made absolute), take the
job's lease, scan the input and record job.json and the selection; then ``_jobs.execute`` runs
the engine and commits the output manifest (the engine only annotates). The CLI calls these
one-to-one.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import replace
from typing import Any

from ._annotators.base import check_installed, get_annotator_class, method_options
from ._api_checks import (
    DATA_OPTIONS,
    chained_attribute,
    chained_output,
    check_config,
    check_options,
    check_tuning,
    completed_as_is,
    completed_result,
    input_changed_text,
    job_classes,
    lineage_differences,
    path_keys,
    refuse_out_of_range,
    refuse_own_name,
    refuse_undeclared_options,
    refuse_undecodable_path,
    refuse_unknown_options,
    same_job,
    undeclared_options,
)
from ._engines.base import Engine, get_engine
from ._errors import JobError, JobExistsError, UsageError, counted
from ._jobs.config import (
    TUNING_OPTIONS,
    JobConfig,
    JobResult,
    chain_arguments,
    check_types,
    identity_differences,
    path_argument,
    resume_arguments,
)
from ._jobs.damaged_parts import missing_note, summarize_setting_aside
from ._jobs.execute import execute
from ._jobs.held_labels import nothing_to_label, raise_for_held
from ._jobs.holder import Holder
from ._jobs.input_identity import refuse_open_file
from ._jobs.inputs import (
    InputSources,
    job_input,
    keep_secrets_out,
    move_secret_input,
    refuse_changed_copy,
    refuse_missing_input,
    secret_fields,
    secret_warning,
)
from ._jobs.job import Job
from ._jobs.layout import refuse_case_twin, refuse_foreign_folder
from ._jobs.lease import current_holder, hold
from ._jobs.run import JobRun, ProgressCallback
from ._jobs.scan_ranges import job_selection, raise_for_no_data, raise_for_problems, scan_input
from ._jobs.state import JobState, empty_metrics, runs_as_seen
from ._jobs.status import COMPLETED, RUNNING
from ._option_files import option_files_for, refuse_changed_files
from ._options import set_aside_by
from ._status_notes import status_notes
from ._storage import exists, redact_secret_url

log = logging.getLogger("totask_manifest")

def _engine(engine: Engine | str) -> Engine:
    """An engine given by name runs with its default options (``get_engine`` gives others)."""
    return get_engine(engine) if isinstance(engine, str) else engine


def annotate(
    config: JobConfig,
    *,
    engine: Engine | str = "local",
    on_progress: ProgressCallback | None = None,
    chained_from: str | None = None,
    cloned_from: str | None = None,
    keep_going: bool = False,
    _copy_of: str | None = None,
) -> JobResult:
    """Start a new job and run it to completion (or until stopped).

    ``engine``: ``"local"``, ``"ray"``, or an engine with options (``get_engine("ray", actors=4)``).
    ``on_progress`` is called with the job's counters as lines finish, and once with the final
    ones; what it raises reaches the caller once the job is recorded (a ``KeyboardInterrupt``:
    STOPPED, as Ctrl-C; another exception: FAILED where lines were left; README, *Python API*).
    ``keep_going``: every failure of this run is final (README, *Fail fast*). An input URL that carries a
    secret (user info, a query) is read once into the job folder and recorded redacted
    (``_jobs.inputs``); ``_copy_of`` (clone's) is such a job's copy, read in its place.
    """
    check_types(config)  # a wrong type named here, not as a TypeError from deep inside
    if chained_from is None and cloned_from is None:  # chain and clone check what they were given
        refuse_unknown_options(config.method, config.options)
    sources = keep_secrets_out(config, _copy_of)
    check_config(config)
    if not sources.copied:  # read where it is: as check_config made it absolute (input.read, for resume)
        sources.input, sources.append = config.input, list(config.append)
    # an unknown or uninstalled engine, or a configuration it cannot run, fails before the job exists
    run = JobRun(config, engine=_engine(engine), on_progress=on_progress, keep_going=keep_going,
                 method_options=method_options(config.method))
    run.engine.check(config)
    exists(config.output_root)  # a refusal (wrong credentials) names the root given, not <root>/<job>/job.json
    itself = refuse_case_twin(config.job_url)  # before the lease; on a case-insensitive disk A1's folder is a1's
    job = Job(config.job_url)
    if not job.exists:
        refuse_foreign_folder(config.job_url)  # before the lease: nothing written among the user's files
    elif same_job(job.state, config, chained_from, cloned_from) and job.state.status == COMPLETED:
        refuse_changed_copy(job.state, sources)
        if (done := completed_as_is(job)) is not None:  # reported without the lease: it writes nothing
            return done
    with hold(config.job_url, "chain" if chained_from else "clone" if cloned_from else "annotate"):  # as it was run
        return _annotate_held(run, chained_from, cloned_from, sources, itself)


def _annotate_held(run: JobRun, chained_from: str | None, cloned_from: str | None, sources: InputSources,
                   itself: bool) -> JobResult:
    """``annotate`` under the job's lease; ``itself``: the job's folder held a job (or a start of
    one) before the lease was taken (``refuse_case_twin``), so no twin check is asked again."""
    config = run.config
    job = Job(config.job_url)
    layout = job.layout
    if job.exists:
        existing = job.state
        if same_job(existing, config, chained_from, cloned_from):
            # the same command again (tuning options aside): carry on (or report) rather than refuse
            refuse_changed_copy(existing, sources)
            refuse_changed_files(existing)  # before it says it resumes the job: one line
            log.info("job %s exists with this configuration; resuming it", config.job_name)
            tuning = {k: config.options[k] for k in TUNING_OPTIONS if k in config.options}
            return resume(config.job_url, engine=run.engine, on_progress=run.on_progress,
                          options=tuning, checkpoint_every=config.checkpoint_every, keep_going=run.keep_going)
        refuse_own_name(config, chained_from, cloned_from)
        sources.refuse_missing()  # a mistyped path is the mistake, not the name
        differs = identity_differences(existing.config, config, path_keys(config))
        differs += lineage_differences(existing, chained_from, cloned_from)
        # only another name runs the new configuration: resume changes tuning options alone (COMPLETED: none)
        resume_it = ("" if existing.status == COMPLETED else
                     f" (or resume it with its own: totask-manifest resume {redact_secret_url(config.job_url)})")
        raise JobExistsError(
            f"job {config.job_name!r} already exists at {redact_secret_url(config.job_url)} with another "
            f"configuration (differs in: {', '.join(differs)}); choose another --job-name{resume_it}"
        )
    if not itself:  # again under the lease: a job of the other case started meanwhile holds its own
        refuse_case_twin(config.job_url, held=True)
    sources.refuse_missing()
    classes = job_classes(config)  # held to the labels the job passes over (``held_labels.JobClasses``)
    taken = job_input(config, sources, layout, classes)
    input_url, scan = taken.url, taken.scan
    if scan is None:  # the input where it is (a copy was checked and scanned as it was written)
        scan = scan_input(input_url, config.label_attribute, task_type=config.task_type, classes=classes)
        raise_for_problems(input_url, scan)
        raise_for_held(input_url, scan.held, config.label_attribute, labels=scan.selected)
        raise_for_no_data(input_url, scan)
    if chained_from is not None and not config.append and (changed := Job(chained_from).output_changed(scan.sha256)):
        raise JobError(changed)  # the same size, edited: its checksum is the scan's
    if cloned_from is not None and (changed := Job(cloned_from).input_changed(scan.sha256, config.append)):
        log.warning("%s", changed)  # one line; the clone goes on with the manifest as it is now
    state = JobState(
        config=config,
        effective_input=input_url,
        input_sha256=scan.sha256,
        input_lines=scan.lines,
        copied_sha256=taken.given_sha256[0] if sources.copied else "",
        given_sha256=taken.given_sha256 if sources.append else [],
        metrics=empty_metrics(scan.selected),
        chained_from=chained_from,
        cloned_from=cloned_from,
        engine=run.engine.name,
        option_files=option_files_for(config, chained_from or cloned_from),  # a changed one said, as the input
    )
    state.save()
    scan.selection.keep(layout.selection)
    log.info("job %s: %s, %d to label under %r -> %s",
             config.job_name, counted(scan.lines, "line"), scan.selected, config.label_attribute, config.job_url)
    if not scan.selected:
        log.warning("%s", nothing_to_label(config.job_name, scan.lines, config.label_attribute))
    return execute(state, run)


def resume(
    job_url: str,
    *,
    engine: Engine | str | None = None,
    on_progress: ProgressCallback | None = None,
    options: dict[str, Any] | None = None,
    checkpoint_every: int | None = None,
    keep_going: bool = False,
) -> JobResult:
    """Continue a stopped, failed or killed job without redoing finished lines.

    ``options`` may change the tuning options only (``TUNING_OPTIONS``: concurrency, timeout,
    retries, batch size, device), ``checkpoint_every`` the checkpoint cadence; what the job
    writes stays as configured. ``engine``: the job's own engine (with its default options) unless
    given. Takes the job's lease: refused (``JobBusyError``) while another
    process runs the job, taken over when that process is gone. ``keep_going``: ``annotate``'s.
    """
    job_url, options = resume_arguments(job_url, options, checkpoint_every)
    # job.json is rewritten with the folder where it is now: a path it cannot hold is refused first
    refuse_undecodable_path("job folder", job_url if "://" in job_url else os.path.abspath(job_url))
    changes = {k: v for k, v in options.items() if v is not None}
    other = sorted(set(changes) - set(TUNING_OPTIONS))
    if other:
        raise UsageError(f"resume changes only tuning options ({', '.join(TUNING_OPTIONS)}); not {', '.join(other)}; "
                         "chain or clone a new job to change what a job writes")
    refuse_out_of_range({**changes, "checkpoint_every": checkpoint_every})
    if checkpoint_every is not None and checkpoint_every < 1:
        raise UsageError(f"--checkpoint-every must be at least 1 (got {checkpoint_every})")
    # read first, before the lease: a folder that is not this job's (a file of it, a renamed copy) is
    # named without writing a lease into it, a wrong value is named even when nothing is left to run,
    # and a dead holder's lease is not taken over for a command that refuses to run
    given = Job.open(job_url)
    given.check_named()
    if changes:
        stored = given.state.config
        check_tuning(stored.method, changes)  # any method's: a plugin's own check passes over what it does not declare
        check_options(stored.method, {**stored.options, **changes}, stored.task_type)
    if (done := completed_as_is(given)) is not None:  # nothing to do: no lease (a read-only folder)
        return done
    # an engine that cannot run the job (``--ray-address auto`` with no cluster) is refused before
    # the lease too: taken, a killed run's lease read as the refused command's own in ``status``
    engine = _engine(engine or given.state.engine)
    engine.check(given.state.config)
    with hold(job_url, "resume"):
        job = Job.open(job_url)
        job.check_named()
        state = job.state
        move_secret_input(state)  # a job written before input URLs were recorded redacted
        changes = {k: v for k, v in changes.items() if state.config.options.get(k) != v}
        if (done := completed_result(state)) is not None:  # a legacy job's input moved: nothing else to do
            return done
        if state.status == COMPLETED:  # deleted or lost: ``chain`` says "resume it first", so resume writes it
            log.warning("job %s is COMPLETED but its %s is missing; writing it again from the checkpoint", state.config.job_name,
                        "failures.jsonl" if exists(state.layout.output_manifest) else "output manifest")
        check_installed(state.config.method, get_annotator_class(state.config.method))
        refuse_undeclared_options(state.config.job_name, state.config.method, state.config.options)
        cadence = {} if checkpoint_every in (None, state.config.checkpoint_every) else {"checkpoint_every": checkpoint_every}
        state.config.options, state.config.checkpoint_every = {**state.config.options, **changes}, checkpoint_every or state.config.checkpoint_every
        if said := {**changes, **cadence}:  # --checkpoint-every too: applied, it went unsaid
            log.info("job %s: tuning changed: %s", state.config.job_name, ", ".join(f"{k}={v}" for k, v in sorted(said.items())))
        return _resume_held(state, JobRun(state.config, engine=engine, on_progress=on_progress, keep_going=keep_going,
                                          method_options=method_options(state.config.method)))


def _resume_held(state: JobState, run: JobRun) -> JobResult:
    if (missing := missing_note(state.layout)) is not None:  # its lines would never be labeled
        raise JobError(missing)
    refuse_missing_input(state)  # named as the job's input, with what to do (not "no such file: PATH")
    # the selection kept with the job, while the input's fingerprint is unchanged: the input is not read again
    selection = job_selection(state.layout, state.effective_input, state.config.label_attribute)
    if selection.sha256 != state.input_sha256:
        raise JobError(input_changed_text(state))
    refuse_changed_files(state)  # lines to label: with the files the job started with
    # the parts read before RUNNING is saved: one resume refuses (damaged before a readable part,
    # unreadable) left a STOPPED job RUNNING, which chain then refused ("resume it first")
    recorded = summarize_setting_aside(state.layout)
    state.status = RUNNING
    state.error = state.ended = state.stop_rule = None  # running: the earlier run's end is in its record, not the job's
    state.save()
    return execute(state, run, recorded)


def chain(
    job_url: str,
    job_name: str,
    *,
    label_attribute: str | None = None,
    output_root: str | None = None,
    task_type: str | None = None,
    method: str | None = None,
    options: dict[str, Any] | None = None,
    append: list[str] | None = None,
    checkpoint_every: int | None = None,
    engine: Engine | str = "local",
    on_progress: ProgressCallback | None = None,
    keep_going: bool = False,
) -> JobResult:
    """A new job whose input is this job's output manifest (Ground Truth chaining).

    Default attribute as in Ground Truth's console: chained from a COMPLETED job, the new job's
    name (``-ref`` added where the task type needs it); from a STOPPED or FAILED job, the
    previous attribute, so only what is still unlabeled is labeled.
    """
    job_url, output_root, options, append = chain_arguments(job_url, output_root, options, append, checkpoint_every)
    job = Job.open(job_url)
    job.check_named()
    prev = job.state
    if prev.status == RUNNING:
        job.refuse_in_use()  # live: resume would be refused too (exit 2, as resume)
        raise JobError(
            f"job {prev.config.job_name!r} is RUNNING or was interrupted; "
            f"resume it first (totask-manifest resume {redact_secret_url(prev.config.job_url)})"
        )
    output = chained_output(job)  # the folder's own, where it was moved or renamed
    new_type = task_type or prev.config.task_type
    label_attribute = chained_attribute(prev, job_name, label_attribute, new_type)
    new_method = method or prev.config.method
    refuse_unknown_options(new_method, options)
    if new_method == prev.config.method:
        base_options = _declared(prev.config.method, prev.config.options)
        chosen = set_aside_by(get_annotator_class(new_method).Options, options or {})  # the other of a set
        base_options = {k: v for k, v in base_options.items() if k not in chosen}
    else:  # another method's options do not apply, but relative URLs still resolve where they did
        base_options = {k: v for k, v in prev.config.options.items() if k in DATA_OPTIONS}
    config = JobConfig(
        job_name=job_name,
        input=output,
        output_root=output_root or prev.config.output_root,
        label_attribute=label_attribute,
        task_type=new_type,
        method=new_method,
        options={**base_options, **(options or {})},
        checkpoint_every=checkpoint_every or prev.config.checkpoint_every,
        checkpoint_seconds=prev.config.checkpoint_seconds,
        append=list(append or []),
    )
    return annotate(config, engine=engine, on_progress=on_progress, chained_from=prev.config.job_url,
                    keep_going=keep_going)


def clone(
    job_url: str,
    job_name: str,
    *,
    output_root: str | None = None,
    label_attribute: str | None = None,
    options: dict[str, Any] | None = None,
    engine: Engine | str = "local",
    on_progress: ProgressCallback | None = None,
) -> JobResult:
    """A new job with the same configuration and input manifest (Ground Truth cloning)."""
    job_url, output_root, options, _ = chain_arguments(job_url, output_root, options, None, None)
    # the clone's job.json records this folder (cloned-from): a path it cannot hold is refused first
    refuse_undecodable_path("job folder", job_url if "://" in job_url else os.path.abspath(job_url))
    job = Job.open(job_url)
    job.check_named()
    prev = job.state
    refuse_unknown_options(prev.config.method, options)
    refuse_open_file(prev.config.job_name, prev.config.input)
    config = replace(
        prev.config,
        job_name=job_name,
        output_root=output_root or prev.config.output_root,
        label_attribute=prev.config.label_attribute if label_attribute is None else label_attribute,
        options={**_declared(prev.config.method, prev.config.options), **(options or {})},
        append=list(prev.config.append),
    )
    return annotate(config, engine=engine, on_progress=on_progress, cloned_from=prev.config.job_url,
                    _copy_of=prev.effective_input if prev.copied_sha256 else None)


def _declared(method: str, options: dict[str, Any]) -> dict[str, Any]:
    """A job's options that its plugin still declares, for the new job chained or cloned from it;
    those it no longer declares are left out with a warning naming them (the new job runs
    without them, as this version of the plugin reads its options)."""
    if gone := undeclared_options(method, options):
        one = len(gone) == 1
        log.warning("%s %s of the earlier job %s of method %r any more (renamed or removed since?): the new job "
                    "runs without %s", "option" if one else "options", ", ".join(map(repr, gone)),
                    "is not an option" if one else "are not options", method, "it" if one else "them")
    return {k: v for k, v in options.items() if k not in gone}


def status(job_url: str) -> dict[str, Any]:
    """job.json as a dict, with the counters recomputed from the checkpoint for a live job."""
    job = Job.open(path_argument(job_url, "job_url"), read_only=True)  # a newer version's job.json too
    state = job.state
    if found := secret_fields(state):
        log.warning("%s", secret_warning(state, found, "resume moves its input into the job folder where it can"))
    data = {**state.to_dict(), **({"unknown-keys": job.unknown_keys} if job.unknown_keys else {})}
    # the folder's own files and lease: a copy under another name is not its original (job.json's paths)
    if (misnamed := job.misnamed()) is not None:
        own = job.output_manifest
        data["misnamed"], data["output-manifest"] = misnamed, own if "://" in own else os.path.abspath(own)
    holder, gone = current_holder(job.folder)
    if state.status != COMPLETED and (missing := missing_note(job.layout)) is not None:
        data["missing"] = missing
    if state.status != COMPLETED:  # the parts' counts for a RUNNING job; a damaged part for any
        data["metrics"] = job.metrics()
        if job.damaged:
            data["damaged"] = job.damaged
    if state.status == RUNNING:
        if holder is None:
            data["interrupted"] = "no process holds the job"
        elif gone == "released":
            data["interrupted"] = f"its last run ({holder.describe()}) ended without a final status"
        elif gone is not None:
            data["interrupted"] = gone
        else:
            data["holder"] = {"host": holder.host, "pid": holder.pid, "command": holder.command,
                              "heartbeat-age-s": round(time.time() - holder.heartbeat, 1)}
    elif (killed := _killed_writer(state.status, holder, gone, job.url)) is not None:
        data[killed[0]] = killed[1]
    # a run killed before it recorded its end is shown INTERRUPTED (read only: resume records it so)
    done = sum(int(data["metrics"].get(k) or 0) for k in ("success", "failed", "routed")) \
        if state.status == RUNNING else None
    data["runs"] = runs_as_seen(state.runs, holder, gone, done=done)
    data.update(status_notes(job, live="holder" in data))
    return data


def _killed_writer(status: str, holder: Holder | None, gone: str | None, job_url: str) -> tuple[str, str] | None:
    """(``status``'s key, what finishes them) for the Synapse writes of a ``run``, ``apply`` or
    ``rollback`` killed (``kill -9``) after the job COMPLETED, or None. None of them writes
    ``job.json``, so the lease alone still names the killed command (a refused ``resume`` gives a
    killed run's back); without this, ``status`` said nothing of the writes left undone (a killed
    apply or rollback not at all), and ``resume`` of a COMPLETED job has nothing to do. Each runs
    again where it stopped: apply sends only what is missing, rollback restores only what is not yet."""
    if status != COMPLETED or holder is None or gone in (None, "released"):
        return None
    job = redact_secret_url(job_url)
    if holder.command == "run":
        return "apply-interrupted", (
            f"{gone}: the to_task run was stopped in its apply, after the job completed; run the same action "
            "again to finish its writes to Synapse (it sends only what is missing)")
    if holder.command == "apply":
        return "apply-interrupted", (
            f"{gone}: its apply was stopped before its end, and a write in flight may still reach Synapse; run "
            f"'totask-manifest apply {job}' again to apply the rest (it sends only what is missing: tasks that hold "
            f"their label are left alone), or 'totask-manifest rollback {job}' to undo the job's writes")
    if holder.command == "rollback":
        return "rollback-interrupted", (
            f"{gone}: its rollback was stopped before its end, and a restore in flight may still reach Synapse; "
            f"run 'totask-manifest rollback {job}' again to finish (tasks already restored are left alone)")
    return None


def load_job(job_url: str) -> dict[str, Any]:
    """job.json as a dict (its paths where the folder now is), without ``status``'s live counters."""
    return Job.open(job_url).state.to_dict()
