"""Any ``Options`` class as command-line flags, and parsed flags back as its values.

The one place the CLI knows how options become flags: built-in annotators, plugins named with
``--method package.module:Class`` and engines all go through ``add_options``/``read_options``,
so a flag's name, help and default come from the field that declares it (``totask_manifest._options``).
"""

from __future__ import annotations

import argparse
import re
from typing import Any

from .._errors import UsageError
from .._options import Options, choices_of, given_together, kind_words, mistyped_value, option_info
from .._plugin_output import plugin_code


def add_options(parser: argparse.ArgumentParser | Any, cls: type[Options], *, seen: set[str] | None = None,
                prefix: str = "") -> None:
    """Add a flag per field of ``cls`` (nested groups included) to ``parser`` (or an argument group).

    ``prefix`` names an engine: its fields become ``--PREFIX-FIELD`` flags, kept apart from the
    method's (``--ray-batch-size`` is not ``--batch-size``).

    Every flag's argparse default is None, so ``read_options`` tells a given flag from one left
    out; the field's default applies to the latter. ``seen`` holds the fields already added by
    another class sharing the parser (file and inference share the fetch options): each is added once.

    An ``exclusive`` set is no argparse group: that refused any two of its flags, ``--fast
    --no-slow`` too (``--no-slow`` sets nothing on); ``read_options`` refuses two that set
    something (``given_together``), as the Python API does. The help names the others.
    """
    seen = set() if seen is None else seen
    others = _exclusive_flags(cls, prefix)
    for f, _path in cls.leaves():
        info = option_info(f)
        dest = _dest(f.name, prefix)
        if not info.cli or dest in seen:
            continue
        seen.add(dest)
        help_text = info.help or None
        if others.get(f.name):
            help_text = f"{help_text or ''} (not with {' or '.join(others[f.name])})".lstrip()
        kwargs: dict[str, Any] = {"dest": dest, "default": None, "help": help_text}
        action = info.action if info.action is not None or info.type is not None else _annotated_action(f)
        if action is not None:
            kwargs["action"] = action
        flag = _flag(f, prefix)
        if info.metavar is not None:
            kwargs["metavar"] = info.metavar
        elif action is None and choices_of(f) is None:  # what argparse shows for a flag named as its value
            kwargs["metavar"] = flag.lstrip("-").replace("-", "_").upper()
        choices = choices_of(f)
        if choices is not None:
            kwargs["choices"] = choices
        kind = info.type or _inferred_type(f.default) or _annotated_type(f)
        if kind is not None and action in (None, "append"):
            kwargs["type"] = kind
        parser.add_argument(flag, **kwargs)


def read_options(args: argparse.Namespace, cls: type[Options], *, only_given: bool = False,
                 prefix: str = "") -> dict[str, Any]:
    """The options ``cls`` stores (job.json's flat object) from parsed flags.

    ``only_given``: only the options whose flags were given, whatever their value (what ``chain``
    changes in the options it inherits: a flag giving the default sets an inherited option back).
    """
    values = {}
    for f, _path in cls.leaves():
        if option_info(f).cli:
            value = getattr(args, _dest(f.name, prefix), None)
            if value is not None:
                values[f.name] = value
    with plugin_code():  # a plugin's own Options class may read a file it names, and print
        values = cls.from_cli(values)
    _refuse_mistyped(cls, values, prefix)
    if both := given_together(cls, values):
        flags = {f.name: _flag(f, prefix) for f, _path in cls.leaves()}
        raise UsageError(f"{flags[both[0]]} and {flags[both[1]]} cannot be given together (one or the other)")
    options = cls.from_dict(values).to_dict()
    if only_given:  # a flag given with the default's value counts: it sets an inherited option back
        options = {k: options.get(k, v) for k, v in values.items()}
    return options


def given_flags(args: argparse.Namespace, cls: type[Options], *, prefix: str = "") -> list[str]:
    """The flags of ``cls``'s options that the command line gave, as they are written."""
    return [_flag(f, prefix) for f, _path in cls.leaves()
            if option_info(f).cli and getattr(args, _dest(f.name, prefix), None) is not None]


