"""The ``totask-manifest`` command: a thin shell over the Python API.

Each subcommand lives in its own module here with ``register(subparsers)``; the module's handler
parses nothing itself beyond argparse, calls one library function and turns its result into
output and an exit code. A ``TotaskError`` becomes one line on stderr, never a traceback.

A command loads only what it uses (``validate`` never imports aiohttp, torch or the job layer):
``build_parser`` imports the named command's module alone (all of them only to list them); a
command module imports at its top only what its ``register`` needs (argparse, a few constants)
and the library it calls in its handler; flags read from the annotators' or engines' options are
added through ``CommandParser.defer``, when that command's own arguments are parsed.
"""

from __future__ import annotations

import argparse
import codecs
import contextlib
import errno
import functools
import importlib
import logging
import os
import stat
import sys
import threading
import warnings
from collections.abc import Sequence
from typing import Any

from .. import _signals, _startup
from .._credentials import env_credentials, hide_env_credentials
from .._errors import TotaskError, also_said, backend_error_message, file_size_limit
from .._redaction import escape_undecodable
from ._parser import CommandParser, OneLineParser, command_at, unrecognized
from ._terminate import stops_raised


def _plugin_methods(argv: Sequence[str]) -> list[str]:
    """Plugin annotators named on the command line (``--method pkg.mod:Class``): their options
    must be known before argparse reads the rest. ``--method`` may be abbreviated as argparse
    allows (``--meth``, ``--me=``): no other flag of a job command starts with ``--me``, and
    where a plugin's did, argparse refuses the abbreviation as ambiguous anyway. A value that is not
    valid UTF-8 is left to the parser's refusal of such a name (an import of it named ``'p\\udce9'``)."""
    found = []
    for i, arg in enumerate(argv):
        flag, eq, inline = arg.partition("=")
        if len(flag) < len("--me") or not "--method".startswith(flag):
            continue
        value = inline if eq else (argv[i + 1] if i + 1 < len(argv) else None)
        if value and ":" in value and escape_undecodable(value) == value:
            found.append(value)
    return found


def _version() -> str:
    """The installed distribution's version, else the package's own (a source checkout)."""
    from importlib import metadata

    from .. import __version__

    try:
        return metadata.version("totask-manifest")
    except metadata.PackageNotFoundError:
        return __version__


def _command_modules(argv: Sequence[str]) -> list[str]:
    """The command modules to register (each module is named as its command): only the command's
    own when the command line names one, else all of them, for the command list (``--help``) or
    argparse's "invalid choice" error. The command is the first argument when only ``-v`` comes
    before it; anything else there (``-h``, ``--``, an abbreviation) registers them all, as before."""
    # the folder's files, not ``pkgutil.iter_modules``, which imports ``inspect`` (about 10 ms); as
    # it does, every suffix a module may have: an install without sources (``compileall -b``, then
    # the ``.py`` files removed) or compiled to extensions (mypyc) holds no ``.py`` at all
    # (the suffixes of ``importlib.machinery.all_suffixes``, which is not loaded yet: about 10 ms)
    suffixes = (".py", ".pyc", ".so", ".pyd")
    names = sorted({f.split(".", 1)[0] for f in os.listdir(__path__[0])
                    if f.endswith(suffixes) and not f.startswith("_")})
    named = next((a for a in argv if a not in ("-v", "--verbose")), None)
    return [named] if named in names else names


class _VersionAction(argparse._VersionAction):
    """``--version``, with the version read only when asked for: reading the installed
    distribution's metadata imports ``importlib.metadata`` (tens of ms) that no other command needs."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: object,
                 option_string: str | None = None) -> None:
        self.version = f"totask-manifest {_version()}"  # a command's prog is ``totask-manifest apply``
        super().__call__(parser, namespace, values, option_string)


def build_parser(argv: Sequence[str] = ()) -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="totask-manifest",
        description="Pre-annotate labeling tasks through Ground Truth style augmented manifests.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help=_VERBOSE_HELP)
    parser.add_argument("--version", action=_VersionAction)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=CommandParser)
    sub.required = True
    for name in _command_modules(argv):
        module = importlib.import_module(f"{__name__}.{name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(sub)
    for command in sub.choices.values():
        _add_global_options(command)
    plugins = _plugin_methods(argv)
    for command in sub.choices.values():  # after the command's own deferred flags, when it is run
        command.defer(functools.partial(_finish_job_options, command, plugins))
    return parser


#: ``-v``'s help, before the command and after it alike
_VERBOSE_HELP = "debug logging, every library's too (before or after the command)"


def _add_global_options(command: argparse.ArgumentParser) -> None:
    """The top level's ``-v`` and ``--version`` after the command too (``apply JOB -v``): argparse
    takes a parser's options only before its subcommand, so ``apply JOB -v`` was refused as an
    unrecognized argument. ``SUPPRESS`` leaves ``verbose`` unset unless given here, so a ``-v``
    before the command is not taken back by the command's parser."""
    command.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help=_VERBOSE_HELP)
    command.add_argument("--version", action=_VersionAction, help="show the program's version number and exit")


