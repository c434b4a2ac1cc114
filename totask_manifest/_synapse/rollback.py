"""Undo a job's writes to Synapse from its journal: put every changed task's previous data back.

For each task with writes not yet undone, the task's current data decides:

* a write of it is in doubt and its run journalled something under a minute ago (a run stopped
  by a Ctrl-C moments before, one whose PUT went unanswered or was refused after an unanswered
  attempt, one killed while retrying a PUT: each attempt not sent at once is journalled): that
  write may still land, so whatever the task holds it is left open (``landing``) for a later
  rollback;
* it already holds the data from before the job's first write: nothing to send (``already``);
* it holds what the job wrote (or an intermediate state of the job's own writes): restore;
* it holds anything else, so someone changed it since: skip and report (``conflict``) unless
  ``force``;
* the backend answered without its data: nothing is known of it, so nothing is restored, even
  with ``force``; the task fails and a later rollback tries it again.

Each restore is journalled (``restoring`` on disk before its PUT, ``restored`` after it), so
rollback is idempotent and can be run again after it was interrupted, and a restore in flight at
the stop is waited for, by rollback and apply alike (``journal_index``). Restores are sent with ``?schema=any``: the data being put back is exactly
what the backend held before, which its DM-schema check need not judge again.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import math
import os
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from .._errors import StorageError, TotaskError, UsageError, counted
from .._jobs.archives import archived_runs
from .._jobs.job import Job
from .._jobs.lease import hold
from .._redaction import redact_url
from .client import (
    AsyncSynapseClient,
    BackendMoved,
    BackendUnavailable,
    NotFound,
    SynapseHTTPError,
    TokenRejected,
)
from .current import DETAIL, unit_id
from .errors import may_still_land
from .journal import Journal, TaskHistory, heard_of, iter_journal, open_writes
from .settings import SynapseSettings, origin
from .sync_client import SynapseClient
from .taskdata import data_hash
from .workers import (
    Breaker,
    HungCheck,
    TokenCheck,
    check_concurrency,
    project_gone,
    project_id,
    restore_other_unit,
    run_pool,
)
from .written_units import fill_written_units

log = logging.getLogger(__name__)

RESTORED, ALREADY, CONFLICT, FAILED = "restored", "already", "conflict", "failed"
#: a task with a write of a run stopped moments ago that may still reach it: left open for a later
#: rollback (closed as ``already``, or restored, the write landed after and was never undone)
LANDING = "landing"
#: how long after its run's last journal record a write in doubt may still land: a request sent
#: reaches the backend within the client's read timeout (30 s) if at all; twice that
LANDING_SECONDS = 60.0
#: the task answers 404 while its project is there: deleted since, so nothing is left to restore
DELETED = "deleted"
#: a failed task's ``cause`` when it holds another data unit than the job wrote it for: rolling back
#: again changes nothing until the host or the task does, so the summary advises otherwise
OTHER_UNIT = "other-unit"


class _OnOtherUnit(Exception):
    """The task shows another image than the job wrote it for: refused, and kept apart from the failures a rerun may fix."""


@dataclass
class RestoreResult:
    task_id: int
    status: str
    detail: str = ""
    #: failed with the error that stopped the rollback (``TaskResult.fatal``): said once, in the summary
    fatal: bool = False
    #: why it failed where that changes the advice (``OTHER_UNIT``); "" for the rest, which a rerun may fix
    cause: str = ""


@dataclass
class RollbackReport:
    job_url: str
    results: list[RestoreResult] = field(default_factory=list)
    fatal: str | None = None
    #: tasks left to restore by a later rollback (failed or not reached; conflicts excluded)
    remaining: int = 0
    #: tasks with writes to undo, once the journal is read (None before: a Ctrl-C came first)
    planned: int | None = None
    #: ``check SYNAPSE_HOST (now https://...)`` as the client's settings say it, for the advice on
    #: tasks refused for their data unit (the journal records each write's data unit, not the host)
    host_check: str = "check SYNAPSE_HOST"
    #: seconds until no write left open as ``LANDING`` can still land (the longest wait)
    wait_s: float = 0.0
    #: restores sent without their ``restoring`` record (``journal_error``: the journal could not
    #: be written): no later run knows of them, and their ``restored`` records are likely lost too
    unjournalled: int = 0
    journal_error: str = ""
    #: of those, the restores sent and not yet answered: a Ctrl-C leaves them on their way, as a
    #: timeout does (each also ``failed``); no journal record tells a later rollback or apply to wait
    #: for them (``_send_unjournalled``)
    unjournalled_in_flight: int = 0
    #: where nothing is left to undo here (none was, or this rollback undid it all): the job's runs
    #: archived by a later ``run`` (``.totask-archive``) whose journals hold writes left to undo,
    #: newest first
    archived: list[str] = field(default_factory=list)

    @property
    def totals(self) -> dict[str, int]:
        counts = Counter(r.status for r in self.results)
        return {"tasks": len(self.results),
                **{k: counts.get(k, 0) for k in (RESTORED, ALREADY, CONFLICT, FAILED, DELETED, LANDING)}}

    @property
    def complete(self) -> bool:
        """Every task undone, and the journal says so (a restore sent unjournalled: a later
        rollback has to close it)."""
        return self.fatal is None and self.remaining == 0 and not self.unjournalled

    def summary(self) -> str:
        t = self.totals
        if self.planned == 0 and self.fatal is None:  # said as such: a line of zeros read as a rollback that did nothing
            if self.archived:
                return self._only_archived()
            return ("rollback: nothing to restore: the job's journal holds no write left to undo (never applied, "
                    "or every write undone already)")
        text = (f"rollback: {t[RESTORED]} restored, {t[ALREADY]} already as before, {t[CONFLICT]} changed by "
                f"someone else (skipped), {t[FAILED]} failed")
        if t[DELETED]:
            text += f", {t[DELETED]} deleted in Synapse"
        if t[LANDING]:
            text += (f", {t[LANDING]} with a write that may still land (run rollback again in "
                     f"{math.ceil(self.wait_s)} s)")
        if self.fatal:
            text += f"; stopped: {self.fatal}"
        if self.unjournalled_in_flight:
            text += "; " + self.in_flight_advice()
        if self.unjournalled:
            text += (f"; {self.unjournalled} restored unjournalled ({self.journal_error}): sent all the same, as "
                     "nothing could record them; once the journal can be written, run rollback again to record them")
        other_unit = [r.task_id for r in self.results if r.cause == OTHER_UNIT]
        # a refusal for the data unit stays one on every rerun: only the rest is worth running again for
        # those waiting for a write, their own or an unjournalled restore's: said above
        retry = max(0, self.remaining - len(other_unit) - t[LANDING] - self.unjournalled_in_flight)
        if retry:
            text += f"; {retry} tasks not restored yet (run rollback again)"
        if other_unit:
            text += "; " + _other_unit_advice(other_unit, self.host_check)
        if self.archived and self.complete:  # undone here; the tasks now hold the archived run's writes
            text += f"; {self._archived_runs()} writes not undone too: {self._to_undo()}"
        return text


    def _only_archived(self) -> str:
        """Nothing to undo in this folder while the tasks hold an archived run's writes: said
        "never applied, or every write undone already", the user took them for undone."""
        return (f"rollback: nothing to restore: the job's journal holds no write left to undo, but "
                f"{self._archived_runs()} writes not undone (moved there when a new run started); {self._to_undo()}")

    def _archived_runs(self) -> str:
        """``archived`` as the summary names them: the run, or how many and where."""
        if len(self.archived) == 1:
            return f"its earlier run {redact_url(self.archived[0])} holds"
        return f"{len(self.archived)} earlier runs of it archived under {redact_url(self.archived[0].rpartition('/')[0])} hold"

    def _to_undo(self) -> str:
        """The commands that undo ``archived``, newest first (each run's journal holds what the
        tasks held before it wrote)."""
        commands = "; ".join(f"rollback {redact_url(a)}" for a in self.archived)
        return f"to undo {'it' if len(self.archived) == 1 else 'them, newest first'}: {commands}"

    def in_flight_advice(self) -> str:
        """What to do about restores a stop left on their way unjournalled: nothing on disk makes a
        later run wait for them, so the user must, or an apply at once sees the job's labels, calls
        them unchanged, and the restores landing after replace them."""
        n = self.unjournalled_in_flight
        return (f"{counted(n, 'restore')} sent unjournalled ({self.journal_error}) may still reach "
                "Synapse within a minute: wait a minute, then run rollback again or apply again")


def _other_unit_advice(task_ids: list[int], host_check: str) -> str:
    """What to do about tasks refused for their data unit: a rerun meets the same refusal, so it
    names the two things that can make them match again, the host and the task's binding."""
    one = len(task_ids) == 1
    tasks, they = ("1 task", "it") if one else (f"{len(task_ids)} tasks", "them")
    which = f"task {task_ids[0]}" if one else f"first: task {min(task_ids)}"
    return (f"{tasks} not restored as {'it holds' if one else 'they hold'} another data unit than the job wrote "
            f"{they} for ({which}), and running rollback again will not restore {they}: "
            f"{host_check}: is it the Synapse the job was applied to? If it is, see why "
            f"{'the task was' if one else 'those tasks were'} bound to another data unit since")


