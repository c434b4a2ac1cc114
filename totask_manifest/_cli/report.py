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
    p.add_argument("--allow-root", metavar="DIR",
                   help="the folder local images may be read from (default: the job's own --allow-root; "
                   "without one, local images are not shown)")
    p.add_argument("--allow-host", action="append", metavar="HOST",
                   help="fetch images only from these hosts (default: the job's own --allow-host); repeatable")
    p.add_argument("--max-body-bytes", type=int, metavar="BYTES", help="largest image file read (default: the job's)")
    p.add_argument("--max-image-pixels", type=int, metavar="N",
                   help="pixel budget per image (default: the job's, else 16,777,216)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import os

    from .._analytics.report import write_report  # on use: the CLI starts without the heavy libraries
    from .._errors import counted
    from .._fetch import check_fetch_options
    from .._imaging import check_budget

    fetch_options = {
        "allow_root": os.path.abspath(args.allow_root) if args.allow_root else None,
        "allow_hosts": list(args.allow_host or []),
        "max_body_bytes": args.max_body_bytes,
    }
    check_fetch_options(fetch_options)
    if args.max_image_pixels is not None:
        check_budget(args.max_image_pixels)
    from ._terminate import sigterm_as_interrupt

    with sigterm_as_interrupt():  # a SIGTERM removes the half-written page's temporary, as a Ctrl-C does
        result = write_report(args.job_dir, args.output, samples=args.samples, fetch_options=fetch_options,
                              max_image_pixels=args.max_image_pixels)
    print(f"report: {result.output} ({counted(result.samples, 'sample')}, {counted(result.failures, 'failure')})")
    if result.job_json_problem:
        # the page is there (read defensively), but a damaged job.json is invalid data: exit 1, as in
        # status, resume, chain, clone, apply and evaluate
        import sys

        print(f"totask-manifest report: error: {result.job_json_problem}", file=sys.stderr)
    if result.invalid_lines:  # a truncated output manifest: invalid data, exit 1, as stats says it
        from ._unread import say_unread

        say_unread("report", invalid=result.invalid_lines, too_long=result.too_long_lines,
                   figures="the page's figures")
    return 1 if result.job_json_problem or result.invalid_lines else 0