def _finish_job_options(command: CommandParser, plugins: list[str]) -> None:
    """The plugin methods' and engines' flags of a command that takes ``--method``."""
    if command.get_default("_option_fields") is not None:
        from ._jobs import finish_job_options

        finish_job_options(command, plugins)


def _exit_past_threads_left(code: int) -> None:
    """End the process now when an annotator left a thread running (logged where the job noted
    it): Python's exit would wait for that thread, forever for a worker loop."""
    base = sys.modules.get("totask_manifest._annotators.base")
    if base is None or not any(t.is_alive() for t in base.THREADS_LEFT):
        return
    logging.shutdown()
    with contextlib.suppress(OSError, ValueError):
        sys.stdout.flush()
    with contextlib.suppress(OSError, ValueError):
        sys.stderr.flush()
    os._exit(code)


def main(argv: Sequence[str] | None = None) -> int:
    as_program = argv is None  # the console script, ``python -m``: the process ends after it
    argv = list(sys.argv[1:] if argv is None else argv)
    if as_program:  # what Python prints for the command is masked (``main`` called from Python: the caller's)
        _mask_what_python_prints()
    from .._plugin_output import stdout_routed

    try:
        with stdout_routed():  # what a plugin prints goes to stderr: stdout is the command's output alone
            return _main(argv, as_program)
    finally:
        _startup.restore_default()  # ``main`` called from Python: the process's handlers as they were


def _main(argv: list[str], as_program: bool) -> int:
    """The command with stdout's and stderr's error handlers in place from the first line it may
    print: argparse's own errors (``unrecognized arguments: caf\\xe9/m.manifest``) wrote the
    surrogate ``\\udce9`` when they went in only after parsing."""
    streams_errors = _escape_what_streams_cannot_encode()
    try:
        return _parse_and_run(argv, as_program)
    finally:
        if not as_program:  # ``main`` called from Python: its stdout and stderr as they were
            for stream, errors in streams_errors:
                with contextlib.suppress(AttributeError, ValueError):
                    stream.reconfigure(errors=errors)


def _parse_and_run(argv: list[str], as_program: bool) -> int:
    """The command line parsed, then the command run; its exit code."""
    try:
        parser = build_parser(argv)
        args, unknown = parser.parse_known_args(argv)
    except TotaskError as exc:  # a plugin named by --method that cannot be loaded
        command = next((a for a in argv if not a.startswith("-")), None)  # named as every command's errors
        _say(f"totask-manifest{' ' + command if command else ''}: error: {exc}")
        return exc.exit_code
    if unknown and not getattr(args, "_accepts_method_options", False):
        print(_unrecognized(argv, args.command, unknown), file=sys.stderr)
        return 2
    args._unknown = unknown
    args._argv = argv  # parsed again where a plugin's flags are known only later (chain)
    # our own progress and failure lines at INFO; other libraries (botocore, aiohttp, ray) only
    # when they warn, unless -v asks for everything
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("totask_manifest").setLevel(logging.DEBUG if args.verbose else logging.INFO)
    from .._redaction import ScrubSecrets, quiet_credential_loggers

    if args.verbose:
        quiet_credential_loggers()
    secrets = env_credentials()  # a traceback logged may quote one (a plugin's exception)
    for handler in logging.getLogger().handlers:  # a library's debug line quotes a URL whole
        handler.addFilter(ScrubSecrets(secrets))
    # a Ctrl-C once the command's work is done is noted, not raised (``_signals``): the summary
    # prints whole, the lease is given back, and one line says the work was done before it
    with _signals.after_work(marks=getattr(args, "_marks_done", False), exiting=as_program):
        code = _run(args)
        signum, what = _signals.noted()
        if signum is not None and code == 0:  # a non-zero code says more: it stands
            _say(f"totask-manifest {args.command}: interrupted after {what}; nothing was cut short")
            code = 128 + signum
        if as_program:
            _exit_past_threads_left(code)
        return code


