"""``totask-manifest stats``: what a manifest holds, per label attribute."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Iterable
from typing import TYPE_CHECKING

import orjson

from ._json_out import print_json
from ._unread import say_unread

if TYPE_CHECKING:
    from .._analytics.stats_tables import AttributeStats


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "stats",
        help="count lines, labels, failures, classes, confidences and boxes in a manifest",
        description="Count what a manifest holds: lines labeled and failed per label attribute, failures by "
        "reason, labels per class, a confidence histogram, boxes per image, human versus machine labels "
        "and the jobs that wrote them. Every line is parsed (exact counts); a local file is split into byte "
        "ranges read by one process per core. Memory does not grow with the file's size.",
    )
    p.add_argument("manifest", metavar="MANIFEST", help="path or URL (s3://, file://, ...) of the manifest")
    p.add_argument("--label-attribute", action="append", dest="label_attributes", metavar="A",
                   help="only this attribute (repeatable; default: every attribute with '<A>-metadata')")
    p.add_argument("--format", choices=["text", "json"], default="text")
    p.add_argument("--workers", type=int, metavar="N",
                   help="processes reading a local file (default: one per CPU; 1 = this process only)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from .._analytics.stats import (  # on use: the CLI starts without the heavy libraries
        format_text,
        manifest_stats,
    )
    from .._manifest.ranges import check_workers
    from .._storage import redact_secret_url

    check_workers(args.workers, "--workers")  # the flag named, before the library names its keyword
    # a --label-attribute no line holds is the ManifestError manifest_stats raises (exit 1, one line)
    stats = manifest_stats(args.manifest, label_attributes=args.label_attributes, workers=args.workers)
    stats = dataclasses.replace(stats, url=redact_secret_url(stats.url))  # printed: no token or password
    if args.format == "json":
        print_json(stats.to_dict(), orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS)
    else:
        sys.stdout.write(format_text(stats))
    # lines that are not JSON objects (a truncated file, say) are invalid data: exit 1, as validate,
    # said on stderr too (the counts may go to a file or a pipe)
    mixed = _say_mixed(stats.attributes.values())
    if stats.invalid_lines:
        say_unread("stats", invalid=stats.invalid_lines, too_long=stats.too_long_lines, figures="the counts")
        return 1
    return 1 if mixed else 0


def _say_mixed(attributes: Iterable[AttributeStats]) -> bool:
    """One line on stderr for each label attribute whose labels declare several task types (invalid
    data, as ``validate`` says of each such line): its counts, printed, mix them. Whether any did."""
    mixed = [a for a in attributes if a.mixed_task_types]
    for a in mixed:
        print(f"totask-manifest stats: error: label attribute {a.name!r} holds labels of {len(a.mixed_task_types)} "
              f"task types ({', '.join(a.mixed_task_types)}): one label attribute holds one task type "
              "[label-attribute-mixed-types] (totask-manifest validate names the lines); its counts mix them",
              file=sys.stderr)
    return bool(mixed)
