"""``totask-manifest run``: the ToTask action from a parameter file (export, annotate, apply)."""

from __future__ import annotations

import argparse
import contextlib
from typing import TYPE_CHECKING

from .._errors import StorageError, TotaskError, UsageError, yaml_error_text
from ._json_out import print_json

if TYPE_CHECKING:
    from .._to_task.params import ToTaskParams


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "run", help="run the ToTask action from a JSON or YAML parameter file",
        description="Run the ToTask action (the guide's parameters: name, project, agent, task_filters, method, "
        "target_specification_name or pre_processor + model, pre_processor_params, ...) as one resumable job "
        "under ROOT/<name>: export the tasks, annotate them, apply the labels. Running it again after a crash "
        "resumes. Prints the result as JSON; exits 0 when it SUCCEEDED.",
    )
    p.add_argument("params", metavar="PARAMS", help="parameter file (.json, .yaml or .yml), any fsspec URL")
    p.add_argument("--output", metavar="ROOT", help="where the job lives (default: $TOTASK_OUTPUT_ROOT or ./totask-jobs)")
    p.add_argument("--concurrency", type=int, default=32, metavar="N", help="Synapse requests in flight (default 32)")
    p.set_defaults(func=run)


def load_params(url: str) -> dict:
    from .._storage import read_bytes  # on use: the CLI starts without fsspec

    try:
        raw = read_bytes(url)
    except StorageError as exc:
        raise UsageError(f"parameter file: {exc}") from None
    is_yaml = url.lower().endswith((".yaml", ".yml"))
    try:
        if is_yaml:
            from .._yaml import load_yaml  # on use: the CLI starts without PyYAML

            params = load_yaml(raw)
        else:
            from .._yaml import load_json  # a key written twice is refused, not the last one kept

            params = load_json(raw)
    except Exception as exc:
        detail = yaml_error_text(exc) if is_yaml else str(exc).splitlines()[0]
        raise UsageError(f"parameter file {url} is not valid {'YAML' if is_yaml else 'JSON'}: {detail}") from None
    if not isinstance(params, dict):
        raise UsageError(f"parameter file {url} must hold an object (mapping) of parameters")
    return params


def check_params(params: dict, url: str) -> ToTaskParams:
    """Invalid parameters are a bad parameter file: one line naming it, exit 2, as the README has it
    for every command; so is a key that is no parameter (ignored, a misspelt one left its default). The action itself gives them as a FAILED result (its SDK caller reads that),
    which ``run`` printed with exit 1. Returns them checked (the job's name, for its folder)."""
    from .._credentials import hide_env_credentials
    from .._redaction import redact_url
    from .._to_task.params import validate_params

    try:
        return validate_params(params, refuse_unknown=True)  # the user's file: a key it does not know is a mistake
    except TotaskError as exc:  # a converter that failed as it loaded is quoted: what it read too
        raise UsageError(f"parameter file {redact_url(url)}: {hide_env_credentials(str(exc))}") from None


def run(args: argparse.Namespace) -> int:
    from .._to_task.action import ToTaskAction, refuse_job_folder
    from .._to_task.runs import SUCCEEDED
    from ._terminate import sigterm_as_interrupt

    try:
        params = load_params(args.params)
        checked = check_params(params, args.params)
        # SIGTERM as Ctrl-C: the export's temporary is removed and the run recorded as interrupted
        # (it stayed RUNNING); the annotation job installs its own handlers while it runs
        action = ToTaskAction(params, output_root=args.output, concurrency=args.concurrency)
        # a root inside a job folder, a job name taken but for letter case: exit 2 before Synapse is
        # asked anything (the action's FAILED result came after its export was written into that job's folder, exit 1)
        refuse_job_folder(action.output_root, checked)
    except TotaskError as exc:
        # refused before the action starts (exit 2, the error's line): the Synapse job of SYNAPSE_JOB_ID is
        # told the same line, as the action tells it of parameters it refuses (told nothing, it stayed PENDING);
        # quickly, once or twice: a job Synapse did not take is a second line after the error, not a minute's wait
        from .._to_task.refused import tell_refused

        _, untold = tell_refused(str(exc))
        if untold:
            exc.add_note(untold)
        raise
    with sigterm_as_interrupt():
        try:
            result = action.start()
        except KeyboardInterrupt:
            # the FAILED result counting what was written, on stdout as every other ending's (a wrapper
            # parses it), before the interrupt's own line and exit code
            if action.last_result is not None:  # stdout gone (a closed ssh session): the exit code is the signal's
                with contextlib.suppress(OSError, ValueError):
                    _print_result(action.last_result)
            raise
    _print_result(result)
    if result["status"] == SUCCEEDED:
        return 0
    return 2 if action.in_use else 1  # a job folder in use: exit 2, as in every command (README)


def _print_result(result: dict) -> None:
    print_json(result)