def _exclusive_flags(cls: type[Options], prefix: str) -> dict[str, list[str]]:
    """For each field of an ``exclusive`` set, the flags of the others in it (for its help)."""
    sets: dict[str, list[tuple[str, str]]] = {}
    for f, _path in cls.leaves():
        info = option_info(f)
        if info.exclusive and info.cli:
            sets.setdefault(info.exclusive, []).append((f.name, _flag(f, prefix)))
    return {name: [flag for other, flag in members if other != name]
            for members in sets.values() for name, _ in members}


def _flag(f: Any, prefix: str) -> str:
    return option_info(f).flag or "--" + _dest(f.name, prefix).replace("_", "-")


def _dest(name: str, prefix: str) -> str:
    return f"{prefix}_{name}" if prefix else name


def _refuse_mistyped(cls: type[Options], values: dict[str, Any], prefix: str) -> None:
    """A flag's value that its field's annotation refuses (a ``list`` option given one string, with
    no ``type`` or ``from_cli`` to make a list of it) is a usage error naming the flag: stored as
    it is, the annotator would get a value of a kind it never declared."""
    flags = {f.name: _flag(f, prefix) for f, _path in cls.leaves()}
    for f, _path in cls.leaves():
        if f.name in values and (wrong := mistyped_value(f, values[f.name])):
            raise UsageError(f"{flags[f.name]}: {wrong}: declared {f.type}, this option cannot be read "
                             "from the command line's text (its author can give it a type=)")


#: the element types a repeatable flag reads (``tuple[str, ...]``, ``list[int]``)
_ELEMENTS = {"str": None, "int": int, "float": float}
_SEQUENCE = re.compile(r"(?:typing\.)?(?:tuple|list|Tuple|List)(?:\[(\w+)(?:, \.\.\.)?\])?")


def _annotated_action(f: Any) -> Any:
    """What a field's annotation says its flag is, where the field names no action nor type:
    ``--name/--no-name`` for a ``bool`` (a flag taking a value stored the text, so ``--fail
    false`` gave the annotator the string ``'false'``, which is true); a repeatable flag
    (``append``) for a ``list`` or a ``tuple[str, ...]`` (one text was refused as no list)."""
    words = kind_words(f)
    if words is not None and set(words) - {"None"} == {"bool"}:
        return argparse.BooleanOptionalAction
    return "append" if _sequence_of(f) is not False else None


def _annotated_type(f: Any) -> Any:
    """``int`` or ``float`` for a field annotated so whose default says nothing (``None``), or a
    sequence of them: the flag's text is read as the number the annotator declared, not handed
    on as a string."""
    element = _sequence_of(f)
    if element is not False:
        return element
    words = set(kind_words(f) or ()) - {"None"}
    return {frozenset({"int"}): int, frozenset({"float"}): float,
            frozenset({"int", "float"}): float}.get(frozenset(words))


def _sequence_of(f: Any) -> Any:
    """The element type a repeatable flag reads for a field annotated as a sequence of one kind
    (``list``, ``list[str]``, ``tuple[int, ...]``, with ``| None``): None for text; False for
    any other annotation (a fixed-size tuple, a list of lists, ``Any``)."""
    words = [w for w in (kind_words(f) or ()) if w != "None"]
    if words not in (["list"], ["tuple"]):
        return False
    text = f.type if isinstance(f.type, str) else str(f.type)
    kinds = [w.strip() for w in text.split("|") if w.strip() not in ("None", "NoneType")]
    got = _SEQUENCE.fullmatch(kinds[0]) if len(kinds) == 1 else None
    if got is None or (got[1] is not None and got[1] not in _ELEMENTS):
        return False
    if kinds[0].startswith(("tuple", "Tuple", "typing.Tuple")) and got[1] is not None and "..." not in kinds[0]:
        return False  # tuple[str]: one element, not a repeatable flag
    return _ELEMENTS.get(got[1]) if got[1] is not None else None


def _inferred_type(default: Any) -> Any:
    if isinstance(default, bool) or default is None:
        return None
    if isinstance(default, (int, float)):
        return type(default)
    return None
