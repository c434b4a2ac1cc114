"""The class names of a YOLO folder: what ``classes.txt`` and ``data.yaml`` can hold, and which
names are placeholders.

A YOLO class id is a line position in ``classes.txt`` (one name per line). A name that spans two
lines (``"two\\nlines"``, a ``\\r``, any character ``str.splitlines`` breaks at: U+2028, U+2029,
U+0085 too), that holds another control character (a NUL, ESC, DEL, tab or C1 control:
``class_names.line_problem``), that starts or ends with spaces (the reader strips them), starts
with ``#`` or is written for two ids would read back as other names, or shift every id after it:
the boxes of the folder would then be mislabeled with no error anywhere. So the export refuses
such a name, naming its line and class, before anything is written, and checks the whole names
file and ``data.yaml`` through the readers the import uses (``class_names``): what is written
reads back exactly, or nothing is written. The import refuses what the export refuses, by the
same ``line_problem`` (``read_folder_names``): a round trip never takes in what it cannot give back.

YOLO needs index = id, so ids with no name (a class map 2, 5, 90) get placeholders ``class_<id>``
(``formats.yolo.yolo_names``). They are counted apart (``placeholder classes``), on export and on
import, so that a summary never passes 88 placeholders for classes of the manifest.
"""

from __future__ import annotations

from collections.abc import Sequence

from .._errors import ManifestError, UsageError
from .._formats.class_names import (
    class_name_problem,
    first_line_problem,
    first_name_problem,
    is_yaml_names,
    line_problem,
    names_text,
    parse_class_names,
    read_names_bytes,
)
from .one_id_a_name import IdsByName, where_met

RULE = "yolo-class-name"
#: the largest class id a YOLO folder takes: classes are the lines of ``classes.txt`` (0 to n-1, a
#: placeholder in each gap), so one box of class 99,999,999,999 asked for that many names, and the
#: export grew until the system ran out of memory (id 1,000,000: 1.8 GB, 1 min 41 s, for 2 boxes)
MAX_CLASS_ID = 99_999


def name_problem(name: object) -> str | None:
    """Why ``name`` cannot be one line of ``classes.txt`` that reads back as itself, or None."""
    if (problem := class_name_problem(name)) is not None:  # the rule every reader and export shares
        return problem
    if (problem := line_problem(name)) is not None:  # the rule the import reads classes.txt by too
        return problem
    if name != name.strip():
        return "starts or ends with spaces, which the names file's reader drops"
    if name.startswith("#"):
        return "starts with '#', which a names file refuses (class ids are line positions)"
    return None


def read_folder_names(url: str, file: str) -> list[str]:
    """The class names of a YOLO folder's names file ``file`` (``classes.txt``, ``obj.names``,
    ``data.yaml``) at ``url``. The file is part of the folder converted, the input's data, not an
    option's file: whatever it holds that the readers refuse is the folder's invalid data (exit 1,
    ``yolo-class-name``, before anything is written), as the folder's label files' problems are. A
    blank or ``#`` line, a name given twice, no name or text that is not UTF-8 exited 2, a usage
    error, while a name holding a control character exited 1. A store that cannot read it is exit 2."""
    data = read_names_bytes(url)
    try:
        return _folder_names(names_text(data, file), url, file)
    except UsageError as exc:  # the readers' own rules (``parse_class_names``): said as the folder's data
        raise ManifestError(f"{exc}; nothing was written", rule=RULE) from None


def _folder_names(text: str, url: str, file: str) -> list[str]:
    """``read_folder_names`` of the file's ``text``. A name the export would refuse to write
    (``line_problem``) is refused naming the file and the line a text editor shows it on; in YAML
    or a JSON list, where a name is no line, its class id. Before, a NUL or ESC was read into the
    manifest's class names, and a U+000B split a name in two, shifting the ids after it.

    Only the lines that become class names are checked, each as the reader takes it (``name_lines``:
    stripped, so ``cat<U+000B>`` is ``cat``); the first blank or ``#`` line ends the check, for it is
    no class name: the reader refuses it in its own words, or drops it with the blank lines that end
    the file (a ``#`` comment holding a control character was refused as a class name)."""
    yaml_doc = is_yaml_names(url)
    if (found := first_line_problem(text, yaml_doc)) is not None:
        raise ManifestError(f"{file} line {found[0]}: class name {found[1]!r} {found[2]}; nothing was written",
                            rule=RULE)
    names = parse_class_names(text, file, yaml_doc=yaml_doc)
    if (found := first_name_problem(names)) is not None:
        raise ManifestError(f"{file}: class id {found[0]} name {found[1]!r} {found[2]}; nothing was written",
                            rule=RULE)
    return names


def check_new_class(class_id: str, name: object, ids_by_name: IdsByName, line: int, key: str) -> None:
    """A class met for the first time on ``line``, in its class map ``key`` (``b-metadata.class-map``,
    as validate names it): refused when YOLO's names file cannot hold it. ``ids_by_name`` holds the
    first id of each name met so far, and takes this one's (the rule the COCO export shares:
    ``one_id_a_name``)."""
    digits = class_id.strip()  # as the label's reader takes the key (" 99999999999" is that id)
    if digits.isascii() and digits.isdigit() and int(digits) > MAX_CLASS_ID:
        raise ManifestError(f"class id {digits} is over {MAX_CLASS_ID:,}: YOLO numbers the classes 0 to n-1, a "
                            f"line of classes.txt each, so it would take {int(digits) + 1:,} names; renumber the "
                            f"classes below {MAX_CLASS_ID + 1:,} first; nothing was written",
                            line=line, key=key, rule="yolo-class")
    problem = name_problem(name)
    if problem is None:
        other = ids_by_name.other(name, class_id, line)  # type: ignore[arg-type]  # a str: name_problem said so
        if other is not None:
            problem = (f"is also the name of class id {other[0]} ({where_met(other[1], line)}); a names file gives "
                       "each name one id")
    if problem is not None:
        raise ManifestError(f"class id {class_id} name {name!r} {problem}; nothing was written",
                            line=line, key=key, rule=RULE)


def placeholders(names: Sequence[str], used: set[int] | frozenset[int] = frozenset()) -> int:
    """How many of ``names`` are ``class_<id>`` at their own id and name no class a box uses."""
    return sum(1 for i, n in enumerate(names) if n == f"class_{i}" and i not in used)


def check_round_trip(names: Sequence[str], classes_txt: str, data_yaml: str, key: str) -> None:
    """Both names files read back, through the import's own reader, as ``names`` exactly; a
    refusal names ``key``, the class maps the names came from (``b-metadata.class-map``)."""
    for file, text, yaml_doc in (("classes.txt", classes_txt, False), ("data.yaml", data_yaml, True)):
        try:
            back = parse_class_names(text, file, yaml_doc=yaml_doc)
        except UsageError as exc:
            raise ManifestError(f"{file} would not read back ({exc}); nothing was written", key=key,
                                rule=RULE) from None
        if back != list(names):
            first = next((i for i, (a, b) in enumerate(zip(names, back, strict=False)) if a != b),
                         min(len(names), len(back)))
            was = names[first] if first < len(names) else None
            now = back[first] if first < len(back) else None
            raise ManifestError(f"{file} would not read back as the class names: class id {first} {was!r} would "
                                f"read back as {now!r}; nothing was written", key=key, rule=RULE)
