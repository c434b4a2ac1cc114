"""``totask-manifest annotate``: start a labeling job."""

from __future__ import annotations

import argparse
import functools

from ._jobs import add_job_options, add_keep_going, engine_from_args, method_options, report
from ._terminate import stopped_as_by_ctrl_c


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("annotate", help="start a job that fills a label attribute",
                       description="Start a job: label every line of INPUT that has no value under the label "
                       "attribute (or a failure-reason from an earlier try); every other line passes through.")
    p.add_argument("input", metavar="INPUT", help="input manifest URL (local path, file://, s3://, memory://...)")
    add_keep_going(p)
    p.defer(functools.partial(add_job_options, p, required=True))  # imports the annotators: only when run
    p.set_defaults(func=run, _parser=p, _marks_done=True)


@stopped_as_by_ctrl_c
def run(args: argparse.Namespace) -> int:
    from .. import _api as api
    from .._jobs.config import JobConfig
    from .._manifest.naming import default_label_attribute

    config = JobConfig(
        job_name=args.job_name,
        input=args.input,
        output_root=args.output,
        label_attribute=(default_label_attribute(args.job_name, args.task_type) if args.label_attribute is None
                         else args.label_attribute),
        task_type=args.task_type,
        method=args.method,
        options=method_options(args, args.method),
        checkpoint_every=args.checkpoint_every,
        append=args.append,
    )
    result = api.annotate(config, engine=engine_from_args(args, args.engine or "local"), keep_going=args.keep_going)
    return report(result)
