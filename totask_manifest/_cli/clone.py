"""``totask-manifest clone``: the same job again, from the same input manifest."""

from __future__ import annotations

import argparse
import functools

from ._jobs import add_engine_options, engine_from_args, report


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("clone", help="start over with a previous job's configuration and input",
                       description="Clone a job (Ground Truth cloning): a new job with JOB_DIR's configuration "
                       "(task type, method and its options, checkpointing) over the same input manifest and "
                       "appended manifests, labeling every line again from the start. To continue from what "
                       "JOB_DIR produced instead, use chain; to finish JOB_DIR itself, use resume.")
    p.add_argument("job_dir", metavar="JOB_DIR", help="URL of the job to clone")
    p.add_argument("--job-name", required=True, help="name of the new job")
    p.add_argument("--output", metavar="ROOT", help="output root (default: the cloned job's)")
    p.add_argument("--label-attribute", help="attribute to fill (default: the cloned job's)")
    p.defer(functools.partial(add_engine_options, p))  # imports the engine registry: only when run
    p.set_defaults(func=run, _parser=p, _marks_done=True)


def run(args: argparse.Namespace) -> int:
    from ._terminate import sigterm_as_interrupt

    with sigterm_as_interrupt():  # a SIGTERM while the job starts (its lease, its input's scan) is a Ctrl-C too
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    from .. import _api as api
    from .._jobs.job import Job

    Job.open(args.job_dir)  # a folder that is not a job is refused first
    result = api.clone(
        args.job_dir,
        args.job_name,
        output_root=args.output,
        label_attribute=args.label_attribute,
        engine=engine_from_args(args, args.engine or "local"),
    )
    return report(result)

