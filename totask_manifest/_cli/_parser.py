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
from collections.abc import Callable, Sequence
from typing import Any

from .._errors import UsageError


class CommandParser(argparse.ArgumentParser):
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
        return super().parse_known_args(args, namespace)

    def format_usage(self) -> str:
        self.complete()
        return super().format_usage()

    def format_help(self) -> str:
        self.complete()
        return super().format_help()


def unrecognized(prog: str, rest: Sequence[str]) -> UsageError:
    """Arguments no parser took, in one line with where help is (``main`` puts the command's
    name before it); argparse's own error printed the whole usage above it."""
    return UsageError(f"unrecognized arguments: {' '.join(rest)}; see '{prog} --help'")


def command_at(argv: Sequence[str]) -> int:
    """Where the command is in a command line: the first word that is not a flag, since the top
    level's own options (``-h``, ``-v``, ``--version``) take no value; ``len(argv)`` if none."""
    return next((i for i, a in enumerate(argv) if not a.startswith("-")), len(argv))
