"""``totask-manifest status``: a job's status and metrics."""

from __future__ import annotations

import argparse

from ._jobs import failures_line, output_manifest_line, runs_lines
from ._json_out import print_json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("status", help="print a job's status and metrics",
                       description="Print a job's status (RUNNING, COMPLETED, STOPPED, FAILED), its metrics "
                       "(total, success, failed, routed, stand_by), input and output manifests, and where it was "
                       "chained or cloned from, as read from JOB_DIR/job.json; --format json prints job.json's "
                       "view as JSON. Reads only: safe while the job runs.")
    p.add_argument("job_dir", metavar="JOB_DIR", help="URL of the job folder")
    p.add_argument("--format", choices=["text", "json"], default="text")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from .. import _api as api  # on use: the CLI starts without the job layer
    from .._credentials import env_credentials
    from .._jobs.job import Job
    from .._jobs.known_keys import newer_version_note
    from .._jobs.layout import JobLayout
    from .._jobs.state import input_changed_run, input_text, output_earlier
    from .._redaction import hide_secrets
    from .._storage import map_strings, redact_secret_url

    # job.json keeps what resume needs; stdout never a password (the text's chained/cloned from too),
    # nor a credential of the environment an older version's job.json holds (its parameters, an
    # error quoting it): masked as the log lines mask it (``--format json`` printed it whole)
    raw = api.status(args.job_dir)
    secrets = env_credentials()
    data = map_strings(raw, lambda text: hide_secrets(redact_secret_url(text), secrets))
    if args.format == "json":
        print_json(data)
        return 0
    m = data["metrics"]
    earlier = output_earlier(data["status"], data.get("runs"))  # its files are a run's before (or none)
    lines = [
        f"job: {data['job-name']} ({redact_secret_url(args.job_dir)})",
        f"status: {data['status']}" + (f" (interrupted: {data['interrupted']}; run resume)"
                                         if data.get("interrupted") else ""),
        f"task type: {data['task-type']}   label attribute: {data['label-attribute']}   method: {data['method']}",
        f"input: {input_text(data)}",
        f"output manifest: {data['output-missing']}" if data.get("output-missing") else
        output_manifest_line(raw["output-manifest"], data["status"], running=bool(data.get("holder")),
                             shown=data["output-manifest"], stale=earlier,
                             input_changed=input_changed_run(data.get("runs"))),
        "metrics: " + " ".join(f"{k}={v}" for k, v in m.items()),
    ]
    failures = JobLayout(Job(args.job_dir).folder).failures  # the folder's own (a renamed copy's too)
    failures_text = failures_line(failures, data["status"], m.get("failed"), running=bool(data.get("holder")),
                                  shown=redact_secret_url(failures), stale=earlier)
    if data.get("failures-missing"):  # a COMPLETED job's, deleted or moved: not printed as if there
        failures_text = f"failures: {data['failures-missing']}"
    if failures_text is not None:
        lines.append(failures_text)
    lines += [f"changed: {data[key]}" for key in ("output-changed", "input-changed", "input-missing", "input-unreadable",
                                                  "option-files-changed")
              if data.get(key)]
    if data.get("holder"):
        h = data["holder"]
        lines.append(f"running: pid {h['pid']} on host {h['host']} ({h['command']}), "
                     f"last heartbeat {h['heartbeat-age-s']:g} s ago")
    lines += [f"interrupted: {data[key]}" for key in ("apply-interrupted", "rollback-interrupted") if data.get(key)]
    lines += runs_lines(data.get("runs") or [])
    if data.get("damaged"):
        lines.append(f"damaged: {data['damaged']}")
    if data.get("missing"):
        lines.append(f"missing: {data['missing']}")
    if data.get("chained-from"):
        lines.append(f"chained from: {data['chained-from']}")
    if data.get("cloned-from"):
        lines.append(f"cloned from: {data['cloned-from']}")
    if data.get("error"):
        lines.append(f"error: {data['error']}")
    if data.get("misnamed"):
        lines.append(f"note: {data['misnamed']}")
    if data.get("unknown-keys"):
        lines.append(f"note: {newer_version_note(data['unknown-keys'])}")
    print("\n".join(lines))
    return 0

