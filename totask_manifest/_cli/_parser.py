"""A command's parser whose costly flags are added only when that command is the one run.

``build_parser`` registers every command so ``totask-manifest --help`` can list them, but the job
commands' flags come from the annotators' and engines' ``Options`` classes, and reading those
imports the annotators (the Synapse pre-processor pulls in aiohttp) and the job layer (fsspec).
``validate`` or ``stats`` would pay for all that without using it. A command's ``register`` hands
such work to ``defer`` instead; it runs when argparse reaches this command's own arguments (or
when its help or usage is printed), so only the command actually run pays for its flags.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn
from urllib.parse import unquote, urlsplit

from .._errors import UsageError
from .._redaction import escape_undecodable, redact_url

#: what a command's positional names, by its metavar, in the line refusing it empty
_PATH_NAMES = {"INPUT": "input manifest", "IN": "input", "OUT": "output", "MANIFEST": "manifest",
               "JOB_DIR": "job folder", "PARAMS": "parameter file"}


#: the namespace attribute where ``_StoreOnce`` and ``_OnOffOnce`` note what this parse has set
_GIVEN = "_given_once"


def _named(action: argparse.Action) -> str:
    """A flag as the user knows it: its long form (``--output``, not ``-o``)."""
    return max(action.option_strings, key=len)


def _shown(value: Any) -> str:
    """A flag's value as the user wrote it, near enough: ``5`` for ``--timeout 5`` (argparse holds
    ``5.0``), a URL without its user info or query (``--model``, ``--output``)."""
    return f"{value:g}" if isinstance(value, float) else redact_url(str(value))


class _StoreOnce(argparse._StoreAction):
    """A flag that takes one value (argparse's ``store``), refused when given twice: argparse kept
    the last one without a word, so ``--allow-root /data --allow-root v`` read only ``v`` (users
    expected both, as ``--allow-host`` repeats) and ``--job-name a --job-name b`` started ``b``.
    The repeatable flags are ``append`` ones and say so in their help."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        given = namespace.__dict__.setdefault(_GIVEN, {})
        if self.dest in given:
            first, again = (_shown(value) for value in (given[self.dest], values))
            parser.error(f"{_named(self)} given twice ({first}, {again}): give it once")
        given[self.dest] = values
        super().__call__(parser, namespace, values, option_string)


class _OnOffOnce(argparse.BooleanOptionalAction):
    """``--fp16``/``--no-fp16``: either given twice is harmless (the same answer), both together
    contradict each other and are refused, as two values of a ``_StoreOnce`` flag are."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        given = namespace.__dict__.setdefault(_GIVEN, {})
        said = given.setdefault(self.dest, option_string)
        if said != option_string:
            parser.error(f"{said} and {option_string} both given: give one")
        super().__call__(parser, namespace, values, option_string)


class OneLineParser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` whose errors are one line, as every other mistake's.

    argparse's own ``error`` prints the parser's whole usage (25 lines for ``annotate``) above
    its message: a flag given a value of the wrong kind (``--workers 1.5``), a required argument
    left out, an unknown flag or command, a choice not offered. Here the message keeps argparse's
    words (they name the flag and what it takes) and ends with where help is, as ``unrecognized``
    does; the exit code stays argparse's 2, the README's for a usage error. ``--help`` is untouched.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # every flag of every command (argument groups share these) that takes one value takes it once
        for name in (None, "store"):
            self.register("action", name, _StoreOnce)
        self.register("action", argparse.BooleanOptionalAction, _OnOffOnce)

    def parse_known_args(self, args: Sequence[str] | None = None,  # type: ignore[override]
                         namespace: argparse.Namespace | None = None) -> tuple[argparse.Namespace, list[str]]:
        parsed, rest = super().parse_known_args(args, namespace)
        parsed.__dict__.pop(_GIVEN, None)  # this parse's own note, not an argument
        return parsed, rest

    def error(self, message: str) -> NoReturn:
        print(f"{self.prog}: error: {readable(message)}; see '{self.prog} --help'", file=sys.stderr)
        raise SystemExit(UsageError.exit_code)


#: a surrogate that stands for an undecodable byte (``surrogateescape``: U+DC80 to U+DCFF) as
#: ``repr`` writes it, ``\udce9``, after an even number of backslashes (``repr`` doubles a typed one)
_REPR_BYTE = re.compile(r"(?<!\\)((?:\\\\)*)\\udc([89a-f][0-9a-f])")


def readable(message: str) -> str:
    """argparse's ``message`` with a byte that is not valid UTF-8 shown as its ``\\xNN`` escape, as
    ``escape_undecodable`` shows it in every other line (``--workers $'caf\\xe9'``: argparse quotes
    the value with ``repr``, which wrote the surrogate Python keeps the byte as, ``'caf\\udce9'``,
    a character no one typed); a value it quotes with ``%s`` holds the surrogate itself, escaped alike."""
    return escape_undecodable(_REPR_BYTE.sub(r"\1\\x\2", message))


#: options whose value is a path or URL, by metavar: what the refusal of an empty one calls it
_PATH_OPTIONS = {"FILE": "file", "DIR": "folder", "MODEL": "model"}

#: options whose value becomes a name, a key or a host (a label attribute, a job name, a manifest key,
#: a schema, a method or converter, a device, a host allowed, a Ray address, an export filter), by dest:
#: the annotators' ``--url-key``, ``--image-key``, ``--file-label-attribute`` and
#: ``--target-specification-name`` too. Not one of them is a path, so none gets the path's refusal
#: ("rename the file or folder"); ``--allow-host`` is ``allow_host`` in ``report`` and ``evaluate``
_NAME_OPTIONS = frozenset({"label_attribute", "label_attributes", "job_name", "predicted", "reference", "task_type",
                           "schema", "target_specification_name", "url_key", "image_key", "file_label_attribute",
                           "method", "converter", "device", "allow_host", "allow_hosts", "ray_address", "filters"})


class CommandParser(OneLineParser):
    """``argparse.ArgumentParser`` with ``defer(build)``: ``build()`` runs once, in the order
    deferred, before the first parse, help or usage of this parser."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._pending: list[Callable[[], object]] = []

    def defer(self, build: Callable[[], object]) -> None:
        """Add flags with ``build()`` when this parser is first used, not now."""
        self._pending.append(build)

    def complete(self) -> argparse.ArgumentParser:
        """Run the deferred builders (each once); the parser then holds every flag."""
        while self._pending:
            self._pending.pop(0)()
        return self

    def parse_known_args(self, args: Sequence[str] | None = None,  # type: ignore[override]
                         namespace: argparse.Namespace | None = None) -> tuple[argparse.Namespace, list[str]]:
        self.complete()
        parsed, rest = super().parse_known_args(args, namespace)
        self._refuse_empty_paths(parsed)
        self._refuse_undecodable_names(parsed)
        self._refuse_folder_manifests(parsed)
        self._refuse_unwritable_outputs(parsed)
        return parsed, rest

    def _refuse_empty_paths(self, parsed: argparse.Namespace) -> None:
        """An empty path or URL (``''``, or blanks) is the current folder to the file system:
        ``report '' -o r.html`` run inside a job folder reported that folder, ``status ''`` looked
        for ``/job.json``, ``convert IN ''`` said ``cannot write : Is a directory``. The README's
        rule, for every command alike: exit 2, naming the argument. A command's positionals are
        all paths or URLs, and so are ``--output`` (``-o``), ``--append`` and the options whose value
        is a file, a folder or a model (``--class-names ''`` was taken as no class names, exit 0;
        ``--allow-root ''`` made a job that failed for want of one)."""
        for action in self._actions:
            flags = action.option_strings
            if flags and not {"--output", "--append"} & set(flags) and action.metavar not in _PATH_OPTIONS:
                continue
            values = getattr(parsed, action.dest, None)
            for value in values if isinstance(values, list) else [values]:
                if isinstance(value, str) and not value.strip():
                    if flags and action.metavar in _PATH_OPTIONS:
                        what = _PATH_OPTIONS[action.metavar]
                    elif flags:
                        what = "manifest" if "--append" in flags else "output root" if action.metavar == "ROOT" else "output"
                    else:
                        what = _PATH_NAMES.get(str(action.metavar), "path")
                    raise UsageError(f"the {what} ({'/'.join(flags) or action.metavar}) is empty: give a path or URL "
                                     "(an empty one is never taken for the current folder)")

    def _refuse_undecodable_names(self, parsed: argparse.Namespace) -> None:
        """A name or key given with a byte that is not valid UTF-8 (``--label-attribute $'x\\xe9'``:
        Python holds the byte as a surrogate, which no JSON document can hold), refused naming the
        flag and the byte's escape, exit 2, for every command alike. ``stats`` ended in a traceback
        (``UnicodeEncodeError`` building its decoder), the others named the name as ``'x\\udce9'``.
        A path may hold such a byte (its file is read by its bytes); a name is written as text."""
        for action in self._actions:
            if not action.option_strings or action.dest not in _NAME_OPTIONS:
                continue
            values = getattr(parsed, action.dest, None)
            for value in values if isinstance(values, list) else [values]:
                if isinstance(value, str) and (shown := escape_undecodable(value)) != value:
                    raise UsageError(f"{_named(action)} {shown} is not valid UTF-8: a name or key is written as "
                                     "JSON text, which cannot hold that byte; give it in UTF-8")

    def _refuse_folder_manifests(self, parsed: argparse.Namespace) -> None:
        """A local folder given as the manifest a command reads (``INPUT``, ``MANIFEST``, and
        ``convert --from manifest IN``), refused naming its role, as ``--append: is a folder, not a
        file`` names its flag: "is a folder, not a file: /data" alone left the user to find which
        path it was. Exit 2, before anything runs. A command that also takes a job folder there
        (``evaluate``) sets ``_takes_job_folder``; without ``--from``, ``convert`` reads a folder as YOLO."""
        if getattr(parsed, "_takes_job_folder", False):
            return
        for action in self._actions:
            if action.option_strings or not (action.metavar in ("INPUT", "MANIFEST") or (
                    action.metavar == "IN" and getattr(parsed, "from_format", None) == "manifest")):
                continue
            value = getattr(parsed, action.dest, None)
            if isinstance(value, str) and local_folder(value):
                raise UsageError(f"input manifest: is a folder, not a file: {redact_url(value)}")

    def _refuse_unwritable_outputs(self, parsed: argparse.Namespace) -> None:
        """Outputs (``--output``/``-o``, a positional ``OUT``) the command could only seem to write,
        refused before anything runs (exit 2): ``memory://`` lives in this process only (annotate
        printed COMPLETED and the output's path, and nothing was left when the command ended);
        ``http(s)://`` is read-only (annotate ended in ``ClientResponseError: HTTP 501`` without the
        URL, after the job had started); a chained URL (``dir::/tmp``) is resolved link by link, so
        ``labeled -o dir::/tmp/x`` said it wrote ``dir::/tmp/x`` and wrote ``/tmp/x/tmp/x``."""
        for action in self._actions:
            flags = action.option_strings
            if not ("--output" in flags if flags else action.metavar == "OUT"):
                continue
            value = getattr(parsed, action.dest, None)
            if isinstance(value, str) and (problem := unwritable_output(value)):
                raise UsageError(f"the output ({'/'.join(flags) or action.metavar}) {redact_url(value)} {problem}")

    def format_usage(self) -> str:
        self.complete()
        return super().format_usage()

    def format_help(self) -> str:
        self.complete()
        return super().format_help()


#: where the CLI writes: what ``unwritable_output`` names instead
_WRITABLE = "give a local path, file:// or s3://"


def unwritable_output(value: str) -> str | None:
    """Why the CLI cannot write ``value`` (the end of its one-line error), or None. The Python API
    still takes ``memory://`` (the caller's process reads it back)."""
    scheme = value.partition("://")[0].lower() if "://" in value else ""
    if "::" in re.sub(r"\[[^\]]*\]", "", value):  # an IPv6 literal's ``[::1]`` is no chain
        return f"is a chained URL ('::'): an output is one path or URL; {_WRITABLE}"
    if scheme == "memory":
        return f"is memory://, which lives in this process only and is gone when the command ends; {_WRITABLE}"
    if scheme in ("http", "https"):
        return f"is {scheme}://, which is read-only; {_WRITABLE}"
    return None


def local_folder(value: str) -> bool:
    """Whether ``value`` is a path or a ``file://`` URL of this host naming a folder on this machine
    (``s3://`` and the like are left to their store, not asked before the command runs)."""
    parts = urlsplit(value) if "://" in value else None
    if parts is not None and (parts.scheme.lower() != "file" or parts.netloc not in ("", "localhost")):
        return False
    return os.path.isdir(unquote(parts.path) if parts is not None else os.path.expanduser(value))


def unrecognized(prog: str, rest: Sequence[str]) -> UsageError:
    """Arguments no parser took, in one line with where help is (``main`` puts the command's
    name before it); argparse's own error printed the whole usage above it."""
    return UsageError(f"unrecognized arguments: {' '.join(rest)}; see '{prog} --help'")


def command_at(argv: Sequence[str]) -> int:
    """Where the command is in a command line: the first word that is not a flag, since the top
    level's own options (``-h``, ``-v``, ``--version``) take no value; ``len(argv)`` if none."""
    return next((i for i, a in enumerate(argv) if not a.startswith("-")), len(argv))
