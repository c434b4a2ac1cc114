"""``totask-manifest resume``: continue a stopped, failed or killed job."""

from __future__ import annotations

import argparse
import functools

from ._jobs import add_engine_options, add_keep_going, engine_flags_given, engine_from_args, report
from ._terminate import stopped_as_by_ctrl_c


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("resume", help="continue a stopped, failed or killed job without redoing finished lines",
                       description="Resume a job that was stopped (Ctrl-C, a signal), failed or killed: lines "
                       "already recorded in its checkpoints are kept, the rest are labeled, and the output "
                       "manifest is written as if the job had never stopped. The input manifest must be "
                       "unchanged (its checksum is compared). Refused (exit 2) while another process runs it; a "
                       "killed run's lease is taken over. Tuning options and --engine may change; what the job "
                       "writes may not. A COMPLETED job has nothing to resume.")
    p.add_argument("job_dir", metavar="JOB_DIR", help="URL of the job folder")
    tuning = p.add_argument_group("tuning (changes how fast the job runs, not what it writes)")
    tuning.add_argument("--concurrency", type=int, metavar="N", help="requests in flight")
    tuning.add_argument("--timeout", type=float, metavar="SECONDS", help="limit for one attempt at one file")
    tuning.add_argument("--retries", type=int, metavar="N", help="further attempts on transient failures")
    tuning.add_argument("--batch-size", type=int, metavar="N", help="images per model call (inference)")
    tuning.add_argument("--device", metavar="DEVICE", help="auto, cpu, cuda, cuda:N or mps (inference)")
    tuning.add_argument("--checkpoint-every", type=int, metavar="N", help="lines per checkpoint part")
    add_keep_going(p)
    p.defer(functools.partial(add_engine_options, p))  # imports the engine registry: only when run
    p.set_defaults(func=run, _marks_done=True)


@stopped_as_by_ctrl_c
def run(args: argparse.Namespace) -> int:
    from .. import _api as api
    from .._jobs.job import Job

    options = {k: getattr(args, k) for k in ("concurrency", "timeout", "retries", "batch_size", "device")}
    engine = args.engine
    if engine is None and engine_flags_given(args):  # they tune the job's own engine
        engine = Job.open(args.job_dir).state.engine
    return report(api.resume(args.job_dir, engine=engine and engine_from_args(args, engine),
                             options={k: v for k, v in options.items() if v is not None},
                             checkpoint_every=args.checkpoint_every, keep_going=args.keep_going))
