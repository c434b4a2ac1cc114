"""The ToTask action: Synapse tasks in, pre-annotated Synapse tasks out, as one resumable job.

``ToTaskAction(params=..., run=None).start()`` takes the guide's parameters and returns the
SDK's ``ToTaskResult`` (``status``, ``message``: ``to_task completed. success=N, failed=M``,
``total_tasks``, ``success_count``, ``failed_count``, ``failures`` of ``{task_id, error}``), plus
our ``metrics`` (``total``, ``success``, ``failed``, ``stand_by``) and ``totask`` (the job folder,
apply's counts, filters the backend did not apply). Unlike the SDK's action it is one job on disk, ``<output root>/<name>/``, so running the same action again after a crash
continues where it stopped instead of starting over:

1. export the matching tasks to ``<job>/synapse-export.manifest`` (skipped if already there);
2. annotate them with the lead's job engine: method ``file`` reads each task's
   ``target_specification_name`` file, method ``inference`` asks the pre-processor (deployed
   first if needed); a stopped job is resumed, a completed one is not run again;
3. apply the labels to the tasks (journalled, idempotent: tasks that already hold the data are
   not written again, so a re-run after a crash mid-apply sends only what is missing).

The run is recorded in ``<job>/totask-run.json`` (``runs``): only an unfinished run of the same
action is resumed; a run that succeeded, or one with other parameters or another host, is moved
to ``<output root>/.totask-archive/`` (journal included, so ``rollback`` still works on it) and a
fresh run starts. The parameters are checked first (``params``); the label attribute (and job
name) is the action ``name`` lower-cased with ``_`` turned into ``-``.

It sits above ``api`` (it runs a whole job through it) and above ``synapse`` (export, apply,
the pre-processor), which know nothing of it. With ``SYNAPSE_JOB_ID`` (``job_id``) set, progress, metrics and logs go
to that Synapse job, at most once a second, as the SDK v2 reports them (``synapse.progress.JobReporter``):
the steps ``initialize`` (project and data collection), ``prepare`` (the target specification, or
the pre-processor deployed and running), ``fetch_tasks`` (the export), ``annotate_task_data``
(annotation, then the writes: half each), ``finalize``; metrics ``{success, failed, stand_by}``
under ``annotate_task_data``; log entries carrying their step; the result above.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any

from .. import _api as api
from .._credentials import env_credentials, stored_params
from .._errors import JobError, TotaskError
from .._jobs.config import JobConfig
from .._jobs.job import Job
from .._jobs.layout import EXPORT_FILE, refuse_case_twin, refuse_root_in_job
from .._jobs.lease import JobBusyError, hold
from .._jobs.state import JobState
from .._jobs.status import COMPLETED
from .._redaction import hide_secrets
from .._storage import exists, join, map_strings
from .._synapse.apply import (
    APPLIED,
    CHANGED,
    CONFLICT,
    FAILED,
    NOT_LABELED,
    UNCHANGED,
    ApplyReport,
    TaskResult,
    apply_job,
)
from .._synapse.apply_plan import load_job_target
from .._synapse.export import ExportResult, check_project, export_tasks
from .._synapse.progress import JobReporter
from .._synapse.rollback import ALREADY, RESTORED
from .._synapse.sync_client import SynapseClient
from .._synapse.workers import check_concurrency
from .job_id import synapse_job_id
from .params import ToTaskParams, ignored_keys, validate_params
from .refused import action_result, refuse
from .runs import FAILED_STATUS, SUCCEEDED, claim, iso_now, note, noted, record_end
from .task_events import ListingOrder

log = logging.getLogger(__name__)

DEFAULT_OUTPUT_ROOT = "totask-jobs"


class Interrupted(KeyboardInterrupt):
    """A signal the annotation job took (it finishes its lines in flight, then returns): raised as
    Ctrl-C's ``KeyboardInterrupt`` is, so the run stops before apply writes to Synapse, is recorded
    as interrupted, and the CLI exits 128 + ``signum``."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


