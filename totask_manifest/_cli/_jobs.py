"""Options and output shared by the job commands (annotate, chain, clone, resume).

The annotator and engine registries are imported inside the functions that read them: those
import the job layer (fsspec), and the commands call them only through ``CommandParser.defer``
or their handler, so listing the commands (``--help``) or running ``status`` loads neither.
"""

from __future__ import annotations

import argparse
import errno
import sys
from typing import TYPE_CHECKING, Any

from .._errors import UsageError
from .._jobs.status import COMPLETED, INTERRUPTED, STOPPED
from .._task_types import TASK_TYPES
from ._options import add_options, given_flags, read_options
from ._parser import command_at, unrecognized

if TYPE_CHECKING:
    from .._engines.base import Engine
    from .._jobs.config import JobResult


def add_engine_options(parser: argparse.ArgumentParser) -> None:
    """``--engine`` (the registry's engines) and each engine's options as ``--NAME-*`` flags."""
    from .._engines.base import engine_names, engine_options_class

    group = parser.add_argument_group("engine")
    group.add_argument("--engine", choices=engine_names(), default=None,
                       help="where annotation runs (default: local; resume: the job's engine)")
    for name in engine_names():
        add_options(group, engine_options_class(name), prefix=name)


def engine_flags_given(args: argparse.Namespace) -> bool:
    """Whether any engine's own flag was given (``--ray-actors 2``, say)."""
    from .._engines.base import engine_names, engine_options_class

    return any(given_flags(args, engine_options_class(name), prefix=name) for name in engine_names())


def engine_from_args(args: argparse.Namespace, name: str) -> Engine:
    """The engine ``name`` with the options its flags give (flags left unset fall back to the
    engine's environment variables, then its defaults). Another engine's flags (``--ray-actors``
    on a local run) would be dropped without a word: a usage error."""
    from .._engines.base import engine_names, engine_options_class, get_engine

    for engine in engine_names():
        other = given_flags(args, engine_options_class(engine), prefix=engine) if engine != name else []
        if other:
            raise UsageError(f"{', '.join(other)} {'is an option' if len(other) == 1 else 'are options'} of "
                             f"--engine {engine}; this job runs on --engine {name}")
    return get_engine(name, **read_options(args, engine_options_class(name), prefix=name, only_given=True))


def add_keep_going(parser: argparse.ArgumentParser) -> None:
    """``--keep-going``: this run records every failure as final (annotate, chain, resume)."""
    parser.add_argument("--keep-going", action="store_true",
                        help="record every failed line as final instead of stopping when the first lines (or, "
                        "mid-run, 256 in a row) fail with one rule that points at the configuration; for lines "
                        "whose data truly fails so (objects the credentials may not read), which would stop "
                        "every resume. This run only")


def add_job_options(parser: argparse.ArgumentParser, *, required: bool) -> None:
    """Options of a job's configuration. ``required`` is False for chain, which inherits them
    from the previous job (the help says what it really takes when an option is left out)."""
    from .._annotators.base import annotator_names

    inherited = not required
    parser.add_argument("--job-name", required=True, help="name of the (new) job: 1-63 letters, digits, hyphens")
    parser.add_argument(
        "--label-attribute",
        help="attribute the job fills (default: the previous job's attribute when it is STOPPED or FAILED, so "
        "only what it left is labeled; the new job's name when it is COMPLETED, as Ground Truth's console "
        "chains)" if inherited else "attribute the job fills (default: the job name, as Ground Truth)")
    parser.add_argument("--task-type", required=required, choices=sorted(TASK_TYPES), metavar="TASK_TYPE",
                        help="Ground Truth task type without 'groundtruth/': " + ", ".join(sorted(TASK_TYPES))
                        + (" (default: the previous job's)" if inherited else ""))
    parser.add_argument("--method", default="file" if required else None, metavar="METHOD",
                        help=f"annotator: {', '.join(annotator_names())}, or a plugin 'package.module:Class' "
                        + ("(default: the previous job's method, with its options)" if inherited else "(default: file)"))
    parser.add_argument("--output", required=required, metavar="ROOT",
                        help="output root URL; the job lives in ROOT/JOB_NAME/"
                        + (" (default: the previous job's root)" if inherited else ""))
    parser.add_argument("--append", action="append", default=[], metavar="MANIFEST",
                        help="add this manifest's data objects at the end (duplicates skipped); repeatable")
    parser.add_argument("--checkpoint-every", type=int, default=500 if required else None, metavar="N",
                        help="lines per checkpoint (the most work a crash can cost; default 500, "
                        "or the previous job's when chaining)")
    seen: set[str] = set()
    parser.set_defaults(_option_fields=seen)  # what add_method_options adds to later
    for name in annotator_names():
        try:
            add_method_options(parser, name)
        except (UsageError, ImportError):
            continue  # its optional dependencies are missing; it says so when chosen


