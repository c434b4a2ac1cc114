"""``totask-manifest resume``: continue a stopped, failed or killed job."""

from __future__ import annotations

import argparse

from .. import api
from ._jobs import add_engine_options, engine_options, report


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("resume", help="continue a stopped, failed or killed job without redoing finished lines",
                       description="Resume a job that was stopped (Ctrl-C, a signal), failed or killed: lines "
                       "already recorded in its checkpoints are kept, the rest are labeled, and the output "
                       "manifest is written as if the job had never stopped. The input manifest must be unchanged "
                       "(its checksum is compared). The job keeps its name, folder and configuration; --engine and the Ray options may be changed (default: the job's engine). "
                       "A COMPLETED job has nothing to resume.")
    p.add_argument("job_dir", metavar="JOB_DIR", help="URL of the job folder")
    add_engine_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    return report(api.resume(args.job_dir, engine=args.engine, engine_options=engine_options(args)))