def _run(args: argparse.Namespace) -> int:
    """The command's handler; its exit code, with what it raised said in one line. Until it starts,
    a stop signal ends the process at once (``_startup``): from here it is raised, and each command
    turns it into its own exit (clean-up, one line, 128 + its number)."""
    try:
        with stops_raised():
            code = int(args.func(args) or 0)
            sys.stdout.flush()  # a closed pipe shows here, not at exit
            _signals.ended("its work was done")
        return code
    except BrokenPipeError:  # ``validate ... | head -1``: the reader has all it wanted
        return _stdout_gone()
    except TotaskError as exc:
        _say(f"totask-manifest {args.command}: error: {exc}")
        for note in getattr(exc, "__notes__", ()):  # what came of the error (run: a Synapse job not told of it)
            _say(f"totask-manifest {args.command}: {' '.join(str(note).split())}")  # each a line of its own
        return exc.exit_code
    except OSError as exc:  # a file system refusal not met through storage (a full disk, say)
        where = f": {exc.filename}" if getattr(exc, "filename", None) else ""
        if not where and _stdout_refuses(exc):
            where = ": standard output"
        # a file size limit (``ulimit -f``: ``validate ... > errors.txt``) as every writer says it:
        # the process's limit, to raise; a bare "File too large" sent the user to another folder
        # ``also_said``: what came of it that its text cannot say (a job's lease left unreleased)
        _say(f"totask-manifest {args.command}: error: {file_size_limit(exc) or exc.strerror or exc}{where}"
             f"{also_said(exc)}")
        return 2
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM or SIGHUP where a command turns it into one
        _say(f"totask-manifest {args.command}: interrupted{also_said(exc)}")
        return 128 + int(getattr(exc, "signum", 2))
    except Exception as exc:  # a storage back end's refusal met outside storage (no credentials, ...)
        message = backend_error_message(exc)
        if message is None:
            raise
        _say(f"totask-manifest {args.command}: error: {message}{also_said(exc)}")
        return 2


def _say(line: str) -> None:
    """The command's last line, on stderr, with the environment's credentials masked (an error's
    text may quote what a plugin read: ``importing 'mod' failed: RuntimeError: <token>``). A
    terminal gone by then (closed after a SIGHUP: EIO; a
    pipe whose reader left with the ssh connection: EPIPE) takes nothing of the exit code: the
    line has no reader, and stdout and stderr are pointed at /dev/null (``_terminal_gone``), so
    neither this write nor the interpreter's last flush ends the command with a traceback."""
    try:
        print(hide_env_credentials(line), file=sys.stderr, flush=True)
    except (OSError, ValueError):  # ValueError: a stream closed under the command
        _terminal_gone()


def _mask_what_python_prints() -> None:
    """Python's own reports on stderr (an exception that left the command or a thread, one it could
    not raise, a warning) go through ``hide_env_credentials``: each may quote what a plugin read
    from the environment (``warnings.warn(f"token {token} expires")``, ``raise ...(token)``)."""
    sys.excepthook = _print_masked_traceback
    threading.excepthook = _print_masked_thread_traceback
    sys.unraisablehook = _print_masked_unraisable
    warnings.showwarning = _show_masked_warning


def _show_masked_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                         file: Any = None, line: str | None = None) -> None:
    """``warnings.showwarning`` of the command: Python's text for the warning, masked."""
    stream = file if file is not None else sys.stderr
    if stream is None:  # no stderr at all (pythonw): Python's hook says nothing either
        return
    with contextlib.suppress(OSError, ValueError):
        stream.write(hide_env_credentials(warnings.formatwarning(message, category, filename, lineno, line)))


def _print_masked_traceback(kind: type[BaseException], value: BaseException, tb: object) -> None:
    """``sys.excepthook`` of the command: Python's report of an exception that left it (the tool's
    own bug, a plugin's code that broke where no one-line error was foreseen: its ``Options``
    refusing themselves), with the environment's credentials masked and URLs' secrets cut as in
    the log (``ScrubSecrets``): the exception's text may quote a token the plugin read."""
    import traceback

    from .._redaction import scrub_log_text

    text = scrub_log_text(hide_env_credentials("".join(traceback.format_exception(kind, value, tb))))
    with contextlib.suppress(OSError, ValueError):  # no terminal left to print to
        sys.stderr.write(text)
        sys.stderr.flush()


def _print_masked_thread_traceback(args: Any) -> None:
    """``threading.excepthook`` of the command: a thread's exception (not a job's annotator's, which
    ``_annotators.base.thread_errors`` keeps) printed as Python prints it, masked as above."""
    if issubclass(args.exc_type, SystemExit):  # Python's hook says nothing of it either
        return
    with contextlib.suppress(OSError, ValueError):
        sys.stderr.write(f"Exception in thread {getattr(args.thread, 'name', '?')}:\n")
    _print_masked_traceback(args.exc_type, args.exc_value, args.exc_traceback)