#: the way on from a job name taken but for letter case, in ``run``'s words (it names no --job-name)
_CHOOSE_NAME = "choose another name (the parameter the job is named after)"
#: the way on from a run that stopped before its work was done: the action runs again (and resumes
#: or, its export never written, exports again), in its advice and in its export's (``export_tasks``)
RUN_AGAIN = "run the same action again"


def refuse_job_folder(output_root: str, p: ToTaskParams) -> bool:
    """Refuse the run's job folder before Synapse is asked anything or a file is written: an output
    root at or inside another job's folder (``refuse_root_in_job``), or a job name that is another
    job's there but for letter case (``refuse_case_twin``: ``Boxes`` beside the run's ``boxes``).
    ``run`` asks this itself too, to exit 2 (the action gives it as its FAILED result). Returns
    whether the run's folder holds its job already (an earlier run's, resumed: no twin check again)."""
    refuse_root_in_job(output_root)
    return refuse_case_twin(join(output_root, p.slug), _CHOOSE_NAME)


class ToTaskAction:
    """``ToTaskAction(params=..., run=None).start()`` -> ``{"status", "message", "total_tasks",
    "success_count", "failed_count", "failures", "metrics", "totask"}``.

    ``run`` may be an SDK-style run object; its ``log_message(text)`` receives the action's
    messages. ``output_root`` (or ``TOTASK_OUTPUT_ROOT``, else ``./totask-jobs``) holds the job.
    """

    action_name = "to_task"

    def __init__(self, params: dict[str, Any] | None = None, run: Any = None, *, output_root: str | None = None,
                 client: SynapseClient | None = None, engine: str = "local", concurrency: int = 32,
                 timing: dict[str, float] | None = None) -> None:
        check_concurrency(concurrency)  # a bad option, before the run is claimed or anything is sent
        self.params = params or {}
        self.run = run
        self.output_root = output_root or os.environ.get("TOTASK_OUTPUT_ROOT") or DEFAULT_OUTPUT_ROOT
        self._client = client
        self.engine = engine
        self.concurrency = concurrency
        self.timing = timing or {}
        self.job_url: str | None = None
        self._run_record: str | None = None
        #: the result ``start`` returned, or made before an interrupt went on to the caller (``run``
        #: prints it then too: the counts of a stopped run were only in its record and the Synapse job)
        self.last_result: dict[str, Any] | None = None
        #: whether ``start`` failed because a live process holds the job folder: ``run`` exits 2 for
        #: it, as every command refused a job in use does (the result stays FAILED for the SDK's caller)
        self.in_use = False

    # -- the result ------------------------------------------------------------------------------

    def _note_skipped(self, result: ExportResult) -> None:
        """The tasks the export skipped, noted in the run's record before its manifest is put in
        place: failed tasks of this run, resumed or not (see ``_apply``); and the tasks it listed,
        which a resumed run says as the SDK does (``_listed_count``)."""
        if self._run_record is not None:
            note(self._run_record, export_skipped=result.skipped, export_listed=result.listed)

    def _say(self, reporter: JobReporter, text: str, *, key: str = "", level: str = "info", echo: bool = True) -> None:
        """``text`` to the Synapse job's log and the caller's ``log_message``; to ours too unless
        ``echo=False`` (a line the code that found it has said already)."""
        reporter.message(text, key=key, level=level, echo=echo)
        log_message = getattr(self.run, "log_message", None)
        if callable(log_message):
            try:
                log_message(text)
            except Exception:  # the caller's logger must not break the run
                log.debug("run.log_message failed", exc_info=True)

    # -- running ------------------------------------------------------------------------------------

    def start(self) -> dict[str, Any]:
        self.last_result = None  # never an earlier start's
        self.in_use = False
        self.job_url = None  # nor its job: an interrupt before this run's names none (``_annotation_counted``)
        try:
            params = validate_params(self.params)
        except TotaskError as exc:  # the Synapse job told, as ``run`` tells it of a bad parameter file
            return refuse(str(exc), self._client)
        client = self._client or SynapseClient(max_concurrency=self.concurrency)
        reporter = JobReporter(client, synapse_job_id(), method=params.method)
        reporter.status("RUNNING")
        for key in ignored_keys(self.params):  # a caller's own key, or a mistake: said, as the SDK does not
            self._say(reporter, f"parameter {key!r} is not a ToTask parameter: ignored, as the SDK ignores it",
                      level="warning")
        result = action_result(FAILED_STATUS, "not started")
        self._totask: dict[str, Any] = {}
        self._written: Callable[[], tuple[dict[str, int], list[dict]]] | None = None  # set once writes start
        try:
            result = self._start(params, client, reporter)
        except KeyboardInterrupt:  # Ctrl-C: the job and the Synapse job say so; the caller still sees it
            # with the writes counted so far (stopped while writing), or what the annotation job did
            # (stopped before the writes): not 0 tasks, as a result of zeros reads "no tasks"
            counted = self._written() if self._written else self._annotation_counted()
            result = action_result(FAILED_STATUS, f"interrupted; {RUN_AGAIN} to resume it", *counted,
                                  totask=self._totask)
            raise
        except TotaskError as exc:
            self.in_use = isinstance(exc, JobBusyError)
            result = action_result(FAILED_STATUS, str(exc), getattr(exc, "metrics", None), getattr(exc, "failures", None),
                                  self._totask)
        except Exception as exc:  # a bug: still a FAILED result rather than a traceback for the caller
            log.exception("to_task failed")
            result = action_result(FAILED_STATUS, f"{type(exc).__name__}: {exc}", totask=self._totask)
        finally:
            # whatever a plugin or a bug put in a message: the client's tokens, and every credential of
            # the environment (the model's, the AWS keys, a proxy's password), which only Synapse's were
            secrets = env_credentials()
            result = self.last_result = map_strings(
                result, lambda text: hide_secrets(client.settings.redact_tokens(text), secrets))
            level = "success" if result["status"] == SUCCEEDED else "danger"
            self._say(reporter, result["message"], key="TO_TASK_COMPLETED" if level == "success" else "TO_TASK_FAILED",
                      level=level)
            if self._run_record is not None:
                record_end(self._run_record, result)
            # as the SDK's job entry point: the result, and for a failure its error
            reported = result if result["status"] == SUCCEEDED else {**result, "error": result["message"]}
            reporter.status(result["status"], result=reported)
            reporter.close()
            if self._client is None:
                client.close()
        return result

    def _start(self, p: ToTaskParams, client: SynapseClient, reporter: JobReporter) -> dict[str, Any]:
        job_url = self.job_url = join(self.output_root, p.slug)
        self._totask["job"] = job_url
        itself = refuse_job_folder(self.output_root, p)  # before the export: nothing written into another job
        # the job's own lease first, then the claim under it: a second run of the folder is refused
        # at once (JobBusyError, the live run's record left as it is). Claimed before the lease, two
        # runs started together both claimed (the second rewrote the first's record, or archived the
        # folder the first had just claimed) and one then ran the whole action
        with hold(job_url, "run"):
            if not itself:  # again under the lease, before its record: a job of the other case started meanwhile
                refuse_case_twin(job_url, _CHOOSE_NAME, held=True)  # (annotate, under it, finds the run's own record)
            self._run_record = claim(job_url, self.params, client.settings.host)
            return self._start_held(p, client, reporter, job_url)

    def _start_held(self, p: ToTaskParams, client: SynapseClient, reporter: JobReporter, job_url: str) -> dict[str, Any]:
        """The run under the job folder's lease (``api`` and ``apply`` take it again, re-entrant):
        before, the export ran without it, so two runs of one folder both exported, the second's
        export replaced under the first's job, or its temporary removed by the first's job start."""
        reporter.progress("initialize", 0, 1)
        self._say(reporter, "Initializing to_task workflow", key="TASK_INITIALIZING")
        self._say(reporter, f"to_task {p.name}: job {job_url}", key="TO_TASK_STARTED")
        annotated = [0]

        def annotate_progress(m: dict[str, int]) -> None:
            # annotation is the first half of annotate_task_data, the writes the second
            total = m.get("total", 0)
            annotated[0] = total
            reporter.progress("annotate_task_data", total - m.get("stand_by", 0), 2 * total)

        job = Job(job_url)
        state = job.state if job.exists else None
        spec = p.target_specification_name if p.method == "file" else None
        export_url = join(job_url, EXPORT_FILE)
        fresh_export = state is None and not exists(export_url)
        if fresh_export:
            client.run(check_project(client.aio, p.project, spec))
            self._say(reporter, "Data collection loaded successfully", key="TASK_DATA_COLLECTION_LOADED")
        reporter.progress("initialize", 1, 1)
        reporter.progress("prepare", 0, 1)
        if p.method == "file":
            self._say(reporter, "Preparing file-based annotation", key="TASK_PREPARING_FILE_METHOD")
            if fresh_export:
                self._say(reporter, "Target specification validated", key="TASK_SPECIFICATION_VALIDATED")
        elif not (state and state.status == COMPLETED):
            self._say(reporter, "Preparing inference-based annotation", key="TASK_PREPARING_INFERENCE_METHOD")
            self._preprocessor(p, client, reporter).ensure_running()
            self._say(reporter, "Pre-processor is ready", key="TASK_PREPROCESSOR_READY", level="success")
        reporter.progress("prepare", 1, 1)
        reporter.progress("fetch_tasks", 0, 1)
        if fresh_export:
            self._say(reporter, "Fetching task list", key="TASK_FETCHING_TASKS")
            result = export_tasks(
                p.project, export_url, filters=p.task_filters, target_specification_name=spec, client=client,
                on_progress=lambda n: reporter.progress("fetch_tasks", n, max(n, 1)), project_checked=True,
                before_commit=self._note_skipped, again=RUN_AGAIN,
            )
            if result.unmatched:
                self._totask["filters_not_applied"] = dict(result.unmatched)
            for warning in result.unmatched_warnings():  # export_tasks said each here already
                self._say(reporter, warning, key="TOTASK_FILTER_NOT_APPLIED", level="warning", echo=False)
            # the SDK's words, "1 tasks" included (Synapse shows them in the job's log as the SDK's), and its
            # count: every task listed, as its fetch_tasks counts them (the result's total_tasks); those
            # the export could not take (no files) are tasks of the run too, failed ones
            self._say(reporter, f"Fetched {result.listed} tasks for annotation", key="TASK_TASKS_FETCHED")
        reporter.progress("fetch_tasks", 1, 1)
        reporter.progress("annotate_task_data", 0, 1)
        # the SDK says it as its annotate_task_data step starts, every run: so do we, resumed or not
        listed = result.listed if fresh_export else self._listed_count(state)
        self._say(reporter, annotating(listed, p.method), key="TASK_DATA_ANNOTATING")
        if state is not None:
            if state.status == COMPLETED:
                self._say(reporter, "annotation already complete; applying", key="TO_TASK_RESUMED")
                finished = None
            else:
                self._say(reporter, f"resuming the {state.status} job {job_url}", key="TO_TASK_RESUMED")
                finished = api.resume(job_url, on_progress=annotate_progress)
        else:
            config = JobConfig(
                job_name=p.slug, input=export_url, output_root=self.output_root, label_attribute=p.slug,
                task_type=p.task_type, method="file" if p.method == "file" else "synapse-preprocessor",
                options=self._annotator_options(p),
            )
            finished = api.annotate(config, engine=self.engine, on_progress=annotate_progress)
        if finished is not None and finished.signal:
            # the job took the signal (it finishes the lines in flight, so it may even be COMPLETED):
            # the user asked to stop, so nothing is written to Synapse; running the action again applies
            raise Interrupted(finished.signal)
        if finished is not None and finished.status != COMPLETED:
            raise _annotation_failed(job_url, finished.status, noted(self._run_record, "export_skipped", []))
        return self._apply(p, job_url, client, reporter)

    def _listed_count(self, state: JobState | None) -> int | None:
        """The tasks a run resumed without a fresh export was listed, from what it measured: the
        export's count noted in the run's record (``_note_skipped``). A record an older version
        noted has none: the job's count of the export's lines (job.json ``input.lines``) and the
        skipped tasks noted beside. None before the job exists (such a record, killed between the
        export and the job's start): counting would read the whole export once more, a second
        read of a manifest of a million lines for a log line, which the job's start reads anyway."""
        listed = noted(self._run_record, "export_listed")
        if isinstance(listed, int):
            return listed
        if state is None:
            return None
        return state.input_lines + len(noted(self._run_record, "export_skipped", []))

    def _annotation_counted(self) -> tuple[dict[str, int] | None, list[dict] | None]:
        """What the annotation job did, for a run stopped before its writes: its tasks, those that
        failed, the rest ``stand_by`` (``_annotation_counts``); ``(None, None)`` before it exists."""
        if self.job_url is None or not Job(self.job_url).exists:
            return None, None
        try:
            return _annotation_counts(self.job_url, noted(self._run_record, "export_skipped", []))
        except TotaskError:  # a job.json being replaced as the signal came: the counts are unknown
            return None, None

    def _annotator_options(self, p: ToTaskParams) -> dict[str, Any]:
        # the SDK's pass-through: what the file (or the pre-processor) holds is the task data,
        # unless an existing plugin class converts it
        # (a plugin made without its constructor reads the action's parameters as self.params)
        extra = {"converter": p.converter, "converter_params": stored_params(dict(self.params))} if p.converter else {}
        if p.schema == "any":  # the SDK then submits an empty document too (the backend's DM check is skipped)
            extra["submit_empty"] = True
        if p.method == "file":
            return {"target_specification_name": p.target_specification_name, "native": "any", **extra}
        return {
            "pre_processor": p.pre_processor, "agent": p.agent, "model": p.model,
            "pre_processor_params": stored_params(p.pre_processor_params), "batch_size": p.batch_size, "timing": dict(self.timing),
            "native": "any", **extra,
        }

    def _preprocessor(self, p: ToTaskParams, client: SynapseClient, reporter: JobReporter) -> Any:
        from .._synapse.preprocessor import PreProcessor, Timing

        return PreProcessor(client, int(p.pre_processor or 0), p.agent, timing=Timing.from_options({"timing": self.timing}),
                            on_wait=lambda text: self._say(reporter, text, key="TASK_PREPROCESSOR_WAITING_PROGRESS"))

    def _apply(self, p: ToTaskParams, job_url: str, client: SynapseClient, reporter: JobReporter) -> dict[str, Any]:
        # the output manifest checked (its checksum) and its lines counted in one read, then read once
        # more as apply sends it: a count of its own was a third read (0.1 s per 100 MB)
        target = load_job_target(job_url)
        total = target.lines
        # listed tasks the export could not take (no files, no primary URL, gone): failed tasks, as the
        # SDK counts a task it cannot read or find files for; each sorted where the listing had it
        skipped = noted(self._run_record, "export_skipped", [])
        counts = {"success": 0, "failed": len(skipped)}
        done = [0]
        failed_lines: list[tuple[float, dict[str, Any]]] = [  # (line, entry): the result lists each failed task
            (sk.get("line", 0) - 0.5, {"task_id": sk["task_id"], "error": sk["reason"]}) for sk in skipped]
        listed = total + len(skipped)

        def task_event(index: int, task_id: Any, error: str | None, message: str) -> None:
            """The SDK's per-task event; for a failed task also its message (level error, no key)."""
            reporter.log("annotate_task_data", {
                "task_info": {"task_id": task_id}, "status": "success" if error is None else "failed",
                "method": p.method, "index": index, "total": listed, "created": iso_now(), "error": error,
            }, step="annotate_task_data")
            if error is not None:
                reporter.log("message", {"content": f"Task {task_id} failed: {message}"}, level="error",
                             step="annotate_task_data")

        # the SDK's order: the listing's, ``index`` each task's place in it (a skipped task's too)
        events = ListingOrder(skipped, task_event)
        reporter.progress("annotate_task_data", total, 2 * total)
        reporter.set_metrics(0, counts["failed"], total)

        def on_result(r: TaskResult) -> None:
            done[0] += 1
            ok = r.status in (APPLIED, UNCHANGED)
            counts["success" if ok else "failed"] += 1
            reporter.progress("annotate_task_data", total + done[0], 2 * total)
            reporter.set_metrics(counts["success"], counts["failed"], total - done[0])
            # the SDK's failure is its error alone, the same string in ``failures``, the event and the
            # "Task N failed: ..." message: no status before it (``not-labeled: ``, ``conflict: ``)
            error = _under_run(r)
            events.add(r.line, r.task_id, None if ok else error, error)
            if r.status in (FAILED, CONFLICT, NOT_LABELED):
                failed_lines.append((r.line, {"task_id": r.task_id, "error": error}))

        def written() -> tuple[dict[str, int], list[dict]]:
            success, failed = counts["success"], counts["failed"]
            return ({"total": listed, "success": success, "failed": failed, "stand_by": listed - success - failed},
                    [entry for _, entry in sorted(failed_lines, key=lambda f: f[0])])

        self._written = written
        try:
            report = apply_job(job_url, client=client, concurrency=self.concurrency,
                               schema="any" if p.schema == "any" else None, on_result=on_result, keep_results=False,
                               target=target,  # counted here: memory stays flat
                               send_kept_empty=True)  # the annotators refused what the SDK does not submit
        finally:
            events.close()  # the events held, and the skipped tasks listed after the last one written
        t = report.totals
        # the writes the fatal stop's rollback undid are no success: "4 applied ... rollback: 4 restored"
        # was success_count 4 of tasks left as they were; they are counted stand_by, written by a rerun
        undone = _undone(report, failed_lines)
        _say_undone(reporter, undone)
        success = t[APPLIED] + t[UNCHANGED] - len(undone)
        failed = t[FAILED] + t[CONFLICT] + t[NOT_LABELED] + len(skipped)
        metrics = {"total": listed, "success": success, "failed": failed, "stand_by": max(0, listed - success - failed)}
        failed_lines.sort(key=lambda f: f[0])  # in line order, as the report's results were
        failures = [entry for _, entry in failed_lines]
        self._totask["apply"] = {k: v for k, v in t.items() if k != "lines"}
        reporter.set_metrics(success, failed, metrics["stand_by"])
        reporter.progress("annotate_task_data", 1, 1)
        reporter.progress("finalize", 0, 1)
        self._say(reporter, "Finalizing annotation results", key="TASK_FINALIZING")
        # a fatal stop, or every write refused (no task applied, unchanged or in conflict): no
        # success, as apply's exit 1 and an annotation that labeled nothing say (the SDK: SUCCEEDED)
        stopped = report.summary("run the action again").replace("\n", "; ") if report.fatal else report.nothing_applied
        if stopped:
            error = JobError(stopped)
            error.metrics, error.failures = metrics, failures  # type: ignore[attr-defined]
            raise error
        if failed:
            self._say(reporter, f"Annotation complete: {success} succeeded, {failed} failed",
                      key="TASK_DATA_COMPLETED_WITH_FAILURES", level="warning")
        else:
            self._say(reporter, f"Annotation complete: {success} tasks annotated", key="TASK_DATA_COMPLETED",
                      level="success")
        reporter.progress("finalize", 1, 1)
        return action_result(SUCCEEDED, f"to_task completed. success={success}, failed={failed}", metrics, failures,
                            self._totask)


