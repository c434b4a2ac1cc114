"""``totask-manifest rollback``: put back the data a job's apply replaced."""

from __future__ import annotations

import argparse
import contextlib
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .._synapse.rollback import RollbackReport


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "rollback", help="restore the Synapse tasks a job's apply changed",
        description="Restore every task the job changed, over all its apply runs, from JOB_DIR/synapse-journal.jsonl "
        "(to the data it held before the job's first write). Idempotent: tasks "
        "already restored are left alone; tasks changed by someone else since are skipped unless --force.",
    )
    p.add_argument("job", metavar="JOB_DIR", help="the job folder (holding synapse-journal.jsonl)")
    p.add_argument("--force", action="store_true", help="restore tasks even if someone changed them since")
    p.add_argument("--concurrency", type=int, default=32, metavar="N", help="tasks in flight (default 32)")
    p.set_defaults(func=run)


#: a status as a line says it: the summary's words ("already" alone reads as a cut line)
_SAID = {"already": "already as before (nothing sent)", "deleted": "deleted in Synapse", "landing": "not restored yet"}


def run(args: argparse.Namespace) -> int:
    # on use: the CLI starts without the heavy libraries
    from .._synapse.rollback import RollbackReport, rollback_job
    from ._terminate import say_interrupted, sigterm_as_interrupt

    so_far = RollbackReport(args.job)  # filled as restores finish: what a Ctrl-C leaves to say
    try:
        with sigterm_as_interrupt():  # a SIGTERM says what to run, as a Ctrl-C does; it ended rollback without a word
            report = rollback_job(args.job, force=args.force, concurrency=args.concurrency, report=so_far)
    except KeyboardInterrupt as exc:  # every restore is journalled: a second rollback goes on from there
        so_far.results.sort(key=lambda r: r.task_id)
        with contextlib.suppress(BrokenPipeError, OSError):  # the reader of stdout gone: the counts are on stderr
            _print_results(so_far)
        counts = so_far.summary() if so_far.planned is not None else "rollback: stopped before any task was read"
        then = _then(so_far, args.job)
        # on stderr, as the summary of any rollback that left tasks to restore
        return say_interrupted("rollback", counts, then, exc, counts_to=sys.stderr)
    _print_results(report)
    print(report.summary(), file=sys.stdout if report.complete else sys.stderr)
    return 0 if report.complete else 1


def _then(so_far: RollbackReport, job: str) -> str:
    """The interrupted line's advice. A restore sent unjournalled (the journal could not be
    written) is waited for by no later run: the user must wait, as the counts say; calling it
    journalled had an apply at once find the job's labels unchanged, then the restores replace them."""
    finish = f"'totask-manifest rollback {job}' again to finish (tasks already restored are left alone)"
    if so_far.unjournalled_in_flight:
        return (f"the counts above are the tasks finished before the stop; the restores sent unjournalled may "
                f"still reach Synapse within a minute, and no journal record makes rollback or apply wait for "
                f"them: wait a minute, then run {finish}")
    return ("the counts above are the tasks finished before the stop; a restore in flight may still reach Synapse "
            f"within a minute (journalled: rollback and apply leave its task alone until then). Run {finish}")


def _print_results(report: RollbackReport) -> None:
    """A line per task, in task order; none for a task that failed with the error that stopped the
    rollback (a refused token: the summary says it once, not once per restore in flight)."""
    for result in report.results:
        if result.fatal:
            continue
        status = _SAID.get(result.status, result.status)
        print(f"task {result.task_id}: {status}" + (f" ({result.detail})" if result.detail else ""))
