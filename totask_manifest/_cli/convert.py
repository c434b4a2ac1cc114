"""``totask-manifest convert``: a manifest to and from Parquet, COCO, YOLO and Synapse task data."""

from __future__ import annotations

import argparse
import sys

from .._analytics import FORMATS
from .._errors import counted
from .._task_types import TASK_TYPES


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "convert",
        help="convert a manifest to/from parquet, coco, yolo, dm-schema-v1, synapse-objects",
        description="Convert between a Ground Truth manifest and another format; one side is always a "
        "manifest. The input format is guessed from IN when --from is not given (.parquet, .json = COCO, "
        "a folder = YOLO, .dm.jsonl / .objects.jsonl = Synapse task data, else a manifest).",
    )
    p.add_argument("input", metavar="IN", help="path or URL to read")
    p.add_argument("output", metavar="OUT", help="path or URL to write (a folder for yolo)")
    p.add_argument("--to", required=True, choices=FORMATS)
    p.add_argument("--from", dest="from_format", choices=FORMATS, help="input format (default: guessed)")
    p.add_argument("--label-attribute", metavar="A",
                   help="attribute to export (default: the only one of a fitting type), or to fill on import")
    p.add_argument("--class-names", metavar="FILE", help="class names file, one per line (or YAML with 'names')")
    p.add_argument("--task-type", choices=sorted(TASK_TYPES), metavar="TASK_TYPE",
                   help="task type of imported labels when the input does not say")
    p.add_argument("--job-name", help="job name written into imported labels' metadata (default: converted)")
    p.add_argument("--image-root", metavar="URL", help="the images' folder: prefixed to image file names on import (COCO, YOLO); "
                   "taken off each source-ref on a COCO export, as readers join it back")
    p.add_argument("--human-annotated", choices=["yes", "no"],
                   help="human-annotated of imported labels (default: 'no' when they carry scores)")
    p.add_argument("--allow-drop", action="store_true",
                   help="let a conversion drop what the target cannot hold (polygons, rotation, attributes, a "
                   "second media...); without it such a line stops the conversion, naming what would be lost")
    p.add_argument("--confidence", action="store_true",
                   help="yolo: add each box's confidence as a 6th column (trainers read 5; default: 5 columns)")
    p.set_defaults(func=run, _marks_done=True)


def run(args: argparse.Namespace) -> int:
    from .._analytics.convert import convert  # on use: the CLI starts without the heavy libraries
    from ._terminate import sigterm_as_interrupt
    with sigterm_as_interrupt():  # a SIGTERM cleans up what the convert made, as a Ctrl-C does
        result = convert(
            args.input, args.output, to=args.to, from_format=args.from_format,
            label_attribute=args.label_attribute, class_names=args.class_names, task_type=args.task_type,
            job_name=args.job_name, image_root=args.image_root, human_annotated=args.human_annotated,
            allow_drop=args.allow_drop, confidence=args.confidence,
        )
    from .._analytics.convert import NOT_JSON_OBJECTS
    from .._storage import redact_secret_url

    bad = result.counts.pop(NOT_JSON_OBJECTS, 0)
    first = result.counts.pop("first", None) if bad else None
    counts = ", ".join(f"{k} {v}" for k, v in result.counts.items())
    print(f"{result.from_format} -> {result.to_format}: {redact_secret_url(result.output)} ({counts})")
    for note in result.notes:  # what was not carried, said in one line each
        print(f"{redact_secret_url(args.input)}: {note}")
    if bad:  # written (each line's bytes kept), but invalid data exits 1, as validate and stats do
        print(f"{redact_secret_url(args.input)}: {counted(bad, 'line')} {'is not a JSON object' if bad == 1 else 'are not JSON objects'} "
              f"(first: line {first}); kept as they are in the Parquet file's raw column; run validate to see why", file=sys.stderr)
        return 1
    return 0
