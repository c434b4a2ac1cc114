"""The one reader of class names: ``--class-names`` files, a model's ``class_names`` extra file,
YOLO's ``classes.txt`` / ``obj.names`` / ``data.yaml``.

A class id is a position in the list, so the rule is strict: anything that would shift ids or
make a name ambiguous is refused, not skipped.

* text: one name per line (lines end at ``\\n``: ``name_lines``), surrounding spaces, tabs and
  line breaks dropped (``STRIPPED``), UTF-8 with or without a BOM; blank lines at the end are ignored, a blank line anywhere
  else is an error (the names after it would get the wrong ids), and so is a line starting with
  ``#`` (comments were once skipped in a model's extra file, which shifted the ids after them) and
  a name holding a line break (``line_break``: a U+000B or U+2028 once split it in two); a
  ``--class-names`` file (``read_class_names``) also refuses any control character, as YOLO's own
  names file does (``line_problem``);
* a JSON list of strings (text starting with ``[``);
* YAML with ``names`` (a list, or a mapping from the ids ``0..n-1``), for ``.yaml``/``.yml`` files;
* in every form: at least one name, no empty name and no name twice.

``class_name_problem`` is the one rule of what a class name may be, wherever one is read (a COCO
category, a ``class-map`` or ``class-name`` an export reads, a names file, YOLO's ``classes.txt``):
a string holding a character other than whitespace. ``validate`` says the same through the
schemas (``"pattern": "\\S"``). Before, each reader had its own: a COCO category named
``null`` became the class ``"None"``, and one named ``"   "`` passed the import, ``validate`` and
``--to coco`` and was refused only by ``--to yolo``.

``line_problem`` is the one rule of what a line of YOLO's ``classes.txt`` may hold (no control
character, tab included, no line separator): the YOLO export refuses to write such a name and the
YOLO import refuses to read one, so a round trip never takes in what it cannot give back.

``parse_class_names`` is pure; ``read_class_names`` reads a file through ``storage`` first.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Hashable
from typing import Any

import orjson

from .._errors import StorageError, UsageError, json_text, yaml_error_text
from .._manifest.patterns import SCHEMA_WHITE_SPACE

#: the rule ``class_name_problem`` checks, said after what breaks it
CLASS_NAME_RULE = "a class name is a string with a character other than spaces"
#: the Unicode categories of what no line of a names file holds: control characters (C0 with tab,
#: DEL, C1 with U+0085) and the line and paragraph separators U+2028, U+2029
NOT_IN_A_LINE = frozenset(("Cc", "Zl", "Zp"))


class IdsByName:
    """The first id each class name was met with, and where: the one rule "one class name, one
    id" (a name met under a second id is refused by the caller, in its own words), shared by the
    COCO and YOLO exports (``_analytics.one_id_a_name``, across a manifest's lines), the COCO
    import numbering classes by name (``coco.categories_by_id``, across the ``categories`` list)
    and a Ground Truth label read with class names given (``groundtruth._ids_by_name``, within
    one class map). Each had its own copy of it. A look-up, not a scan of the names met so far
    (a scan made an export of n classes take n squared steps)."""

    def __init__(self) -> None:
        self._first: dict[str, tuple[Hashable, int]] = {}

    def other(self, name: str, class_id: Hashable, at: int) -> tuple[Hashable, int] | None:
        """``name`` met as ``class_id`` at ``at`` (a manifest line, a category's index): the (id,
        ``at``) it was first met with where that id is another, else None (the first is kept)."""
        first = self._first.setdefault(name, (class_id, at))
        return None if first[0] == class_id else first


def class_name_problem(name: object) -> str | None:
    """Why ``name`` is no class name (``"is empty"``, ``"is only spaces"``, ``"is null, not a
    string"``), or None. White space is the schemas' (``SCHEMA_WHITE_SPACE``), so that validate and the
    readers and exports agree on every character."""
    if not isinstance(name, str):
        return f"is {json_text(name)}, not a string"
    if not name.strip(SCHEMA_WHITE_SPACE):
        return "is empty" if name == "" else "is only spaces"
    return None


def line_problem(name: str) -> str | None:
    """Why ``name`` cannot be one line of a names file (YOLO's ``classes.txt``) that every reader
    takes as it is, or None: the one rule of the YOLO export, which refuses to write such a name,
    and of its import, which refuses to read one (before, the import took what the export refused).

    A character ``str.splitlines`` ends a line at (``line_break``) splits the name for Python
    readers and not for ``fgets`` (darknet): the ids after it shift for one of them. Any other
    control character too: a NUL ends the name for C readers, ESC and the C1 controls are invisible
    or mojibake, and a tab inside a name is most likely a hand-written file's mistake (``0<TAB>car``
    pasted from a table) that shows as spaces."""
    if (problem := line_break(name)) is not None:
        return problem
    found = next((c for c in name if unicodedata.category(c) in NOT_IN_A_LINE), None)
    if found is None:
        return None
    return (f"holds the control character U+{ord(found):04X}, which a line-based reader of a names file cuts, "
            "drops or shows as spaces (class id = line position)")


def line_break(name: str) -> str | None:
    """Why ``name`` cannot be one line of a names file for the line break it holds (``\\r``,
    U+000B, U+000C, U+001C to U+001E, U+0085, U+2028, U+2029: where ``str.splitlines`` ends a
    line, an editor or ``fgets`` may not), or None. Every reader of a names file refuses it
    (``_line_names``): split there, the name became two and every id after it shifted."""
    found = next((c for c in name if len(f"a{c}a".splitlines()) == 2), None)
    if found is None:
        return None
    return (f"holds a line break (U+{ord(found):04X}), and a names file holds one name per line "
            "(class id = line position)")


#: what a names file's reader strips from either end of a line: spaces, tabs, and the line breaks
#: of ``line_break`` (a CRLF's ``\r``, U+000B, U+000C, U+001C to U+001E, U+0085, U+2028, U+2029),
#: which shift no id there. Not all that ``str.strip`` strips: U+001F, U+00A0 or U+3000 at a line's
#: end stays in the name, as darknet's ``fgets`` keeps it, so a control character is refused there
#: (``line_problem``) as inside a name (``cat<U+001F>`` was read as ``cat``, and darknet's name is another)
STRIPPED = " \t\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"


def name_lines(text: str) -> list[str]:
    """The lines of a names text (BOM removed) as its readers take them, the one split and strip
    of them all: split at ``\\n`` only, as an editor and ``fgets`` number lines, so that a line
    break of ``str.splitlines`` inside a name stays in it, to be refused (``line_break``), not split
    there (the reader used ``splitlines``: ``ca<U+000B>t`` was two names, every id after them one
    off); each line stripped of ``STRIPPED`` at either end, which shifts no id (``cat<U+000B>`` is ``cat``)."""
    return [line.strip(STRIPPED) for line in text.split("\n")]


def parse_class_names(text: str, source: str, *, yaml_doc: bool = False) -> list[str]:
    """Class names from a names document; ``UsageError`` naming ``source`` when it breaks the rule."""
    text = text.removeprefix("\ufeff")
    stripped = text.strip()
    if yaml_doc:
        names = _yaml_names(text, source)
    elif stripped.startswith("["):
        names = _json_names(stripped, source)
    else:
        names = _line_names(text, source)
    return check_class_names(names, source)


def check_class_names(names: list[str], source: str) -> list[str]:
    """``names`` when they follow the rule every form follows (at least one, no empty name, no
    name twice); ``UsageError`` naming ``source`` otherwise. A model's ``class_names`` attribute
    is checked with it too."""
    if not names:
        raise UsageError(f"{source} holds no class names")
    seen: dict[str, int] = {}
    for i, name in enumerate(names):
        if class_name_problem(name) is not None:
            raise UsageError(f"{source}: class {i} has an empty name")
        if name in seen:
            raise UsageError(f"{source}: class name {name!r} is given twice (ids {seen[name]} and {i})")
        seen[name] = i
    return names


def read_class_names(url: str, option: str | None = "--class-names") -> list[str]:
    """``parse_class_names`` of a file (any storage URL); messages start with ``option`` when given.
    A name holding a control character (``line_problem``: a tab, NUL, ESC...) is refused as YOLO's
    own names file refuses it: only a line break was, so a ``0<TAB>car`` pasted from a table, or a
    NUL, became a class name that the YOLO export then refused, after the job had labeled with it."""
    prefix = f"{option}: " if option else ""
    source, yaml_doc = f"{prefix}{url}", is_yaml_names(url)
    text = read_names_text(url, prefix)
    if (found := first_line_problem(text, yaml_doc)) is not None:
        raise UsageError(f"{source} line {found[0]}: class name {found[1]!r} {found[2]}")
    names = parse_class_names(text, source, yaml_doc=yaml_doc)
    if (found := first_name_problem(names)) is not None:
        raise UsageError(f"{source}: class id {found[0]} name {found[1]!r} {found[2]}")
    return names


def first_line_problem(text: str, yaml_doc: bool) -> tuple[int, str, str] | None:
    """(line number, name, ``line_problem``) of the first line of a names ``text`` in lines whose
    name cannot be a line of a names file, or None (YAML and a JSON list have no name lines:
    ``first_name_problem``). Only the lines that become class names, each as the reader takes it
    (``name_lines``: stripped, so ``cat<U+000B>`` is ``cat``); the first blank or ``#`` line ends the
    check, for it is no class name: the reader refuses it in its own words, or drops it with the
    blank lines that end the file."""
    body = text.removeprefix("\ufeff")
    if yaml_doc or body.strip().startswith("["):
        return None
    for n, name in enumerate(name_lines(body), start=1):
        if not name or name.startswith("#"):
            break
        if (problem := line_problem(name)) is not None:
            return n, name, problem
    return None


def first_name_problem(names: list[str]) -> tuple[int, str, str] | None:
    """(class id, name, ``line_problem``) of the first of ``names`` that cannot be a line of a
    names file, or None: what a YAML or JSON names file is refused for, where a name is no line."""
    return next(((i, name, problem) for i, name in enumerate(names)
                 if (problem := line_problem(name)) is not None), None)


def is_yaml_names(url: str) -> bool:
    """Whether the names file at ``url`` is read as YAML (``data.yaml``), by its suffix."""
    return url.lower().endswith((".yaml", ".yml"))


def read_names_text(url: str, prefix: str = "") -> str:
    """The text of a names file (any storage URL); ``UsageError`` starting with ``prefix`` when it
    cannot be read or is not UTF-8."""
    return names_text(read_names_bytes(url, prefix), f"{prefix}{url}")


def read_names_bytes(url: str, prefix: str = "") -> bytes:
    """The bytes of a names file (any storage URL); ``UsageError`` starting with ``prefix`` when it
    cannot be read. Apart from ``names_text`` for a reader whose file is data, not an option's
    (the YOLO import: ``yolo_classes.read_folder_names``), which classes what the text holds apart
    from a store's refusal."""
    from .._storage import read_bytes

    try:
        return read_bytes(url)
    except StorageError as exc:
        raise UsageError(f"{prefix}{exc}") from None


def names_text(data: bytes, source: str) -> str:
    """``data`` of the names file ``source`` as text; ``UsageError`` naming ``source`` when it is not UTF-8."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise UsageError(f"{source} is not UTF-8 text") from None


def _line_names(text: str, source: str) -> list[str]:
    names = name_lines(text)
    while names and not names[-1]:
        names.pop()
    for i, name in enumerate(names):
        if not name:
            raise UsageError(f"{source} line {i + 1} is blank (class ids are line positions)")
        if name.startswith("#"):
            raise UsageError(f"{source} line {i + 1} starts with '#': a names file has no comments "
                             "(class ids are line positions)")
        if (problem := line_break(name)) is not None:
            raise UsageError(f"{source} line {i + 1}: class name {name!r} {problem}")
    return names


def _json_names(text: str, source: str) -> list[str]:
    try:
        names = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise UsageError(f"{source}: not a JSON list of class names: {exc}") from None
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise UsageError(f"{source}: a JSON class list must hold strings only")
    return names


def _yaml_names(text: str, source: str) -> list[str]:
    import yaml

    from .._yaml import load_yaml

    try:
        doc: Any = load_yaml(text)
    except yaml.YAMLError as exc:
        raise UsageError(f"{source}: not YAML: {yaml_error_text(exc)[:200]}") from None
    names = doc.get("names") if isinstance(doc, dict) else None
    if isinstance(names, dict):
        try:
            ids = sorted(int(k) for k in names)
        except (TypeError, ValueError):
            raise UsageError(f"{source}: the keys of 'names' must be class ids 0..n-1") from None
        if ids != list(range(len(ids))):
            raise UsageError(f"{source}: the keys of 'names' must be class ids 0..{len(ids) - 1}, got {ids}")
        by_id = {int(k): v for k, v in names.items()}
        names = [by_id[i] for i in ids]
    if not isinstance(names, list):
        raise UsageError(f"{source} has no 'names' list")
    return [str(n).strip() for n in names]
