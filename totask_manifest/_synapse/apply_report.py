"""What ``apply`` reports: one ``TaskResult`` per manifest line, gathered in an ``ApplyReport``.

Kept apart from the run so the CLI and the ToTask action, which print and count these, read the
statuses without the pipeline that produces them.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from .._errors import agreeing, counted, each_of
from . import UNCHANGED
from .rollback import RollbackReport

APPLIED, CONFLICT, FAILED, NOT_LABELED = "applied", "conflict", "failed", "not-labeled"
WOULD_APPLY = "would-apply"
#: the failure of a line no ``export`` wrote: it names no task to apply to
NO_TASK_ID = "the line has no synapse.task_id (export it with 'totask-manifest export')"
STATUSES = (APPLIED, WOULD_APPLY, UNCHANGED, CONFLICT, FAILED, NOT_LABELED)
#: why a fatal stop's rollback was not tried: the token's check found the token itself refused, so
#: every restore would be refused too (a read per written task, each a 401, counted as "failed"
#: restores, which read as a data problem); what was written stays, and the journal holds it
ROLLBACK_NEEDS_TOKEN = ("the rollback cannot run with the refused token; the journal keeps every write: finish "
                        "with a working token")


@dataclass
class TaskResult:
    line: int
    task_id: int | None
    status: str
    detail: str = ""
    #: the task failed with the error that stopped the run (a refused token, a moved backend, the
    #: project gone): the report's ``fatal`` says it once, so the CLI prints no line of its own for
    #: it (32 writes in flight were 32 lines repeating the stop); it is counted all the same
    fatal: bool = False
    #: its write was sent (False: the task failed as its data was read): with ``fatal``, a line the
    #: run did not reach, left out of the counts (``_ApplyRun._say``)
    sent: bool = True

    def describe(self) -> str:
        who = f"task {self.task_id}" if self.task_id is not None else f"line {self.line}"
        return f"{who}: {self.status}" + (f" ({self.detail})" if self.detail else "")


@dataclass
class ApplyReport:
    """What a run did. ``results`` holds one ``TaskResult`` per line, sorted by line, unless the
    run was asked not to keep them (``apply_job(keep_results=False)``: the CLI and the ToTask
    action, which see each result as it comes); the counts are kept either way (``add``)."""

    job_url: str
    dry_run: bool
    results: list[TaskResult] = field(default_factory=list)
    fatal: str | None = None
    rollback: RollbackReport | None = None
    journal_url: str | None = None
    run_id: str | None = None
    #: writes the run journalled and the backend did not refuse (what a rollback of it looks at)
    sent: int = 0
    #: whether ``add`` keeps each result in ``results`` (else it counts them only)
    keep_results: bool = True
    #: the output manifest's non-blank lines (``JobTarget.lines``; 0: not counted): a run that
    #: stopped says how many it never reached, which the counts alone left out (50 lines, "34
    #: failed, 1 not labeled", and nothing on the other 15)
    manifest_lines: int = 0
    #: why the fatal stop's rollback was not tried though the run had written (``ROLLBACK_NEEDS_TOKEN``), or None
    rollback_skipped: str | None = None
    #: the stop keeps the run's writes (writes failing while Synapse answered reads: ``Breaker.keep_writes``)
    kept: bool = False
    _counts: Counter = field(default_factory=Counter, repr=False)
    _no_task_id: int = field(default=0, repr=False)
    _first_no_task_id: int | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not self.results:  # counts given with no results (``dataclasses.replace`` of a counting report): kept
            self._counts = Counter(self._counts)  # a copy: the two reports count apart from here
            return
        given, self.results = self.results, []  # counted from them alone (``replace`` passes the counts too)
        self._counts, self._no_task_id, self._first_no_task_id = Counter(), 0, None
        keep, self.keep_results = self.keep_results, True
        for result in given:
            self.add(result)
        self.keep_results = keep

    def add(self, result: TaskResult) -> None:
        """Count ``result`` (and keep it, with ``keep_results``)."""
        self._counts[result.status] += 1
        if self.without_task_id(result):
            self._no_task_id += 1
            if self._first_no_task_id is None or result.line < self._first_no_task_id:
                self._first_no_task_id = result.line
        if self.keep_results:
            self.results.append(result)

    @property
    def totals(self) -> dict[str, int]:
        return {"lines": sum(self._counts.values()), **{s: self._counts.get(s, 0) for s in STATUSES}}

    @property
    def not_reached(self) -> int:
        """The output manifest's lines the run never came to (it stopped first), where it counted them."""
        return max(0, self.manifest_lines - sum(self._counts.values())) if self.fatal else 0

    @property
    def ok(self) -> bool:
        return self.fatal is None

    @staticmethod
    def without_task_id(result: TaskResult) -> bool:
        """A line that names no task (``NO_TASK_ID``): said once for all such lines, not per line."""
        return result.task_id is None and result.status == FAILED and result.detail == NO_TASK_ID

    @property
    def missing_task_ids(self) -> str | None:
        """One line for every line without ``synapse.task_id``, or None: a job over a manifest that
        was never exported from Synapse has it on every line, and a line per task said the same
        thing thousands of times before the one thing to do."""
        if not self._no_task_id:
            return None
        return (f"{counted(self._no_task_id, 'line')} {'has' if self._no_task_id == 1 else 'have'} no synapse.task_id (first: line {self._first_no_task_id}): apply "
                "writes to the Synapse tasks a manifest was exported from; export them first ('totask-manifest "
                "export') and run the job on that manifest")

    @property
    def nothing_applied(self) -> str | None:
        """Why the run changed nothing when every task it tried failed (no task id, a refused
        label...), else None: such a run is no success, though no error was fatal."""
        t = self.totals
        if t[FAILED] and not (t[APPLIED] or t[WOULD_APPLY] or t[UNCHANGED] or t[CONFLICT]):
            dry = "to be " if self.dry_run else ""
            if self._no_task_id == t[FAILED]:
                return f"nothing was {dry}applied: {self.missing_task_ids}"
            return f"nothing was {dry}applied: {each_of(t[FAILED], 'task')} failed"
        return None

    def summary(self, again: str | None = None) -> str:
        """The counts, and after a stop its reason and what to do. ``again``: how to send the rest
        after a stop that kept the writes (apply's command; ``run`` says "run the action again")."""
        t = self.totals
        first = WOULD_APPLY if self.dry_run else APPLIED
        text = (f"{'dry run: ' if self.dry_run else ''}{t[first]} {first}, {t[UNCHANGED]} unchanged, "
                f"{t[CONFLICT]} conflicts (skipped), {t[FAILED]} failed, {t[NOT_LABELED]} not labeled")
        if self.fatal:
            text += f"\nstopped: {self.fatal}"
            if self.kept and not self.dry_run:
                again = again or f"run 'totask-manifest apply {self.job_url}' again"
                made = t[APPLIED]  # each answered 2xx
                text += f"; the {counted(made, 'write')} made {agreeing(made, 'is', 'are')} kept: {again} to send the rest"
            if self.not_reached:
                text += (f"\n{counted(self.not_reached, 'line')} not reached: nothing was {'planned' if self.dry_run else 'sent'} "
                         "for them; apply again once the cause is fixed (tasks that hold their label are left alone)")
            if self.rollback is not None:
                text += "\n" + self.rollback.summary()
                if not self.rollback.complete:
                    text += f"\nfinish with: totask-manifest rollback {self.job_url}"
            elif self.rollback_skipped:
                text += f"\nnot rolled back: {self.rollback_skipped}: totask-manifest rollback {self.job_url}"
            elif not self.dry_run and self.sent and not self.kept:
                text += f"\nnot rolled back; undo with: totask-manifest rollback {self.job_url}"
        return text