def rollback_job(
    job_url: str, *, force: bool = False, concurrency: int = 32, client: SynapseClient | None = None,
    report: RollbackReport | None = None,
) -> RollbackReport:
    """Restore every task the job at ``job_url`` changed (see the module docstring).

    ``report``, when given, is filled as restores finish (``results``, and ``remaining`` counted
    down from the tasks to restore) and returned: a caller that a Ctrl-C stops part way, when no
    report comes back, still reads how many tasks were restored and how many are left."""
    job_url = os.fspath(job_url)  # a pathlib.Path too, as status takes
    check_concurrency(concurrency)
    job_url = job_url.rstrip("/")
    job = Job(job_url)
    if not (job.exists or next(iter_journal(job_url), None) is not None):
        # a file (inside a job folder: that folder named) is said as apply and the job commands say it
        raise job.not_a_job("neither job.json nor a Synapse journal found")
    own = client is None
    client = client or SynapseClient(max_concurrency=concurrency)
    try:
        with hold(job_url, "rollback"):  # one writer per job: never beside a running apply
            return client.run(_rollback_with_journal(client.aio, job_url, force=force, concurrency=concurrency,
                                                     report=report))
    finally:
        if own:
            client.close()


def other_host(hosts: Iterable[str], settings: SynapseSettings) -> str | None:
    """A host of ``hosts`` (where a job's journal says its writes went) that is another backend than
    the one now set (scheme, host and port), without user info whatever wrote it; or None.

    Why it matters: task ids are the backend's own, so another backend's task 17 is another task;
    rollback there would meet conflicts, or with ``--force`` put one backend's data onto the
    other's tasks, and one apply there would leave a journal no single rollback can undo."""
    here = origin(settings.host)
    return next((redact_url(host) for host in sorted(hosts) if origin(host) != here), None)