#: a conflict under ``run``: apply's ``--force overwrites it`` named an option ``run`` has not, and
#: the export was the run's own, moments before
RUN_CHANGED = "changed in Synapse since this run exported it; not overwritten"


def _under_run(r: TaskResult) -> str:
    """A task's error as ``run`` says it: apply's own, but a conflict in ``run``'s words."""
    if r.status == CONFLICT and r.detail == CHANGED:
        return RUN_CHANGED
    return r.detail or r.status


def _undone(report: ApplyReport, failed_lines: list[tuple[float, dict[str, Any]]]) -> list[Any]:
    """The tasks counted applied whose write the rollback after a fatal stop put back (restored, or
    found as before), in the rollback's order: of the tasks it undid, those not failed (a write in
    doubt is undone too)."""
    if report.rollback is None:
        return []
    failed = {entry["task_id"] for _, entry in failed_lines}
    undone = (r.task_id for r in report.rollback.results if r.status in (RESTORED, ALREADY))
    return [task_id for task_id in dict.fromkeys(undone) if task_id not in failed]


def _say_undone(reporter: JobReporter, undone: list[Any]) -> None:
    """A message in the Synapse job's log for each task whose ``success`` event the rollback made
    untrue: the log is append-only, and the SDK's task events say only ``success`` or ``failed``
    (it never rolls back), so the event stays and a line after it says so, as a failed task's
    ``Task N failed: ...`` follows its event. Without it the log said 4 successes the result denied."""
    for task_id in undone:
        reporter.log("message", {"content": f"Task {task_id} rolled back: its write was undone after the run "
                                            "stopped (counted stand_by, not success)"},
                     level="warning", step="annotate_task_data")


