"""``totask-manifest apply``: write a finished job's labels to its Synapse tasks."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from .._synapse import DATA_FORMATS, DM_V1, UNCHANGED


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "apply", help="apply a job's labels to Synapse tasks (journalled, idempotent)",
        description="PUT each labeled line's data to its Synapse task. Tasks that already hold the data are "
        "left alone; tasks changed in Synapse since export are skipped unless --force. Every task's previous "
        "data is journalled in JOB_DIR/synapse-journal.jsonl first, so 'rollback' can undo the job. A fatal "
        "error (token refused, project gone, backend down or moved) stops the run and rolls back this run's "
        "writes (earlier runs' writes are kept; 'rollback' undoes every run).",
    )
    p.add_argument("job", metavar="JOB_DIR", help="the job folder (holding job.json)")
    p.add_argument("--dry-run", action="store_true", help="send nothing; print what would change per task")
    p.add_argument("--concurrency", type=int, default=32, metavar="N", help="tasks in flight (default 32)")
    p.add_argument("--force", action="store_true", help="overwrite tasks changed in Synapse since export")
    p.add_argument("--no-rollback", action="store_true",
                   help="after a fatal error, leave this run's writes (undo later with 'rollback')")
    p.add_argument("--data-format", choices=DATA_FORMATS, default=DM_V1,
                   help="task data to send: dm-schema-v1 (default) or synapse-objects (sent with ?schema=any)")
    p.add_argument("--allow-drop", action="store_true",
                   help="leave out what task data cannot hold (a multi-label's scores of classes it does not choose) "
                   "instead of failing the task")
    p.add_argument("--quiet", action="store_true", help="print only changed, conflicting and failed tasks")
    p.set_defaults(func=run, _marks_done=True)


def run(args: argparse.Namespace) -> int:
    from .._synapse.apply import ApplyReport, TaskResult, apply_job  # on use: the CLI starts without httpx
    from . import _stdout_gone

    reader_gone = False
    # what a Ctrl-C leaves to say (apply_job returns no report then): counted, not kept, so that
    # memory does not grow with the tasks
    finished = ApplyReport(args.job, args.dry_run, keep_results=False)

    def show(result: TaskResult) -> None:
        nonlocal reader_gone
        finished.add(result)
        if (reader_gone or (args.quiet and result.status == UNCHANGED) or ApplyReport.without_task_id(result)
                or result.fatal):
            return  # lines without a task id: one line for all of them, below; the stop: in the summary
        try:
            print(result.describe(), flush=False)
        except BrokenPipeError:
            # the reader left (``| head``, a pager quit): printing stops, the apply does not. Raised
            # into apply, this was a fatal error that rolled back every write of the run
            reader_gone = True

    from ._terminate import sigterm_as_interrupt

    try:
        # SIGTERM (``kill``, ``timeout``, ``docker stop``, systemd) as Ctrl-C: it ended apply without
        # a word, though tasks had been written to Synapse
        with sigterm_as_interrupt():
            report = apply_job(
                args.job, dry_run=args.dry_run, concurrency=args.concurrency, force=args.force,
                rollback_on_fatal=not args.no_rollback, data_format=args.data_format, on_result=show,
                keep_results=False, allow_drop=args.allow_drop,
            )
    except KeyboardInterrupt as exc:
        return _interrupted(args, finished, reader_gone, exc)
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        reader_gone = True
    missing = report.missing_task_ids if not (report.ok and report.nothing_applied) else None  # else in the error
    if reader_gone:  # what was done still shows on stderr; the exit code is SIGPIPE's, as elsewhere
        if missing:
            print(missing, file=sys.stderr)
        print(report.summary(), file=sys.stderr)
        if report.ok and report.nothing_applied:
            print(f"totask-manifest apply: error: {report.nothing_applied}", file=sys.stderr)
        return _stdout_gone()
    if missing:
        print(missing)
    print(report.summary(), file=sys.stderr if report.fatal else sys.stdout)
    if report.ok and report.nothing_applied:
        sys.stdout.flush()
        print(f"totask-manifest apply: error: {report.nothing_applied}", file=sys.stderr)
        return 1
    return 0 if report.ok else 1


def _interrupted(args: argparse.Namespace, so_far: Any, reader_gone: bool, exc: KeyboardInterrupt) -> int:
    """Ctrl-C (or SIGTERM where it is one): the counts of the tasks finished before it, then what to
    run. A write in flight may still land, which a second apply finds (and rollback undoes)."""
    from ._terminate import say_interrupted

    so_far_text = so_far.summary()
    if stopped := getattr(exc, "stopped", None):  # the stop's reason, as the summary says it without the signal
        so_far_text += f"\nstopped: {stopped}"
    if args.dry_run:
        then = "nothing was written to Synapse (a dry run)"
    elif getattr(exc, "rollback_cut", False):
        then = (f"the rollback of this run's writes after the stop was interrupted; a restore in flight may still "
                f"reach Synapse. Run 'totask-manifest rollback {args.job}' to finish undoing them")
    else:
        then = (f"the counts above are the tasks finished before the stop; a write in flight may still reach "
                f"Synapse. Run 'totask-manifest apply {args.job}' again to apply the rest (tasks that hold their "
                f"label are left alone), or 'totask-manifest rollback {args.job}' to undo the job's writes")
    return say_interrupted("apply", so_far_text, then, exc, counts_to=sys.stderr if reader_gone else sys.stdout)