async def _rollback_with_journal(aio: AsyncSynapseClient, job_url: str, *, force: bool, concurrency: int,
                                 report: RollbackReport | None) -> RollbackReport:
    journal = Journal(job_url)
    try:
        report = await rollback_async(aio, job_url, journal, force=force, concurrency=concurrency, report=report)
    finally:
        await journal.aclose()
    if (report.planned == 0 and report.fatal is None) or report.complete:
        report.archived = await asyncio.to_thread(_archived_with_writes, job_url)
    return report


def _archived_with_writes(job_url: str) -> list[str]:
    """The job's archived runs (``jobs.archives.archived_runs``, newest first) whose journal holds a write
    left to undo; one whose journal cannot be read is named too (its own rollback says why)."""
    found = []
    for archived in archived_runs(job_url):
        try:
            if open_writes(list(iter_journal(archived))):
                found.append(archived)
        except TotaskError:
            found.append(archived)
    return found


async def rollback_async(
    aio: AsyncSynapseClient,
    job_url: str,
    journal: Journal,
    *,
    force: bool = False,
    concurrency: int = 32,
    only_run: str | None = None,
    report: RollbackReport | None = None,
) -> RollbackReport:
    """Rollback on an open journal (apply uses this after a fatal error, with its own journal).

    ``only_run`` limits it to one run's records (apply passes its own run id): stopping a run
    must undo that run only, not the earlier runs' writes the user kept; each task goes back to
    what it held before that run wrote it. ``report``: as ``rollback_job``'s. A task with a write
    in doubt whose run journalled something less than ``LANDING_SECONDS`` ago (a run stopped by a
    Ctrl-C moments before) is left open (``LANDING``), neither closed as ``already`` nor restored:
    that write may still land, and a journal saying it was undone would leave it on the task for good.
    """
    await journal.flush()
    # only the records asked for are held: apply's run, not the earlier runs' writes it keeps
    records = await asyncio.to_thread(lambda: [r for r in iter_journal(job_url)
                                               if only_run is None or r.get("run") == only_run])
    histories = open_writes(records)
    hosts = {w["host"] for h in histories.values() for w in h.writes if type(w.get("host")) is str}
    elsewhere = other_host(hosts, aio.settings)
    if elsewhere is not None:
        raise UsageError(f"the job's writes went to {elsewhere} (apply's host, in the job's journal), not to "
                         f"{redact_url(aio.settings.host)}: set {aio.settings.host_from} to {elsewhere} to roll them back")
    await asyncio.to_thread(fill_written_units, job_url, histories)  # an older journal's writes name no data unit
    report = RollbackReport(job_url) if report is None else report
    report.planned = report.remaining = len(histories)
    report.host_check = aio.settings.check_host()
    breaker = Breaker(token=TokenCheck(aio))  # the project's check tells an outage from broken tasks
    # apply's own run awaited each of its writes before rolling back: only those no one answered may
    # still be on their way (``unanswered``)
    unanswered_only = only_run is not None
    undone: set[int] = set()  # restored, already as before, or deleted: nothing left to do
    conflicted: set[int] = set()

    asking: Any = None  # the project a restore last named: what a timeout's check asks for (``HungCheck``)

    async def restore(history: TaskHistory) -> None:
        nonlocal asking
        tid = history.task_id
        if project_id(project := history.writes[0].get("project")) is not None:
            asking = project
        try:
            task = await aio.get_task(tid, DETAIL)
            if "data" not in task:  # not a task holding nothing: what it holds is unknown, so neither
                # ours nor someone else's change, and never overwritten unseen (--force included)
                raise SynapseHTTPError(f"Synapse answered GET /tasks/{tid}/ without the task's data: nothing "
                                       f"restored (what it holds now is unknown); run rollback again to restore it",
                                       status=200, method="GET", path=f"/tasks/{tid}/")
            unit, written = unit_id(task), history.data_unit
            if unit is not None and written is not None and unit != written:  # never onto another image (--force too)
                raise _OnOtherUnit(restore_other_unit(tid, unit, written, aio.settings))
            current = data_hash(task["data"])
            ours = history.holds_ours(task["data"], current)
            landing = history.landing(dt.datetime.now(dt.UTC), LANDING_SECONDS, unanswered_only=unanswered_only)
            if landing is not None:  # whatever it holds now: a restore the write then lands on undoes nothing
                report.wait_s = max(report.wait_s, LANDING_SECONDS - landing)
                result = RestoreResult(tid, LANDING, f"a write of a run {heard_of(landing)} may still reach it: left for a "
                                       "later rollback")
            elif current == history.original_hash:
                journal.note("restored", task_id=tid, hash=current, already=True)
                result = RestoreResult(tid, ALREADY)
            elif ours or force:
                await _restore_journalled(aio, journal, tid, history, report)
                journal.note("restored", task_id=tid, hash=history.original_hash, forced=not ours)
                result = RestoreResult(tid, RESTORED, "" if ours else "forced over someone else's change")
            else:
                result = RestoreResult(tid, CONFLICT, "changed by someone else since this job wrote it; "
                                       "--force restores it anyway")
            breaker.success()
            if result.status in (RESTORED, ALREADY):
                undone.add(tid)
            elif result.status == CONFLICT:
                conflicted.add(tid)
            report.remaining = len(histories) - len(undone) - len(conflicted)  # what a Ctrl-C now leaves
        except TokenRejected as exc:
            breaker.trip(f"the token was refused ({exc})")
            result = RestoreResult(tid, FAILED, str(exc), fatal=True)
        except BackendMoved as exc:
            breaker.trip(f"the backend moved ({exc})")
            result = RestoreResult(tid, FAILED, str(exc), fatal=True)
        except BackendUnavailable as exc:
            result = RestoreResult(tid, FAILED, str(exc))
            # once it trips, this and those before it: said once, in the summary
            await breaker.unavailable(str(exc), result, project=history.writes[0].get("project"), error=exc)
        except NotFound as exc:
            project = history.writes[0].get("project")
            state = None if project is None else await _project_state(aio, project)
            if state == "gone":
                breaker.trip(project_gone(project, aio.settings))
                result = RestoreResult(tid, FAILED, str(exc), fatal=True)
            elif state == "there":  # deleted since the job wrote it: nothing to put back
                breaker.success()
                undone.add(tid)
                report.remaining = len(histories) - len(undone) - len(conflicted)
                result = RestoreResult(tid, DELETED, f"nothing to restore: {exc}")
            else:
                result = RestoreResult(tid, FAILED, str(exc))
        except _OnOtherUnit as exc:
            breaker.success()  # the backend answered: no sign of an outage
            result = RestoreResult(tid, FAILED, str(exc), cause=OTHER_UNIT)
        except SynapseHTTPError as exc:
            breaker.success()
            result = RestoreResult(tid, FAILED, str(exc))
        report.results.append(result)

    try:
        with HungCheck(aio, breaker, lambda: asking):  # this rollback's timeouts: apply's own stop is over
            await run_pool(list(histories.values()), restore, concurrency, breaker)
    except StorageError as exc:
        breaker.trip(str(exc))
    await journal.flush()
    report.fatal = breaker.fatal
    report.remaining = len(set(histories) - undone - conflicted)
    report.results.sort(key=lambda r: r.task_id)
    log.debug("%s", report.summary())  # the caller prints it (the CLI, apply's summary): said once
    return report