def finish_job_options(parser: argparse.ArgumentParser, plugins: list[str]) -> None:
    """After ``add_job_options``, once the command line is known: the flags of the plugin
    methods it names (``--method package.module:Class``), then the engine's."""
    for method in plugins:
        add_method_options(parser, method)
    parser.set_defaults(_plugins=list(plugins))
    add_engine_options(parser)


def add_method_options(parser: argparse.ArgumentParser, method: str) -> None:
    """The flags of ``method``'s options, in their own group; a flag another method of this
    parser already added (the fetch options) is shared, not repeated."""
    from .._annotators.base import get_annotator_class

    cls = get_annotator_class(method)
    add_options(parser.add_argument_group(f"--method {method}"), cls.Options,
                seen=parser.get_default("_option_fields"))


def method_options(args: argparse.Namespace, method: str, *, only_given: bool = False) -> dict[str, Any]:
    """``method``'s options from the parsed flags (``only_given``: those whose flags were given).

    A plugin method known only once a job folder is read (chain) reads its flags from the
    arguments the command's parser left over.
    """
    from .._annotators.base import get_annotator_class
    from .._api_checks import check_tuning
    from .._jobs.config import TUNING_OPTIONS
    from .._jobs.plugin_errors import plugin_raised_as_usage

    cls = get_annotator_class(method).Options
    if ":" in method and method not in (getattr(args, "_plugins", None) or ()) and getattr(args, "_argv", None):
        args = _parse_again_with(args, method)
    elif getattr(args, "_unknown", None):
        raise unrecognized(args._parser.prog, args._unknown)
    _refuse_other_methods_flags(args, cls, method)
    # a tuning flag the method does not declare is dropped here, but a value that cannot work is
    # refused as it is for a method that declares it (and by resume), not passed over
    check_tuning(method, {key: getattr(args, key, None) for key in TUNING_OPTIONS})
    with plugin_raised_as_usage(method, "its options"):  # a plugin's Options.__post_init__ or from_cli
        return read_options(args, cls, only_given=only_given)


def _parse_again_with(args: argparse.Namespace, method: str) -> argparse.Namespace:
    """The command line parsed again once ``method``'s flags are added: a plugin known only once
    a job folder is read (chain's inherited method). Reading only what the first parse left over
    would miss a plugin flag argparse took for a prefix of a built-in one (``--url`` for
    ``--url-key``) and then refuse that as another method's flag."""
    parser: argparse.ArgumentParser = args._parser
    add_method_options(parser, method)
    argv = args._argv
    again, rest = parser.parse_known_args(argv[command_at(argv) + 1:])
    if rest:
        raise unrecognized(parser.prog, rest)
    return argparse.Namespace(**(vars(args) | vars(again) | {"_unknown": []}))


def _refuse_other_methods_flags(args: argparse.Namespace, cls: type, method: str) -> None:
    """A flag of another method (``--model`` with ``--method file``, or a chained job's inherited
    method) would be dropped without a word, and the job run without it: a usage error. The
    tuning flags (``--batch-size``, ``--device``...) are any job's, as ``resume`` takes them."""
    from .._jobs.config import TUNING_OPTIONS

    own = {f.name for f, _ in cls.leaves()}
    fields = args._parser.get_default("_option_fields") or ()
    given = [_as_given(action, getattr(args, action.dest)) for action in args._parser._actions
             if action.dest in fields and action.dest not in own and action.dest not in TUNING_OPTIONS
             and getattr(args, action.dest, None) is not None]
    if given:
        inherited = " (the previous job's; --method changes it)" if args.method is None else ""
        raise UsageError(f"{', '.join(given)} {'is not an option' if len(given) == 1 else 'are not options'} "
                         f"of --method {method}{inherited}")


def _as_given(action: argparse.Action, value: Any) -> str:
    """The flag as the command line wrote it: ``--no-fp16`` (a False value) is not ``--fp16``."""
    if isinstance(action, argparse.BooleanOptionalAction) and value is False:
        return action.option_strings[1]
    return action.option_strings[0]


def report(result: JobResult, *, stream=None) -> int:
    """Print how the job ended; its exit code. A terminal gone by then (an ssh session closed under
    a job started with ``disown``: every write fails with EIO) takes nothing of it: the job ended as
    job.json says, and the code is the job's, not an I/O error's. The same for a reader of stdout
    gone (EPIPE) once a signal stopped the job (a SIGHUP as the ssh connection without a terminal
    dropped): the signal ended the job, its code stands, not SIGPIPE's."""
    try:
        _print_result(result, stream or sys.stdout)
    except OSError as exc:
        from . import _stdout_gone, _terminal_gone

        if exc.errno == errno.EIO:
            _terminal_gone()
        elif exc.errno == errno.EPIPE and result.signal:
            _stdout_gone()
        else:
            raise
    if result.status == COMPLETED:
        return 128 + result.signal if result.signal else 0
    if result.status == STOPPED:
        return 128 + (result.signal or 2)
    return 1


