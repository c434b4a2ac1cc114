"""Apply a finished job's labels to Synapse: ``PUT tasks/{id}/annotate_task_data/`` per task.

For every labeled line of ``<job>/manifests/output/output.manifest`` (lines exported from
Synapse carry ``synapse.task_id``) the label is converted to task data, then:

1. read the task's current data and fingerprint it: a window of 100 tasks at a time through
   the task listing (``id__in``), where the backend proves it answers that faithfully, else
   ``GET tasks/{id}/?fields=id,data,data_unit`` per task (``current.py``);
2. it already equals the new data (or what the backend stored for an earlier write of it, from
   the journal): nothing is sent (``unchanged``), which makes apply idempotent;
3. it differs from the fingerprint recorded at export: someone changed the task since, so it is
   skipped and reported (``conflict``) unless ``force``;
4. otherwise the previous data goes to the journal (flushed and fsynced first), then the PUT.

A line whose label is a document kept as it is (Ground Truth's custom type naming its format,
``formats.native``) is sent exactly as it is: no conversion, JSON-equal to the file it came from
(``?schema=any`` for the ``objects`` shape, which the backend's DM-schema check would refuse;
otherwise as ``schema`` says). Other labels are converted as ``data_format`` says:
``dm-schema-v1`` (the default; what the backend validates and stores; confidences travel as a
``confidence`` classification attribute) or ``synapse-objects`` (the documented ``{"objects":
[...]}`` shape, sent with ``?schema=any``). A result that holds no annotation is never sent (the
backend answers 400 to an empty submit): the task fails with the SDK's ``TASK_INFERENCE_EMPTY_RESULT``
(``send_kept_empty``, the ToTask action: a kept document goes all the same, as the SDK submits it).

A task's own failure (400, 403, its 404, a label that cannot be converted) fails that task
only, as does a 401 when the token's own check (``workers.TokenCheck``) is accepted. A fatal
error (a 401 the check confirms: the token revoked; the project gone; the backend down) stops
the run; unless told not to, apply then rolls back this run's writes (earlier runs' are kept) while the backend still
takes them (never with a token the check found refused), and otherwise the journal lets ``rollback`` finish later (it
undoes every run).

Lines become writes in ``apply_plan`` (with the job target and the converter); what a run
reports is in ``apply_report``; this module sends the writes.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import math
import os
from collections.abc import Callable
from typing import Any

from .. import _signals
from .._errors import StorageError, UsageError
from .._jobs.lease import hold
from .._redaction import redact_url
from . import DM_V1, UNCHANGED
from .apply_plan import JobTarget, Planned, converter, load_job_target, plan_writes
from .apply_report import (
    APPLIED,
    CONFLICT,
    FAILED,
    NOT_LABELED,
    ROLLBACK_NEEDS_TOKEN,
    STATUSES,
    WOULD_APPLY,
    ApplyReport,
    TaskResult,
)
from .client import (
    AsyncSynapseClient,
    BackendMoved,
    BackendUnavailable,
    NotFound,
    SynapseHTTPError,
    TokenRejected,
)
from .current import CurrentData
from .journal import Journal, contains, heard_of
from .journal_index import LineageIndex, RerunIndex, index_journal, own_writes
from .rollback import LANDING_SECONDS, other_host, rollback_async
from .sync_client import SynapseClient
from .taskdata import count_annotations, data_hash
from .workers import (
    Breaker,
    HungCheck,
    TokenCheck,
    check_concurrency,
    other_unit,
    project_gone,
    project_id,
    refused_alone,
)

log = logging.getLogger(__name__)

#: tasks whose current data one listing request loads (see ``current.py``)
WINDOW = 100
_STOP: Any = object()
CHANGED = "changed in Synapse since export; --force overwrites it"

#: what callers import from here; the reports live in ``apply_report``, the planning in ``apply_plan``
__all__ = ["APPLIED", "CONFLICT", "FAILED", "NOT_LABELED", "STATUSES", "UNCHANGED", "WOULD_APPLY", "ApplyReport",
           "JobTarget", "TaskResult", "apply_job", "converter", "load_job_target"]


def apply_job(
    job_url: str,
    *,
    dry_run: bool = False,
    concurrency: int = 32,
    force: bool = False,
    rollback_on_fatal: bool = True,
    data_format: str = DM_V1,
    schema: str | None = None,
    client: SynapseClient | None = None,
    on_result: Callable[[TaskResult], None] | None = None,
    bulk_reads: bool = True,
    keep_results: bool = True,
    allow_drop: bool = False,
    target: JobTarget | None = None,
    send_kept_empty: bool = False,
) -> ApplyReport:
    """Apply the job at ``job_url`` to Synapse (see the module docstring). Never raises for a task.

    ``keep_results``: the report's ``results`` holds every task's ``TaskResult`` (about 240 bytes
    a task); with False it stays empty and the run holds only the counts, whatever the number of
    tasks: for a caller that takes each result from ``on_result``, as the CLI and the action do.
    ``allow_drop``: a multi-label's scores of classes it does not choose, which task data cannot
    hold, are left out; without it such a task fails, naming the score. ``target``: the job's
    ``load_job_target``, when the caller already has it (the ToTask action counts the lines from
    it): the output manifest is then not read once more for it. An exception ``on_result`` raises
    stops the run (no task is taken after it; the writes done stay, journalled, for a re-run or
    rollback, unless the run had already stopped for a fatal error, whose rollback goes on) and
    is raised once the run has ended. ``send_kept_empty``: a document kept as it is that holds no
    annotation is sent all the same (the ToTask action: its annotators already refused what the
    SDK does not submit, and the backend's 400 to the rest is that task's failure, as in the SDK)."""
    job_url = os.fspath(job_url)  # a pathlib.Path too, as status takes
    check_concurrency(concurrency)
    target = target or load_job_target(job_url)
    convert, format_schema = converter(data_format, allow_drop=allow_drop)
    own = client is None
    # one writer per job: a second apply at once would send every PUT again (dry runs write nothing)
    held = contextlib.nullcontext() if dry_run else hold(target.job_url, "apply")
    client = client or SynapseClient(max_concurrency=concurrency)
    try:
        with held:
            run = _ApplyRun(client.aio, target, convert, schema or format_schema, dry_run=dry_run, force=force,
                            concurrency=concurrency, rollback_on_fatal=rollback_on_fatal, on_result=on_result,
                            bulk=bulk_reads, keep_results=keep_results)
            run.native_schema, run.send_kept_empty = schema, send_kept_empty
            try:
                report = client.run(run.run())
            except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM where it is one
                run.note_interrupt(exc)
                raise
            _signals.done("the apply run ended")  # noted where the CLI asked: the lease given back, the counts said
            return report
    finally:
        if own:
            client.close()


class _ApplyRun:
    def __init__(self, aio: AsyncSynapseClient, target: JobTarget, convert: Callable, schema: str | None, *,
                 dry_run: bool, force: bool, concurrency: int, rollback_on_fatal: bool,
                 on_result: Callable[[TaskResult], None] | None, bulk: bool = True,
                 keep_results: bool = True) -> None:
        self.aio = aio
        self.target = target
        self.convert = convert
        self.schema = schema
        self.dry_run = dry_run
        self.force = force
        self.concurrency = concurrency
        self.rollback_on_fatal = rollback_on_fatal
        self.on_result = on_result
        self.report = ApplyReport(target.job_url, dry_run, keep_results=keep_results, manifest_lines=target.lines)
        self.token = TokenCheck(aio)
        self.breaker = Breaker(token=self.token)
        self.journal: Journal | None = None
        self._gone: set[int] = set()
        self.current = CurrentData(aio, bulk=bulk)
        #: what the journal says of earlier writes: what the backend stored for them, which are in doubt
        self.earlier = RerunIndex(bytearray(), set())
        #: the writes of the jobs this one was chained or cloned from: a task holding one is no
        #: conflict (``_in_lineage``); read at the first task that looks changed, not before (their
        #: journals hold every task's data, and an apply where nothing changed needs none of it)
        self._lineage: LineageIndex | None = None
        self._lineage_read = asyncio.Lock()
        #: the schema asked for explicitly: documents kept as they are are sent with it
        self.native_schema: str | None = None
        #: documents kept as they are go even when empty (``apply_job``'s ``send_kept_empty``)
        self.send_kept_empty = False
        #: ``(line, task id, current hash)`` of the tasks that look changed since export, decided
        #: after the run (``_recheck``): a few bytes each, not the write
        self.suspects: list[tuple[int, int, str]] = []
        #: writes of this run journalled and not refused: what a rollback of the run has to look at
        self.sent = 0
        #: what ``on_result`` raised: the run stops and ``run`` raises it; ``caller_stopped``: it is
        #: what stopped the run (the writes went well: nothing is rolled back)
        self.caller_error: Exception | None = None
        self.caller_stopped = False
        #: the lines whose write is on its way (sent, not yet answered): a stop that comes to one of
        #: them is its failure; to any other task, it came before anything was sent (``_stopped``)
        self._writing: set[int] = set()
        #: the rollback after a fatal stop is under way: a Ctrl-C now cuts it short (``note_interrupt``)
        self.rolling_back = False
        #: the project a request of the run last named: what a timeout's check asks for (``HungCheck``),
        #: before any task has finished to tell ``Breaker`` one (a backend hung from the first write)
        self._asking: Any = None

    def _emit(self, result: TaskResult) -> None:
        """Count ``result``, then hand it to ``on_result``. An exception of the callback is the
        caller's, not the task's: kept (raised by ``run`` once the run has ended) and the run
        stopped, with the line counted once, as what it was. Raised here, it became the task's own
        failure in the worker, or a second result for the line where it was a ``StorageError``."""
        self.report.add(result)
        if self.on_result is None or self.caller_error is not None:
            return
        try:
            self.on_result(result)
        except Exception as exc:
            self.caller_error = exc
            self.caller_stopped = not self.breaker.tripped  # else the run's own stop stands, and its rollback
            self.breaker.trip(f"on_result raised {type(exc).__name__}")

    async def run(self) -> ApplyReport:
        self.earlier = await asyncio.to_thread(index_journal, self.target.job_url, self.aio.settings.host)
        elsewhere = other_host(self.earlier.hosts, self.aio.settings)
        if elsewhere is not None:
            raise UsageError(f"the job's earlier writes went to {elsewhere} (its journal), not to "
                             f"{redact_url(self.aio.settings.host)}: one job's journal holds one backend's writes, "
                             f"so that rollback can undo them; set {self.aio.settings.host_from} to {elsewhere}, or "
                             f"clone the job (totask-manifest clone) and apply the clone there")
        if not self.dry_run:
            self.journal = Journal(self.target.job_url)
            self.report.journal_url = self.journal.url
            self.report.run_id = self.journal.run_id
        try:
            try:
                with HungCheck(self.aio, self.breaker, lambda: self._asking):  # not the rollback's: its own
                    await self._pipeline()
                    await self._recheck()
            except StorageError as exc:  # the manifest cannot be read
                self.breaker.trip(str(exc))
            for line, task_id, _ in self.suspects:  # not looked at again: the run stopped first
                self._emit(TaskResult(line, task_id, CONFLICT, CHANGED))
            # a run stopped before its first write (a refused token, say) has nothing to roll back: the
            # summary says the error once, without a rollback of nothing
            # stopped by the caller's error, or by writes failing while reads were answered (``Breaker``'s B,
            # C): the writes made were each answered, and are kept
            if (self.breaker.fatal and self.journal is not None and self.rollback_on_fatal and self.sent
                    and not self.caller_stopped and not self.breaker.keep_writes):
                await self._roll_back()
        finally:
            try:
                # the last failures for want of an answer (the run over, or a Ctrl-C): counted, and said
                self._say(self.breaker.release())
            finally:
                if self.journal is not None:
                    await self.journal.aclose()
        if self.caller_error is not None:
            raise self.caller_error
        self.report.fatal = self.breaker.fatal
        self.report.kept = self.breaker.keep_writes
        self.report.sent = self.sent
        self.report.results.sort(key=lambda r: r.line)
        return self.report

    async def _roll_back(self) -> None:
        """Undo this run's writes after its fatal stop, unless the token's check found the token
        refused: the rollback then sent a read per written task with it, each refused, and reported
        them as failed restores; the writes stay, journalled, for ``rollback`` with a working token."""
        if self.token.revoked:
            self.report.rollback_skipped = ROLLBACK_NEEDS_TOKEN
            return
        assert self.journal is not None
        log.warning("stopping: %s; rolling back this run's writes", self.breaker.fatal)
        self.rolling_back = True
        self.report.rollback = await rollback_async(self.aio, self.target.job_url, self.journal,
                                                    concurrency=self.concurrency, only_run=self.journal.run_id)
        self.rolling_back = False

    def note_interrupt(self, exc: KeyboardInterrupt) -> None:
        """Say on ``exc`` what the run was doing when the signal came (``stopped``: its fatal stop's
        reason, or None; ``rollback_cut``: the rollback after it was under way): the caller has no
        report then, and the CLI's summary said neither, advising to apply again after an outage."""
        exc.stopped = self.breaker.fatal  # type: ignore[attr-defined]
        exc.rollback_cut = self.rolling_back  # type: ignore[attr-defined]

    async def _pipeline(self) -> None:
        """Read the manifest a window at a time, load the window's current data, and keep
        ``concurrency`` tasks in flight; a bounded queue keeps memory flat for any manifest."""
        queue: asyncio.Queue = asyncio.Queue(maxsize=2 * max(self.concurrency, WINDOW))
        errors: list[BaseException] = []

        async def produce() -> None:
            stopped = False
            try:
                window: list[Planned] = []
                for planned in plan_writes(self.target, self.convert, self.schema, self.native_schema, self._emit,
                                           send_kept_empty=self.send_kept_empty):
                    if self.breaker.tripped:
                        return
                    window.append(planned)
                    if len(window) >= WINDOW:
                        await self._feed(window, queue)
                        window = []
                if window and not self.breaker.tripped:
                    await self._feed(window, queue)
            except asyncio.CancelledError:
                # a Ctrl-C: gather cancels the workers too, so no stop is owed them, and one put into
                # a full queue that no worker drains any more would never return
                stopped = True
                raise
            finally:
                for _ in range(0 if stopped else self.concurrency):
                    await queue.put(_STOP)

        async def work() -> None:
            while (planned := await queue.get()) is not _STOP:
                if self.breaker.tripped:
                    continue  # drain, so the producer is never left waiting
                try:
                    await self._apply_one(planned)
                except StorageError as exc:  # the journal cannot be written: no write may go out unjournalled
                    errors.append(exc)
                    self._journal_failed(planned, exc)
                except Exception as exc:
                    errors.append(exc)
                    self.breaker.trip(str(exc))

        outcomes = await asyncio.gather(produce(), *(work() for _ in range(self.concurrency)), return_exceptions=True)
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome

    def _journal_failed(self, p: Planned, exc: StorageError) -> None:
        """The journal could not be written for ``p`` (a full disk): the run stops, and the line is a
        failure with the stop, said in the summary. Its write may have gone out (a ``done`` record
        that could not be written): it is never among the lines the run did not reach."""
        self.breaker.trip(str(exc))
        self._emit(TaskResult(p.line, p.task_id, FAILED, str(exc), fatal=True))

    async def _feed(self, window: list[Planned], queue: asyncio.Queue) -> None:
        self._names(window[0].project)
        try:
            await self.current.load(window[0].project, [p.task_id for p in window])
        except TokenRejected as exc:
            # the one rule for a 401 (``refused_alone``): the listing's or its probe's 401 alone is no
            # revoked token; the window's tasks are then read one by one, each 401 judged as its task's
            if await refused_alone(self.token, exc, window[0].project) is None:
                self.breaker.trip(f"the token was refused ({exc})")
                return
            self.current.off(f"{exc.method} {exc.path} was refused (401) while the token's check was not")
        except BackendUnavailable as exc:  # no connection at all (``CurrentData.load``): nothing of the window sent
            self.breaker.trip(f"the Synapse backend is unavailable ({exc})")
            return
        for planned in window:
            await queue.put(planned)

    async def _recheck(self) -> None:
        """The tasks that looked changed since export, against the journal: one that holds one of
        this job's earlier writes (its label edited in the manifest since, say) is written, as if
        it held the exported data; any other is a conflict. Their writes are planned again from
        the manifest (only when one may be ours), so the run never holds them meanwhile."""
        if not self.suspects or self.breaker.tripped:
            return
        own = await asyncio.to_thread(own_writes, self.target.job_url, {tid for _, tid, _ in self.suspects})
        ours = {}
        for line, task_id, current in self.suspects:
            if (task_id, current) in own:
                ours[line] = (line, task_id, current)
            else:
                self._emit(TaskResult(line, task_id, CONFLICT, CHANGED))
        self.suspects = []
        slots = asyncio.Semaphore(self.concurrency)
        pending: set[asyncio.Task] = set()

        async def one(p: Planned) -> None:
            try:
                await self._apply_one(p, own)
            except StorageError as exc:  # the journal cannot be written: as in ``_pipeline``
                self._journal_failed(p, exc)
            except Exception as exc:
                self.breaker.trip(str(exc))  # no more writes scheduled behind it
                raise
            finally:
                slots.release()

        for p in plan_writes(self.target, self.convert, self.schema, self.native_schema, lambda _: None,
                             send_kept_empty=self.send_kept_empty):
            if p.line not in ours:
                continue
            await slots.acquire()
            if self.breaker.tripped:  # stopped, maybe while this one waited for a slot
                slots.release()
                break
            del ours[p.line]
            task = asyncio.create_task(one(p))
            pending.add(task)
            task.add_done_callback(pending.discard)
        await asyncio.gather(*pending)
        self.suspects = list(ours.values())  # the run stopped first (or the manifest changed): conflicts

    async def _in_lineage(self, task_id: int, current_hash: str) -> bool:
        """Whether the task holds a write of a job this one was chained or cloned from."""
        if not self.target.lineage:
            return False
        if self._lineage is None:
            async with self._lineage_read:  # one read, whichever task asks first
                if self._lineage is None:
                    self._lineage = await asyncio.to_thread(LineageIndex, self.target.lineage)
        return (task_id, current_hash) in self._lineage

    # -- one task ----------------------------------------------------------------------------------------

    def _names(self, project: Any) -> None:
        """A request of ``project`` goes out: the check a timeout asks may ask for it (one with an id)."""
        if project_id(project) is not None:
            self._asking = project

    async def _apply_one(self, p: Planned, own: set[tuple[int, str]] | None = None) -> None:
        self._names(p.project)
        try:
            result = await self._decide_and_write(p, own)
            # the row starts again; a fresh outage's count only if this task's write got a 2xx (``Breaker``'s B)
            self._say(self.breaker.success(p.project))
        except TokenRejected as exc:
            if (alone := await refused_alone(self.token, exc, p.project)) is not None:
                # not the token's (its check answered, or could not tell): this request alone was refused
                self._say(self.breaker.success())
                result = TaskResult(p.line, p.task_id, FAILED, alone)
            else:
                result = self._stopped(p, exc, f"the token was refused ({exc})")
        except BackendMoved as exc:
            result = self._stopped(p, exc, f"the backend moved ({exc})")
        except BackendUnavailable as exc:
            # held until the next task or the project's check says whether the backend is down: then, with
            # the writes in flight failing the same way, said once, in the summary (``Breaker``)
            failed = TaskResult(p.line, p.task_id, FAILED, str(exc), sent=p.line in self._writing)
            self._say(await self.breaker.unavailable(str(exc), failed, project=p.project, error=exc))
            return
        except NotFound as exc:
            if p.project is not None and await self._project_gone(p.project):
                result = self._stopped(p, exc, project_gone(p.project, self.aio.settings))
            else:
                result = TaskResult(p.line, p.task_id, FAILED, str(exc))
        except SynapseHTTPError as exc:
            self._say(self.breaker.success())
            result = TaskResult(p.line, p.task_id, FAILED, str(exc))
        finally:
            self._writing.discard(p.line)
        if result is not None:  # None: looked at again after the run, or not reached
            self._emit(result)

    def _stopped(self, p: Planned, exc: SynapseHTTPError, reason: str) -> TaskResult | None:
        """The run stops for ``reason`` (a refused token, a moved backend, the project gone), which
        ``exc`` brought to ``p``'s task. Where its write was out, the line failed with the stop
        (said once, in the summary); where the stop came as its data was read, nothing was sent for
        it, and it is None: a line the run did not reach, as the lines after it, and as a stop the
        window's listing met leaves them (``_feed``). A wrong ``SYNAPSE_HOST`` answering 404 to
        every path said "20 failed" of a run that had sent nothing, where a wrong token said "20
        lines not reached: nothing was sent for them"."""
        self.breaker.trip(reason)
        if p.line not in self._writing:
            return None
        return TaskResult(p.line, p.task_id, FAILED, str(exc), fatal=True)

    def _say(self, results: list[TaskResult]) -> None:
        """Count and hand on ``results``; a task whose data was being read when the backend was found
        down had nothing sent for it: a line not reached, as ``_stopped`` leaves those of the other
        stops (a backend down at the reads said "20 failed" of a run that had sent nothing)."""
        for result in results:
            if not (result.fatal and not result.sent):
                self._emit(result)

    async def _decide_and_write(self, p: Planned, own: set[tuple[int, str]] | None) -> TaskResult | None:
        """What to do with one task, and the write; None: decided after the run (``_recheck``).
        ``own``: this job's earlier writes to the task (on the second look only)."""
        if (landing := self._restore_landing(p.task_id)) is not None:
            return TaskResult(p.line, p.task_id, FAILED, landing)
        current, unit = await self.current.get(p.task_id)
        if p.data_unit is not None and unit is not None and unit != p.data_unit:
            return TaskResult(p.line, p.task_id, FAILED, other_unit(p.task_id, unit, p.data_unit, self.aio.settings))
        current_hash = data_hash(current)
        if self.earlier.stored(p.task_id, p.new_hash, current_hash):
            return TaskResult(p.line, p.task_id, UNCHANGED, "the task already holds this data")
        if self.earlier.in_doubt(p.task_id, p.new_hash) and contains(current, p.data) and not self.dry_run:
            # a killed run's write that reached the backend (stored normalised): journal what it holds
            return await self._journal_done(p, TaskResult(p.line, p.task_id, UNCHANGED, "the task already holds this data"),
                                            stored_hash=current_hash, recovered=True)
        if p.export_hash is not None and current_hash != p.export_hash and not self.force \
                and not await self._in_lineage(p.task_id, current_hash):  # the job chained from wrote it: no one's edit
            if own is None and self.earlier.written:  # perhaps this job's own earlier write
                self.suspects.append((p.line, p.task_id, current_hash))
                return None
            if own is None or (p.task_id, current_hash) not in own:
                return TaskResult(p.line, p.task_id, CONFLICT, CHANGED)
        change = f"{count_annotations(current)} -> {count_annotations(p.data)} annotations"
        if self.dry_run:
            return TaskResult(p.line, p.task_id, WOULD_APPLY, change)
        assert self.journal is not None
        # the data unit too: rollback puts ``previous`` back only onto a task still showing that image
        # the host too: rollback refuses another backend's tasks of the same ids (``rollback.other_host``)
        await self.journal.write_ahead("before", task_id=p.task_id, project=p.project, line=p.line,
                                       host=redact_url(self.aio.settings.host),
                                       data_unit=unit if unit is not None else p.data_unit,
                                       previous=current, previous_hash=current_hash, new=p.data, new_hash=p.new_hash)
        self.sent += 1
        self._writing.add(p.line)
        try:
            answer = await self.aio.annotate_task_data(p.task_id, p.data, schema=p.schema,
                                                       on_attempt=self.journal.attempts(p.task_id, p.new_hash))
        except SynapseHTTPError as exc:
            # a refused write is no task for rollback to restore (``Journal.note_failure``)
            self.sent -= self.journal.note_failure(exc, p.task_id, p.new_hash)
            raise
        # what the backend says it stored, in case it normalises data: a re-run must see it as ours
        stored = data_hash(answer["data"]) if isinstance(answer, dict) and "data" in answer else p.new_hash
        # on disk before the task counts as applied: after a kill -9 the next run must know it
        return await self._journal_done(p, TaskResult(p.line, p.task_id, APPLIED, change), stored_hash=stored)

    async def _journal_done(self, p: Planned, result: TaskResult, **fields: Any) -> TaskResult:
        """``done`` (with ``fields``) on disk, then ``result``. A stop (Ctrl-C, SIGTERM) while that record is being
        committed does not stop the commit (this one, or the journal's close, writes it): the task
        is counted here all the same once it is on disk, so the interrupted totals are the journal's
        ``done`` records. They said ``0 applied`` beside 4 ``done`` records of the run."""
        assert self.journal is not None
        commit = asyncio.ensure_future(self.journal.write_ahead("done", task_id=p.task_id, new_hash=p.new_hash,
                                                                **fields))
        try:
            await asyncio.shield(commit)
        except asyncio.CancelledError:
            await asyncio.wait([commit])  # the commit is not cancelled: it ends, written or failed
            if commit.exception() is None:
                self._emit(result)
            raise
        return result

    def _restore_landing(self, task_id: int) -> str | None:
        """Why nothing is sent to ``task_id`` yet, or None: a rollback stopped (Ctrl-C, SIGTERM)
        with a restore of it in flight, heard of under ``LANDING_SECONDS`` ago. That restore may
        still land, and would empty the label written now, for good; a minute after, the task is
        read as usual (the restore landed, or never will)."""
        age = self.earlier.restore_landing(task_id, dt.datetime.now(dt.UTC), LANDING_SECONDS)
        if age is None:
            return None
        return (f"a restore by a rollback {heard_of(age)} may still reach it: nothing sent "
                f"(run apply again in {math.ceil(LANDING_SECONDS - age)} s)")

    async def _project_gone(self, project: int) -> bool:
        """Whether a task's 404 means the whole project went away (asked again until it has)."""
        if project not in self._gone:
            try:
                await self.aio.get_project(project)
            except NotFound:
                self._gone.add(project)
            except SynapseHTTPError:
                return False
        return project in self._gone
