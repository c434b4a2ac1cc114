"""``totask-manifest evaluate``: predicted labels against reference labels, and where to review."""

from __future__ import annotations

import argparse
import sys

import orjson

from ._json_out import print_json
from ._unread import say_unread


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate",
        help="compare predicted labels with reference labels (COCO AP, accuracy, IoU) and sweep --review-below",
        description="Compare the predicted attribute with the reference attribute on the same lines: detection "
        "AP at IoU 0.5 and 0.5:0.95 (as pycocotools' COCOeval), precision and recall per class; classification "
        "accuracy, per-class precision and recall and a confusion matrix; semantic segmentation IoU per class. "
        "Sweeps the confidence threshold --review-below would use and suggests one. Lines where either side is "
        "missing, failed or routed are counted apart. Reads the manifest once, in bounded memory.",
    )
    p.add_argument("manifest", metavar="MANIFEST", help="manifest path or URL, or a job folder (its output manifest)")
    p.add_argument("--predicted", metavar="A", help="the attribute to judge (default: in a chained job, the "
                   "attribute of the job that ran a model, not --method file; else the one attribute with "
                   "human-annotated 'no')")
    p.add_argument("--reference", metavar="B", help="the attribute taken as right (default: in a chained job, "
                   "the other job's attribute; else the one attribute with human-annotated 'yes')")
    p.add_argument("--iou", type=float, default=0.5, help="IoU a predicted box needs to match a reference box for "
                   "precision, recall and the sweep (default 0.5)")
    p.add_argument("--share", type=float, default=0.95, metavar="S",
                   help="share of the errors the suggested --review-below must route to review (default 0.95)")
    p.add_argument("--allow-root", metavar="DIR", help="folder local mask files may be read from (segmentation)")
    p.add_argument("--allow-host", action="append", metavar="HOST", help="hosts masks may be fetched from")
    p.add_argument("--workers", type=int, metavar="N",
                   help="processes reading a local file of 16 MiB or more (default: one per CPU; 1 = this process)")
    p.add_argument("--format", choices=["text", "json"], default="text")
    p.set_defaults(func=run, _takes_job_folder=True)  # MANIFEST may be a job folder


def run(args: argparse.Namespace) -> int:
    import os

    from .._analytics.evaluate import evaluate_manifest, format_text  # on use: numpy loads only here
    from .._manifest.ranges import check_workers

    check_workers(args.workers, "--workers")  # the flag named, before the library names its keyword
    fetch = {}
    if args.allow_root:
        fetch["allow_root"] = os.path.abspath(args.allow_root)
    if args.allow_host:
        fetch["allow_hosts"] = list(args.allow_host)
    from .._fetch import check_fetch_options

    check_fetch_options(fetch)  # a host with a port, a root that is no folder: exit 2, before anything is read
    from .._analytics.evaluate.attributes import output_changed_note

    if note := output_changed_note(args.manifest):  # a job's output another hand changed: evaluated, said so
        print(note, file=sys.stderr)
    # a side no line holds is the ManifestError evaluate_manifest raises (exit 1, one line)
    ev = evaluate_manifest(args.manifest, predicted=args.predicted, reference=args.reference, iou=args.iou,
                           share=args.share, fetch_options=fetch or None, workers=args.workers)
    if args.format == "json":
        print_json(ev.to_dict(), orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY)
    else:
        sys.stdout.write(format_text(ev))
    if ev.too_long_lines:  # each kind said, both when both
        say_unread("evaluate", invalid=ev.invalid_lines, too_long=ev.too_long_lines)
        return 1
    if not ev.evaluated:  # said once, on stderr: the report above says why each line was left out
        from .._manifest.io import attributes_seen

        # a misspelt name, usually: say which attributes exist, as stats and validate do
        seen = f" ({attributes_seen(ev.manifest)})" if ev.total_lines > ev.blank_lines else ""
        print(f"totask-manifest evaluate: error: nothing evaluated: no line has comparable labels under both "
              f"{ev.predicted!r} and {ev.reference!r}{seen}", file=sys.stderr)
        return 1
    if ev.invalid_lines:
        # invalid data gives 1 in every command (validate, stats, convert): the figures above leave
        # those lines out, so they are not the whole manifest's
        say_unread("evaluate", invalid=ev.invalid_lines, too_long=0)
        return 1
    return 0