def annotating(listed: int | None, method: str) -> str:
    """The SDK's ``TASK_DATA_ANNOTATING`` words ("1 tasks" included) with its count, the tasks
    listed; without it where the run cannot know it cheaply (``ToTaskAction._listed_count``)."""
    return f"Annotating {listed} tasks ({method} method)" if listed is not None else f"Annotating tasks ({method} method)"


def _annotation_failed(job_url: str, status: str, skipped: list[dict]) -> JobError:
    """The error for an annotation job that did not complete, with what it did: the tasks it was
    given, those that failed (one failure each, as the SDK counts them) and the rest
    (``stand_by``: not tried, or labeled but not written). None was written to Synapse, so none
    succeeded. When it left tasks untried,
    running the action again resumes the job; a result of zeros would read as "no tasks".
    ``skipped``: the listed tasks the export could not take, failed tasks too (first)."""
    job = Job.open(job_url)
    error, metrics = job.state.error, job.state.metrics
    text = f"annotation job {status}" + (f": {error}" if error else "")
    untried = metrics.get("stand_by", 1)  # the job's own count: lines it has not tried yet
    exc = JobError(text + ("; run the action again to resume it" if untried else ""))
    exc.metrics, exc.failures = _annotation_counts(job_url, skipped)  # type: ignore[attr-defined]
    return exc


def _annotation_counts(job_url: str, skipped: list[dict]) -> tuple[dict[str, int], list[dict]]:
    """The metrics and failures of a run whose annotation job ended without a write to Synapse
    (it did not complete, or a signal stopped the run): its tasks, those that failed (the listed
    tasks the export could not take first), none succeeded, the rest ``stand_by``."""
    job = Job.open(job_url)
    metrics = job.metrics()  # a job the signal left RUNNING (killed in between): its parts' counts
    total, failed = metrics.get("total", 0), metrics.get("failed", 0)
    counts = {"total": total + len(skipped), "success": 0, "failed": failed + len(skipped),
              "stand_by": max(0, total - failed)}
    failures = [{"task_id": sk["task_id"], "error": sk["reason"]} for sk in skipped] + [
        {"task_id": record.get("task_id"), "error": record.get("reason")}
        for _, record in job.failure_records() if record is not None]
    return counts, failures
