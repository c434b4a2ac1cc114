"""``totask-manifest chain``: a new job over a previous job's output manifest."""

from __future__ import annotations

import argparse
import functools

from ._jobs import add_job_options, add_keep_going, engine_from_args, method_options, report
from ._terminate import stopped_as_by_ctrl_c


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("chain", help="label what a previous job left, or add a new attribute",
                       description="Chain a job: its input is JOB_DIR's output manifest; options default to the "
                       "previous job's. Label attribute default: the new job name when chained from a COMPLETED "
                       "job, the previous attribute when chained from a STOPPED or FAILED one. With the previous job's "
                       "method, its options carry over: the defaults shown for method options below are those of "
                       "a new job, used here only when the method changes.")
    p.add_argument("job_dir", metavar="JOB_DIR", help="URL of the previous job's folder")
    add_keep_going(p)
    p.defer(functools.partial(add_job_options, p, required=False))  # imports the annotators: only when run
    # options of a plugin method inherited from JOB_DIR are only known once it is read
    p.set_defaults(func=run, _parser=p, _marks_done=True, _accepts_method_options=True)


@stopped_as_by_ctrl_c
def run(args: argparse.Namespace) -> int:
    from .. import _api as api
    from .._jobs.job import Job

    prev = Job.open(args.job_dir).state
    method = args.method or prev.config.method
    result = api.chain(
        args.job_dir,
        args.job_name,
        label_attribute=args.label_attribute,
        output_root=args.output,
        task_type=args.task_type,
        method=method,
        options=method_options(args, method, only_given=True),
        append=args.append,
        checkpoint_every=args.checkpoint_every,
        engine=engine_from_args(args, args.engine or "local"),
        keep_going=args.keep_going,
    )
    return report(result)
