"""Typed options: what an annotator or an engine can be told, declared once.

An ``Options`` subclass is a frozen dataclass whose fields are made with ``option``: the field's
default, its help text and its command-line hints live together, so the CLI builds its flags
from the class (``cli._options``) and a job keeps the values in job.json as a flat JSON object
(``to_dict``/``from_dict``). Groups shared by several annotators (the fetch options) are
composed with ``nested``; their fields sit in the same flat object, under the same keys, so a
job written before a group was split out reads the same.

Example::

    @dataclass(frozen=True)
    class ToyOptions(Options):
        delay: float = option(0.0, help="seconds per line", flag="--toy-delay")
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["OptionInfo", "Options", "choices_of", "given_together", "kind_words", "mistyped", "nested", "option", "path_options",
           "set_aside_by"]

_INFO = "totask_option"
_NESTED = "totask_nested"


@dataclass(frozen=True)
class OptionInfo:
    """What the CLI needs to know about one field (``option``'s keyword arguments)."""

    help: str = ""
    #: the flag; default ``--`` plus the field name with ``-`` for ``_``
    flag: str | None = None
    metavar: str | None = None
    choices: Sequence[Any] | None = None
    #: the flag's argparse type (default: the default's type for int, float and str)
    type: Callable[[str], Any] | None = None
    #: ``store_true``, ``append`` or ``BooleanOptionalAction`` (an ``argparse`` action)
    action: Any = None
    #: flags of one mutually exclusive set share this name
    exclusive: str | None = None
    #: False: kept in job.json but never a flag (set by the job, or by the Python API only)
    cli: bool = True
    #: True: ``to_dict`` leaves the key out while it holds its default (job.json keeps its old shape)
    omit_default: bool = False
    #: the value names a file or folder the annotator reads (read by ``path_options``): a local
    #: one is kept absolute in job.json, so resume and chain work from any folder, and the Ray
    #: engine refuses it on a cluster whose nodes share no disk. A function instead of True makes
    #: the value absolute where the plain path rule does not fit (``--model module:factory``)
    path: bool | Callable[[str], str] = False


def option(
    default: Any = None,
    *,
    help: str = "",
    flag: str | None = None,
    metavar: str | None = None,
    choices: Sequence[Any] | None = None,
    type: Callable[[str], Any] | None = None,
    action: Any = None,
    exclusive: str | None = None,
    cli: bool = True,
    omit_default: bool = False,
    path: bool | Callable[[str], str] = False,
) -> Any:
    """A field of an ``Options`` class: its default plus the help text and CLI hints."""
    info = OptionInfo(help=help, flag=flag, metavar=metavar, choices=choices, type=type, action=action,
                      exclusive=exclusive, cli=cli, omit_default=omit_default, path=path)
    if isinstance(default, (list, dict, set)):
        return field(default_factory=lambda: _copy(default), metadata={_INFO: info})
    return field(default=default, metadata={_INFO: info})


def _copy(value: Any) -> Any:
    return value.copy()


def nested(cls: type[Options]) -> Any:
    """A field holding another options group, whose fields are stored flat beside this class's."""
    return field(default_factory=cls, metadata={_NESTED: True})


def option_info(f: dataclasses.Field) -> OptionInfo:
    return f.metadata.get(_INFO) or OptionInfo()


def is_nested(f: dataclasses.Field) -> bool:
    return _NESTED in f.metadata


def path_options(cls: type[Options], values: Mapping[str, Any]) -> list[tuple[str, str, Callable[[str], str] | None]]:
    """``(key, value, absolute)`` for each option of ``cls`` declared ``option(path=...)`` that
    ``values`` (job.json's flat options object) sets to a non-empty string, in field order.

    The one place that knows which options name files the annotator reads: the job runner makes
    them absolute (with ``absolute``, the option's own function, or the plain path rule when it is
    None) and the Ray engine refuses local ones on a cluster."""
    found = []
    for f, _groups in cls.leaves():
        rule = option_info(f).path
        value = values.get(f.name)
        if rule and isinstance(value, str) and value:
            found.append((f.name, value, rule if callable(rule) else None))
    return found


#: the annotation words ``mistyped`` checks, and the JSON values each admits (an int is a float)
_KINDS: dict[str, tuple[type, ...]] = {"int": (int,), "float": (int, float), "str": (str,), "bool": (bool,),
                                       "dict": (dict,), "list": (list, tuple), "tuple": (list, tuple), "None": ()}


def kind_words(f: dataclasses.Field) -> list[str] | None:
    """A field's annotation as the plain words of ``_KINDS`` (``int | None``: ``["int", "None"]``),
    written as a string (``from __future__ import annotations``) or as types (a plugin module
    without it); None where it holds anything else (``Any``, a class): nothing is checked then."""
    kind = f.type
    text = kind if isinstance(kind, str) else getattr(kind, "__name__", None) if isinstance(kind, type) else str(kind)
    if text is None:
        return None
    words = [w.strip().split("[")[0].removeprefix("typing.") for w in text.split("|")]
    words = ["None" if w == "NoneType" else w for w in words]
    return words if all(w in _KINDS for w in words) else None


def mistyped(cls: type[Options], values: Mapping[str, Any]) -> list[str]:
    """``key must be int, not string 'x'`` for each value the caller gave that its field's
    annotation refuses. ``Options.from_dict`` takes values as they are, so ``{"concurrency": "x"}``
    from the Python API failed as a ValueError deep inside, and ``{"allow_root": ["data"]}`` as a
    TypeError. A null is "not given"; a field annotated with anything but the plain words of
    ``_KINDS`` (``Any``, a class) is not checked."""
    found = []
    for f, _groups in cls.leaves():
        value = values.get(f.name)
        if wrong := mistyped_value(f, value):
            found.append(f"{f.name!r} {wrong}")
    return found


def mistyped_value(f: dataclasses.Field, value: Any) -> str | None:
    """``must be int, not string 'x'`` where the field's annotation (``kind_words``) refuses
    ``value``; None where it takes it, or where the annotation is not checked."""
    from ._errors import json_kind, json_text  # on use: the options module imports nothing at start

    words = kind_words(f)
    if value is None:
        return None
    choices = choices_of(f)
    if choices is not None:  # what argparse's choices refuse on the command line, refused from Python too
        if any(value == c and type(value) is type(c) for c in choices):
            return None
        return f"must be one of {', '.join(json_text(c) for c in choices)}, not {json_text(value)}"
    if words is None:
        return None
    allowed = tuple(t for w in words for t in _KINDS[w])
    if isinstance(value, allowed) and not (isinstance(value, bool) and bool not in allowed):
        return _mistyped_element(f, value) if isinstance(value, (list, tuple)) else None
    wanted = " or ".join(w for w in words if w != "None")
    return f"must be {wanted}, not {json_kind(value)} {json_text(value)}"


#: ``list[int]``, ``tuple[str, ...]``: the one kind of every element
_ELEMENT = re.compile(r"(?:typing\.)?(?:tuple|list|Tuple|List)\[(\w+)(?:, \.\.\.)?\](?: \| None)?")


def _mistyped_element(f: dataclasses.Field, value: list | tuple) -> str | None:
    """``must hold int values, not number 1.5`` for a sequence annotated with one element kind
    (``tuple[int, ...]``, ``list[str]``): ``{"ids": [1.5]}`` was taken for ``tuple[int, ...]``,
    which its flag (``--id 1.5``) refuses."""
    from ._errors import json_kind, json_text

    text = f.type if isinstance(f.type, str) else str(f.type)
    got = _ELEMENT.fullmatch(text.replace("NoneType", "None").strip())
    if got is None or got[1] not in ("int", "float", "str", "bool"):
        return None
    if got[0].removeprefix("typing.").startswith(("tuple", "Tuple")) and "..." not in got[0]:
        return None  # tuple[int]: a fixed size, not checked here
    allowed = _KINDS[got[1]]
    for element in value:
        if not isinstance(element, allowed) or (isinstance(element, bool) and bool not in allowed):
            return f"must hold {got[1]} values, not {json_kind(element)} {json_text(element)}"
    return None


def choices_of(f: dataclasses.Field) -> list[Any] | None:
    """The values a field takes: ``option(choices=...)``, or those of a ``Literal["a", "b"]``
    annotation (a plugin's natural way to say it; it was not checked anywhere, so ``--mode z``
    ran the job with a mode its annotator never declared). None: any value of its kind."""
    info = option_info(f)
    if info.choices is not None:
        return list(info.choices)
    text = (f.type if isinstance(f.type, str) else str(f.type)).strip().removeprefix("typing.")
    if not (text.startswith("Literal[") and text.endswith("]")):
        return None
    import ast

    try:
        return list(ast.literal_eval("(" + text[len("Literal["):-1] + ",)"))
    except (ValueError, SyntaxError):
        return None


def given_together(cls: type[Options], values: Mapping[str, Any]) -> list[str]:
    """The first pair of keys of one ``exclusive`` set that ``values`` both turns on
    (``_turns_on``), for the CLI (``--fast --slow``) and the Python API alike."""
    groups: dict[str, list[str]] = {}
    for f, _groups in cls.leaves():
        group = option_info(f).exclusive
        if group and _turns_on(f, values.get(f.name)):
            groups.setdefault(group, []).append(f.name)
    return next((names[:2] for names in groups.values() if len(names) > 1), [])


def set_aside_by(cls: type[Options], given: Mapping[str, Any]) -> set[str]:
    """The keys of the other members of each ``exclusive`` set that ``given`` turns a member of on:
    ``chain --relative`` of a job started with ``--root`` chooses the other of the set, so the
    inherited ``root`` goes (it was refused beside it, and no flag could unset it)."""
    on = {option_info(f).exclusive for f, _groups in cls.leaves()
          if option_info(f).exclusive and _turns_on(f, given.get(f.name))}
    return {f.name for f, _groups in cls.leaves() if option_info(f).exclusive in on and f.name not in given}


def _turns_on(f: dataclasses.Field, value: Any) -> bool:
    """Whether ``value`` sets an option of an exclusive set: not null, not its default, not a
    bool's off (``--no-slow``: argparse's own group refused ``--fast --no-slow``, also where
    ``--no-slow`` is the default) and no empty list (job.json's ``[]`` for a ``()`` default)."""
    if value is None or value is False or (isinstance(value, (list, tuple)) and not value):
        return False
    default = _default(f)
    if isinstance(default, tuple) and isinstance(value, list):
        value = tuple(value)
    return bool(value != default)


@dataclass(frozen=True)
class Options:
    """Base of every options class: no options (a plugin that declares none takes none)."""

    @classmethod
    def leaves(cls) -> list[tuple[dataclasses.Field, tuple[str, ...]]]:
        """Every plain field, nested groups opened, with the path of groups it sits in."""
        found: list[tuple[dataclasses.Field, tuple[str, ...]]] = []
        for f in dataclasses.fields(cls):
            if is_nested(f):
                sub = f.default_factory  # type: ignore[misc]
                found.extend((g, (f.name, *path)) for g, path in sub.leaves())
            else:
                found.append((f, ()))
        return found

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> Any:
        """Build from job.json's flat options object; keys this class does not know are ignored,
        missing keys take their defaults. Values are taken as they are (no conversion)."""
        data = data or {}
        kwargs: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            if is_nested(f):
                kwargs[f.name] = f.default_factory.from_dict(data)  # type: ignore[misc]
            elif f.name in data and f.init:
                value = data[f.name]
                if value is None and f.default is not dataclasses.MISSING and f.default is not None:
                    continue  # a null stands for "not given": the default
                if isinstance(f.default, tuple) and isinstance(value, list):
                    value = tuple(value)  # JSON has lists; a frozen object keeps tuples
                kwargs[f.name] = value
        return cls(**kwargs)

    @classmethod
    def checked(cls, data: Mapping[str, Any] | None) -> Any:
        """``from_dict`` of values a caller gave (the Python API's ``options``): a value its field's
        annotation refuses is a ``UsageError`` naming the key (``mistyped``), not a ValueError
        from the first ``int()`` that meets it."""
        from ._errors import UsageError

        if wrong := mistyped(cls, data or {}):
            raise UsageError(f"option {wrong[0]}")
        if both := given_together(cls, data or {}):
            raise UsageError(f"options {both[0]!r} and {both[1]!r} cannot be given together (one or the other)")
        return cls.from_dict(data)

    def to_dict(self) -> dict[str, Any]:
        """The flat, JSON-ready object job.json keeps (tuples become lists)."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if is_nested(f):
                out.update(value.to_dict())
                continue
            if option_info(f).omit_default and value == _default(f):
                continue
            out[f.name] = list(value) if isinstance(value, tuple) else value
        return out

    def replace(self, **changes: Any) -> Any:
        """A copy with some fields changed (fields of nested groups by their own names)."""
        return type(self).from_dict({**self.to_dict(), **changes})

    @classmethod
    def from_cli(cls, values: dict[str, Any]) -> dict[str, Any]:
        """Values read from flags, before they are stored: a subclass may add what a flag implies
        (the content of a file it names, say). Default: unchanged."""
        return values


def _default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        return f.default_factory()  # type: ignore[misc]
    return None