def _print_masked_unraisable(unraisable: Any) -> None:
    """``sys.unraisablehook`` of the command: an exception Python could not raise (a plugin's
    ``__del__``, a generator closed at exit), printed as Python prints it, masked as above."""
    with contextlib.suppress(Exception):  # the object's repr may fail too; Python's hook goes on likewise
        said = f"{unraisable.err_msg or 'Exception ignored in'}: {unraisable.object!r}\n"
        sys.stderr.write(hide_env_credentials(said))
    if unraisable.exc_type is not None:
        _print_masked_traceback(unraisable.exc_type, unraisable.exc_value, unraisable.exc_traceback)


def _escape_what_streams_cannot_encode() -> list[tuple[Any, str]]:
    """A character stdout's encoding cannot hold (a path named ``标注`` on a Latin-1 terminal, a
    Windows console redirected to a cp1252 file) is written as ``\\u6807``, as stderr writes it,
    rather than failing the command after its work is done (``UnicodeEncodeError``); a path's byte
    that is not valid UTF-8 (``caf\\xe9``, which Python's ``surrogateescape`` wrote back raw: no
    character on a UTF-8 terminal) as ``\\xe9`` on stdout and stderr alike (stderr's
    ``backslashreplace`` wrote ``\\udce9``), as ``escape_undecodable`` names it in documents.
    Returns each stream changed with the error mode it replaced, for ``main`` called from Python to
    put back."""
    changed = []
    for stream, modes in ((sys.stdout, ("strict", "surrogateescape")), (sys.stderr, ("backslashreplace",))):
        errors = getattr(stream, "errors", None)
        if errors in modes:
            with contextlib.suppress(AttributeError, ValueError):  # a stream that cannot be reconfigured
                codecs.register_error(_ESCAPE, _escape_unencodable)
                stream.reconfigure(errors=_ESCAPE)
                changed.append((stream, errors))
    return changed


#: the error handler of stdout's and stderr's encodings while a command runs (``_escape_unencodable``)
_ESCAPE = "totask-escape"


def _escape_unencodable(exc: UnicodeError) -> tuple[str, int]:
    """What stdout writes for the characters its encoding cannot: a byte kept as a surrogate as the
    ``\\xNN`` escape ``escape_undecodable`` shows, any other character as ``backslashreplace`` does."""
    if not isinstance(exc, UnicodeEncodeError):
        raise exc
    bad = exc.object[exc.start:exc.end]
    return "".join(escape_undecodable(c) if 0xDC80 <= ord(c) <= 0xDCFF
                   else c.encode("ascii", "backslashreplace").decode("ascii") for c in bad), exc.end


def _stdout_refuses(exc: OSError) -> bool:
    """Whether a write error that names no file (a full disk) was stdout's: stdout is ``/dev/full``
    (a character device that is no terminal) or a file on a file system with no space left. Then
    stdout is pointed at /dev/null, so the interpreter's last flush does not fail again."""
    if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
        return False
    try:
        fd = sys.stdout.fileno()
        mode = os.fstat(fd).st_mode
        full = (stat.S_ISCHR(mode) and not os.isatty(fd)) or (stat.S_ISREG(mode) and os.fstatvfs(fd).f_bavail == 0)
    except (OSError, ValueError):  # stdout without a file descriptor (captured in tests)
        return False
    if full:
        _stdout_gone()
    return full


def _unrecognized(argv: Sequence[str], command: str, unknown: Sequence[str]) -> str:
    """One line for arguments no parser took, under the command they were given to (argparse
    says ``totask-manifest: error:`` for all of them, after a usage line of the top level's).
    The command is where ``command_at`` finds it."""
    at = command_at(argv)
    before = [a for a in unknown if a in argv[:at]]
    after = [a for a in unknown if a not in before]
    if not before:
        return f"totask-manifest {command}: error: {unrecognized(f'totask-manifest {command}', after)}"
    also = f"; after it: {' '.join(after)}" if after else ""
    return (f"totask-manifest: error: unrecognized arguments before the command {command!r}: {' '.join(before)} "
            f"(only -h, -v and --version go there; a command's options go after it){also}; "
            f"see 'totask-manifest --help' and 'totask-manifest {command} --help'")


#: exit code after the reader of stdout went away: a process killed by SIGPIPE, as shells report it
EXIT_BROKEN_PIPE = 128 + 13


def _stdout_gone() -> int:
    """Point stdout at /dev/null so the interpreter's final flush cannot fail again and print
    "Exception ignored ... BrokenPipeError"; the exit code is the one SIGPIPE gives."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # stdout without a file descriptor (captured in tests)
        pass
    return EXIT_BROKEN_PIPE


def _terminal_gone() -> None:
    """Point stdout and stderr at /dev/null once the terminal they wrote to is gone (EIO): what is
    left to say has no reader, and the interpreter's last flush must not fail (exit code 120)."""
    for stream in (sys.stdout, sys.stderr):
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, stream.fileno())
            os.close(devnull)
        except (OSError, ValueError):  # a stream without a file descriptor (captured in tests)
            pass


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