def _print_result(result: JobResult, stream) -> None:
    from .._storage import redact_secret_url

    m = result.metrics
    print(f"job {redact_secret_url(result.job_url)}: {result.status}", file=stream)
    print(metrics_line(m), file=stream)
    # the output root may carry user:password@ or a signed query: printed without them
    print(output_manifest_line(result.output_manifest, result.status,
                               shown=redact_secret_url(result.output_manifest), stale=result.output_stale,
                               input_changed=result.input_changed), file=stream)
    failures = failures_line(result.failures_url, result.status, m.get("failed"),
                             shown=redact_secret_url(result.failures_url), stale=result.output_stale)
    if failures is not None:
        print(failures, file=stream)
    if result.error and result.status != COMPLETED:
        # the reason, as ``status`` prints it: a job that failed writing its output manifest
        # (a full disk) said only FAILED, with every line counted a success
        print(f"error: {result.error}", file=stream)
    if result.status == COMPLETED and result.signal:
        # every line was in flight when the signal came, so the job finished them all: the status
        # says so, and the exit code says the run was asked to stop, as the README states
        print(f"signal {result.signal} received: no line was left to stop, so the job completed", file=stream)


def metrics_line(metrics: dict) -> str:
    """``metrics: total=... stand_by=...``, then the labeled lines counted besides their status
    (``warnings``, ``dropped``: ``known_keys.LINE_COUNTS``) where there are any, as job.json and
    ``status`` count them: every job command's summary (annotate, chain, clone, resume) said
    ``success=11`` and not the 2 warnings (boxes past their image) the job had counted."""
    from .._jobs.known_keys import LINE_COUNTS

    counts = ["total", "success", "failed", "routed", "stand_by"]
    counts += [name for name in LINE_COUNTS if metrics.get(name)]
    return "metrics: " + " ".join(f"{name}={metrics.get(name, 0)}" for name in counts)


def runs_lines(runs: list) -> list[str]:
    """``runs: N``, then a line for each run killed before it recorded its end (``INTERRUPTED``):
    job.json's runs as ``status`` shows them (``_jobs.state.runs_as_seen``)."""
    if not runs:
        return []
    from .._jobs.state import interrupted_line

    return [f"runs: {len(runs)}"] + [interrupted_line(number, run) for number, run in enumerate(runs, start=1)
                                     if isinstance(run, dict) and run.get("status") == INTERRUPTED]


def output_manifest_line(url: str, status: str, *, running: bool = False, shown: str | None = None,
                         stale: bool = False, input_changed: bool = False) -> str:
    """``output manifest: URL``, or that it is not written yet: the job's result and ``status``
    say the same (a job another process is ``running`` writes it when it ends; resume would be refused).
    ``shown``: the URL as printed (without its secrets), where ``url`` is the one looked up.
    ``stale``: the last run could not write it, or a run is under way or was killed
    (``state.output_earlier``), so a file there is an earlier run's (before, it was printed as the
    job's output, with metrics counting lines it does not hold). ``input_changed``:
    the last run could not write it because its input changed while it ran, which resume refuses."""
    from .._jobs.state import RESUME_WRITES_IT, RUNNING_WRITES_IT, START_ANEW

    shown = url if shown is None else shown
    then = (RUNNING_WRITES_IT if running else
            f"its input changed while it ran: {START_ANEW}" if input_changed else RESUME_WRITES_IT)
    if stale and status != COMPLETED and _written(url, status):
        return (f"output manifest: {_not_by(running)} ({shown} is an earlier run's, without the "
                f"lines labeled since; {then})")
    if _written(url, status):
        return f"output manifest: {shown}"
    return f"output manifest: not written yet ({shown}; {then})"


def failures_line(url: str, status: str, failed: Any, *, running: bool = False, shown: str | None = None,
                  stale: bool = False) -> str | None:
    """``failures: URL`` where lines failed and the file is there (None otherwise), in the job's
    result and in ``status``. ``stale``: as ``output_manifest_line``; failures.jsonl is put in
    place with the output manifest, so a run that could not write one left the earlier run's
    other too (before, it was printed as the job's, beside metrics counting failures it lacks)."""
    if not failed or not _written(url, status):
        return None
    shown = url if shown is None else shown
    if stale and status != COMPLETED:
        from .._jobs.state import RESUME_WRITES_IT, RUNNING_WRITES_IT

        then = RUNNING_WRITES_IT if running else RESUME_WRITES_IT
        return f"failures: {_not_by(running)} ({shown} is an earlier run's, without the lines failed since; {then})"
    return f"failures: {shown}"


def _not_by(running: bool) -> str:
    """Who has not written the file an earlier run left: the run under way, or the last one."""
    return "not written yet by the running job" if running else "not written by the last run"


def _written(url: str, status: str) -> bool:
    """Whether a job's file is there to be read: a job that did not complete (a full disk, a
    Ctrl-C) may have written none, and a path printed as a result would send the user to
    nothing. A store that cannot say is taken at its word (the path is printed)."""
    if status == COMPLETED:
        return True
    from .._storage import exists

    try:
        return exists(url)
    except Exception:
        return True
