"""``totask-manifest validate``: check a manifest and list every problem with line, key and rule.

Exit codes: 0 valid (warnings allowed unless ``--strict``), 1 invalid, 2 usage or I/O error.
"""

from __future__ import annotations

import argparse

from ._json_out import print_json


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "validate",
        help="check a manifest against the Ground Truth rules and schemas",
        description=(
            "Check every line of a manifest: JSON and UTF-8, the input rules (source/source-ref, sizes, "
            "'$' keys, duplicate keys), label attribute naming, and each label attribute against its "
            "task type's schema and cross-field rules. Departures from the documented rules that real "
            "Ground Truth output also shows are warnings (errors with --strict)."
        ),
    )
    parser.add_argument("manifest", metavar="MANIFEST", help="path or URL (s3://, file://, memory://, ...)")
    parser.add_argument("--label-attribute", metavar="A",
                        help="check only this attribute (default: every attribute whose -metadata type is known)")
    parser.add_argument("--task-type", metavar="T",
                        help="the task type of the attribute(s) to check (default: from each -metadata type)")
    parser.add_argument("--schema", metavar="NAME",
                        help="check each whole line against this schema instead (e.g. seqlabel, worker-response)")
    parser.add_argument("--format", choices=("text", "json"), default="text", help="report format (default text)")
    parser.add_argument("--strict", action="store_true", help="treat warnings as errors")
    parser.add_argument("--workers", type=int, metavar="N",
                        help="processes for files over 32 MB (default: the number of CPUs)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from .._manifest.ranges import check_workers
    from .._manifest.validate import validate_manifest  # on use: `validate --help` loads no checker

    check_workers(args.workers, "--workers")  # the flag named, before the library names its keyword
    report = validate_manifest(
        args.manifest,
        label_attribute=args.label_attribute,
        task_type=args.task_type,
        schema=args.schema,
        strict=args.strict,
        workers=args.workers,
    )
    if args.format == "json":
        print_json(report.to_dict())
    else:
        for problem in report.problems:
            print(problem)
        print(report.summary())
    return 0 if report.ok else 1