async def _restore_journalled(aio: AsyncSynapseClient, journal: Journal, task_id: int,
                              history: TaskHistory, report: RollbackReport) -> None:
    """PUT the task's original data back, journalled as apply's writes are: ``restoring`` on disk
    before it is sent, an ``attempt`` before each attempt not sent at once, and how it failed
    (``Journal.note_failure``); the caller notes ``restored``. A restore a Ctrl-C or SIGTERM
    stopped in flight may still land: unjournalled, a second rollback or an apply at once read the
    task before it did, and the restore then undid what they decided (``TaskHistory.landing``).

    Where ``restoring`` cannot be written (a full disk) the restore is sent all the same
    (``_send_unjournalled``): apply's own rollback after that very error must still undo its
    writes, and nothing more could be recorded of the restore anyway."""
    try:
        await journal.write_ahead("restoring", task_id=task_id, host=redact_url(aio.settings.host),
                                  new_hash=history.original_hash)
    except StorageError as exc:
        await _send_unjournalled(aio, task_id, history, report, str(exc))
        return
    try:
        await aio.annotate_task_data(task_id, history.original, schema="any",
                                     on_attempt=journal.attempts(task_id, history.original_hash))
    except SynapseHTTPError as exc:
        journal.note_failure(exc, task_id, history.original_hash)
        raise


