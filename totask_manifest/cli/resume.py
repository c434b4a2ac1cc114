"""``totask-manifest resume``: continue a stopped, failed or killed job."""

from __future__ import annotations

import argparse

from .. import api
from ._jobs import add_engine_options, engine_options, report


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("resume", help="continue a stopped, failed or killed job without redoing finished lines")
    p.add_argument("job_dir", metavar="JOB_DIR", help="URL of the job folder")
    add_engine_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    return report(api.resume(args.job_dir, engine=args.engine, engine_options=engine_options(args)))
