"""``totask-manifest report``: one self-contained HTML page about a job."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report",
        help="write a self-contained HTML report of a job (status, failures, label plots, samples)",
        description="Write one HTML file with the job's status and metrics, its failures, label and confidence "
        "plots and a grid of its own images with the labels drawn on. Everything is inline: the file opens "
        "offline.",
    )
    p.add_argument("job_dir", metavar="JOB_DIR", help="URL of the job folder (<root>/<job name>)")
    p.add_argument("-o", "--output", required=True, metavar="FILE", help="where to write the HTML")
    p.add_argument("--samples", type=int, default=24, metavar="N", help="thumbnails to show (default 24; 0: none)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..analytics.report import write_report  # on use: the CLI starts without the heavy libraries
    result = write_report(args.job_dir, args.output, samples=args.samples)
    print(f"report: {result.output} ({result.samples} samples, {result.failures} failures)")
    return 0
