"""``totask-manifest rollback``: put back the data a job's apply replaced."""

from __future__ import annotations

import argparse
import sys


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
_SAID = {"already": "already as before (nothing sent)"}


def run(args: argparse.Namespace) -> int:
    from .._synapse.rollback import rollback_job  # on use: the CLI starts without the heavy libraries
    from ._terminate import sigterm_as_interrupt
    try:
        with sigterm_as_interrupt():  # a SIGTERM says what to run, as a Ctrl-C does; it ended rollback without a word
            report = rollback_job(args.job, force=args.force, concurrency=args.concurrency)
    except KeyboardInterrupt as exc:  # every restore is journalled: a second rollback goes on from there
        print(f"totask-manifest rollback: interrupted: run 'totask-manifest rollback {args.job}' again to finish "
              "(tasks already restored are left alone)", file=sys.stderr)
        return 128 + int(getattr(exc, "signum", 2))
    for result in report.results:
        status = _SAID.get(result.status, result.status)
        print(f"task {result.task_id}: {status}" + (f" ({result.detail})" if result.detail else ""))
    print(report.summary(), file=sys.stdout if report.complete else sys.stderr)
    return 0 if report.complete else 1
