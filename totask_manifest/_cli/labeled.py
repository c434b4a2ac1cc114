"""``totask-manifest labeled``: only the lines that hold a label, for code that indexes ``line[attr]``."""

from __future__ import annotations

import argparse
import sys

from ._json_out import print_json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "labeled",
        help="write a manifest of only the lines holding a label under an attribute",
        description="Write a manifest of only the lines that hold a label under the attribute, for training "
        "scripts and conversion kits that read line[attribute] and fail on failed or unlabeled lines. Kept lines "
        "are copied byte for byte; the lines left out are counted by reason: failed (a failure-reason), routed "
        "(left for human review), missing (no value), blank. The output is written atomically to any path or "
        "URL; nothing is written when no line holds a label.",
    )
    p.add_argument("manifest", metavar="MANIFEST", help="path or URL (s3://, file://, ...) of the manifest")
    p.add_argument("--label-attribute", required=True, metavar="A", help="the attribute whose labels to keep")
    p.add_argument("-o", "--output", required=True, metavar="OUT", help="path or URL of the manifest to write")
    p.add_argument("--format", choices=["text", "json"], default="text", help="how to print the summary")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from .._analytics.labeled_only import labeled_only
    from ._terminate import sigterm_as_interrupt

    with sigterm_as_interrupt():  # a SIGTERM removes the half-written output's temporary, as a Ctrl-C does
        result = labeled_only(args.manifest, args.output, args.label_attribute)
    if (note := result.moved_note()) is not None:
        print(note, file=sys.stderr)
    if args.format == "json":
        print_json(result.to_dict(), 0)
    else:
        print(result.summary())
    return 0
