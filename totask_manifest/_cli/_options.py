"""Any ``Options`` class as command-line flags, and parsed flags back as its values.

The one place the CLI knows how options become flags: built-in annotators, plugins named with
``--method package.module:Class`` and engines all go through ``add_options``/``read_options``,
so a flag's name, help and default come from the field that declares it (``totask_manifest._options``).
"""

from __future__ import annotations

import argparse
from typing import Any

from .._options import Options, option_info


def add_options(parser: argparse.ArgumentParser | Any, cls: type[Options], *, seen: set[str] | None = None,
                prefix: str = "") -> None:
    """Add a flag per field of ``cls`` (nested groups included) to ``parser`` (or an argument group).

    ``prefix`` names an engine: its fields become ``--PREFIX-FIELD`` flags, kept apart from the
    method's (``--ray-batch-size`` is not ``--batch-size``).

    Every flag's argparse default is None, so ``read_options`` tells a given flag from one left
    out; the field's default applies to the latter. ``seen`` holds the fields already added by
    another class sharing the parser (file and inference share the fetch options): each is added once.
    """
    seen = set() if seen is None else seen
    exclusive: dict[str, Any] = {}
    for f, _path in cls.leaves():
        info = option_info(f)
        dest = _dest(f.name, prefix)
        if not info.cli or dest in seen:
            continue
        seen.add(dest)
        target = parser
        if info.exclusive:
            if info.exclusive not in exclusive:
                exclusive[info.exclusive] = parser.add_mutually_exclusive_group()
            target = exclusive[info.exclusive]
        kwargs: dict[str, Any] = {"dest": dest, "default": None, "help": info.help or None}
        if info.action is not None:
            kwargs["action"] = info.action
        flag = _flag(f, prefix)
        if info.metavar is not None:
            kwargs["metavar"] = info.metavar
        elif info.action is None and info.choices is None:  # what argparse shows for a flag named as its value
            kwargs["metavar"] = flag.lstrip("-").replace("-", "_").upper()
        if info.choices is not None:
            kwargs["choices"] = list(info.choices)
        kind = info.type or _inferred_type(f.default)
        if kind is not None and info.action in (None, "append"):
            kwargs["type"] = kind
        target.add_argument(flag, **kwargs)


def read_options(args: argparse.Namespace, cls: type[Options], *, only_given: bool = False,
                 prefix: str = "") -> dict[str, Any]:
    """The options ``cls`` stores (job.json's flat object) from parsed flags.

    ``only_given``: only the options whose value differs from the default (what ``chain`` changes
    in the options it inherits).
    """
    values = {}
    for f, _path in cls.leaves():
        if option_info(f).cli:
            value = getattr(args, _dest(f.name, prefix), None)
            if value is not None:
                values[f.name] = value
    options = cls.from_dict(cls.from_cli(values)).to_dict()
    if only_given:
        defaults = cls().to_dict()
        options = {k: v for k, v in options.items() if defaults.get(k) != v}
    return options


def given_flags(args: argparse.Namespace, cls: type[Options], *, prefix: str = "") -> list[str]:
    """The flags of ``cls``'s options that the command line gave, as they are written."""
    return [_flag(f, prefix) for f, _path in cls.leaves()
            if option_info(f).cli and getattr(args, _dest(f.name, prefix), None) is not None]


def _flag(f: Any, prefix: str) -> str:
    return option_info(f).flag or "--" + _dest(f.name, prefix).replace("_", "-")


def _dest(name: str, prefix: str) -> str:
    return f"{prefix}_{name}" if prefix else name


def _inferred_type(default: Any) -> Any:
    if isinstance(default, bool) or default is None:
        return None
    if isinstance(default, (int, float)):
        return type(default)
    return None