async def _send_unjournalled(aio: AsyncSynapseClient, task_id: int, history: TaskHistory,
                             report: RollbackReport, journal_error: str) -> None:
    """Send a restore whose ``restoring`` could not be written, counted in ``report`` while it is
    on its way (``unjournalled_in_flight``): a stop then (a Ctrl-C) leaves it so counted, for the
    summary to say that it may still land, as no journal record can; so does an end no one
    answered (a timeout: ``errors.may_still_land``), where a journalled restore stays in doubt
    (``unanswered``). It was counted only as failed, and the summary said to run rollback again at
    once: an apply then could find the job's labels and the restore land after. Said once as the
    first one goes: every restore after it is sent so too, and the user watching may want to know why."""
    if not report.journal_error:
        log.warning("rollback: %s: sending the restores all the same, unjournalled (nothing can record them)",
                    journal_error)
    report.journal_error = journal_error
    report.unjournalled_in_flight += 1
    try:
        await aio.annotate_task_data(task_id, history.original, schema="any")
    except asyncio.CancelledError:
        raise  # stopped on its way: it stays counted, as it may still land
    except SynapseHTTPError as exc:
        if not may_still_land(exc):  # refused, or the backend's own answer: nothing of it on its way
            report.unjournalled_in_flight -= 1
        raise  # a timeout: it fails here, and stays counted, as a journalled one stays in doubt (``unanswered``)
    except BaseException:
        report.unjournalled_in_flight -= 1
        raise
    report.unjournalled_in_flight -= 1
    report.unjournalled += 1


async def _project_state(aio: AsyncSynapseClient, project: int) -> str:
    """``gone`` (404), ``there``, or ``unknown`` (any other error)."""
    try:
        await aio.get_project(project)
    except NotFound:
        return "gone"
    except SynapseHTTPError:
        return "unknown"
    return "there"
