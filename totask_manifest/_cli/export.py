"""``totask-manifest export``: a Synapse project's tasks as an input manifest."""

from __future__ import annotations

import argparse

from .._errors import counted


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export", help="export a Synapse project's tasks as a manifest",
        description="Write one manifest line per task of a Synapse project: 'source-ref' is the primary file's "
        "URL and 'synapse' holds the task id, data unit, files by specification and a fingerprint of the "
        "task's current data. Credentials come from SYNAPSE_HOST and SYNAPSE_ACCESS_TOKEN (or "
        "SYNAPSE_PLUGIN_RUN_USER_TOKEN with SYNAPSE_PLUGIN_RUN_TENANT), or else from what 'synapse login' "
        "saved in ~/.synapse/config.json.",
    )
    p.add_argument("--project", type=int, required=True, metavar="P", help="Synapse project id")
    p.add_argument("--filter", action="append", default=[], metavar="KEY=VALUE", dest="filters",
                   help="task filter, repeatable, AND-ed: status=pending, status__in=a,b (any of), data_collection=ID, "
                   "assignee=ID or assignee=null (unassigned only), created_at__gte=DATE, created_at__lte=DATE; "
                   "tasks the backend returns that do not match a filter are reported and not exported")
    p.add_argument("--limit", type=int, metavar="N", help="export at most N tasks")
    p.add_argument("--target-specification-name", metavar="S",
                   help="fail unless the data collection has this file specification (the file method's labels)")
    p.add_argument("-o", "--output", required=True, metavar="MANIFEST", help="manifest URL to write (atomically)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from .._jobs.layout import refuse_output_in_job
    from .._synapse.export import (  # on use: the CLI starts without the heavy libraries
        export_tasks,
        parse_filters,
    )
    from ._terminate import sigterm_as_interrupt

    refuse_output_in_job(args.output)  # not in export_tasks: the ToTask action exports into its own job

    with sigterm_as_interrupt():  # a SIGTERM removes the half-written manifest's temporary, as a Ctrl-C does
        result = export_tasks(
            args.project, args.output, filters=parse_filters(args.filters), limit=args.limit,
            target_specification_name=args.target_specification_name,
        )
    # skipped tasks and filters the backend ignored were logged (stderr) by export_tasks as they came
    print(f"exported {counted(result.exported, 'task')} of project {result.project} to {result.output}"
          + (f" ({len(result.skipped)} skipped)" if result.skipped else ""))
    return 0
