"""What validation reports: one broken rule (``Problem``), per-attribute counts, the report of a
whole manifest, and the collectors problems are handed to (``sink.add``). Kept apart from the
checks so that a job checking one label imports no manifest machinery."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Literal

from .._errors import counted
from .._storage import redact_secret_url

Severity = Literal["error", "warning"]


@dataclass(frozen=True, slots=True)
class Problem:
    """One broken rule. ``line`` is None for a label checked outside a manifest."""

    line: int | None
    key: str
    rule: str
    message: str
    severity: Severity = "error"

    def __str__(self) -> str:
        where = f"line {self.line}" if self.line is not None else "label"
        key = f" {self.key}:" if self.key else ""
        return f"{where}: {self.severity}:{key} {self.message} [{self.rule}]"

    def to_dict(self) -> dict:
        return asdict(self)



class ListSink:
    """Keeps every problem (one label or one line: few)."""

    def __init__(self) -> None:
        self.problems: list[Problem] = []

    def add(self, line: int | None, key: str, rule: str, message: str, severity: Severity = "error") -> None:
        self.problems.append(Problem(line, key, rule, message, severity))


@dataclass
class AttributeStats:
    """What one label attribute holds across the file."""

    task_types: list[str] = field(default_factory=list)
    labeled: int = 0
    failed: int = 0
    #: left unlabeled for human review (``review-status: routed``, this tool's extension)
    routed: int = 0
    invalid: int = 0

    def merge(self, other: AttributeStats) -> None:
        for t in other.task_types:
            if t not in self.task_types:
                self.task_types.append(t)
        self.labeled += other.labeled
        self.failed += other.failed
        self.routed += other.routed
        self.invalid += other.invalid


@dataclass
class ValidationReport:
    url: str
    lines: int = 0
    blank_lines: int = 0
    #: lines without the requested label attribute (only counted with ``label_attribute``)
    unlabeled: int = 0
    errors: int = 0
    warnings: int = 0
    #: the first ``max_problems`` problems, in line order
    problems: list[Problem] = field(default_factory=list)
    #: how many problems each rule produced, all of them (also those not kept)
    counts_by_rule: dict[str, int] = field(default_factory=dict)
    attributes: dict[str, AttributeStats] = field(default_factory=dict)
    schema: str | None = None
    strict: bool = False

    @property
    def ok(self) -> bool:
        return self.errors == 0

    @property
    def problems_dropped(self) -> int:
        return self.errors + self.warnings - len(self.problems)

    def summary(self) -> str:
        verdict = "valid" if self.ok else "INVALID"
        counts = ", ".join(counted(n, noun, grouped=True) for n, noun in ((self.lines, "line"), (self.errors, "error"),
                                                                           (self.warnings, "warning")))
        parts = [f"{redact_secret_url(self.url)}: {verdict}: {counts}"]
        if self.blank_lines:
            parts.append(f"  blank lines: {self.blank_lines:,}")
        if self.schema:
            parts.append(f"  every line checked against schema {self.schema!r}")
        for name, stats in sorted(self.attributes.items()):
            types = f" ({', '.join(stats.task_types)})" if stats.task_types else ""  # only failed or routed lines
            parts.append(
                f"  attribute {name!r}{types}: {stats.labeled:,} labeled, {stats.failed:,} failed, "
                + (f"{stats.routed:,} routed to review, " if stats.routed else "")
                + f"{counted(stats.invalid, 'line', grouped=True)} with errors"
            )
        if self.unlabeled:
            parts.append(f"  lines without the label attribute: {self.unlabeled:,}")
        if self.counts_by_rule:
            counts = ", ".join(f"{rule} {n:,}" for rule, n in sorted(self.counts_by_rule.items()))
            parts.append(f"  problems by rule: {counts}")
        if self.problems_dropped > 0:
            parts.append(f"  ({self.problems_dropped:,} more problems not listed)")
        return "\n".join(parts)

    def to_dict(self) -> dict:
        return {
            "url": redact_secret_url(self.url),  # printed: no password, token or signature
            "ok": self.ok,
            "lines": self.lines,
            "blank_lines": self.blank_lines,
            "unlabeled": self.unlabeled,
            "errors": self.errors,
            "warnings": self.warnings,
            "schema": self.schema,
            "strict": self.strict,
            "problems": [p.to_dict() for p in self.problems],
            "problems_dropped": self.problems_dropped,
            "counts_by_rule": dict(sorted(self.counts_by_rule.items())),
            "attributes": {k: asdict(v) for k, v in sorted(self.attributes.items())},
        }



class ClassNames:
    """One label attribute's class names as first met (``line_rules.CLASS_NAMES``): each id's
    first name and its line (``named``, ``lines``), each name's first id and its line (``ids``,
    ``name_lines``), and the hot paths' view of the pairs that hold both ways (an id under its
    first name, that name under its first id): by integer (``by_id``: the typed path decodes
    class-map keys so, and a class index label is one) and by digits (``by_key``: class-map keys
    as ``orjson`` reads them). Two views of one table so that each path's test of a line is one
    C-level look-up (``cm.items() <= by_key.items()``), not a conversion a key; a pair that breaks
    either way is never in them, so every line naming it takes the per-line path and is said."""

    __slots__ = ("by_id", "by_key", "ids", "lines", "name_lines", "named")

    def __init__(self) -> None:
        self.by_id: dict[int, str] = {}
        self.by_key: dict[str, str] = {}
        self.named: dict[int, str] = {}
        self.lines: dict[int, int] = {}
        self.ids: dict[str, int] = {}
        self.name_lines: dict[str, int] = {}

    def note(self, class_id: int, name: str, line: int) -> None:
        """``class_id`` named ``name`` on ``line``: each side noted where it is met first, the pair
        added to the views where it holds both ways. Why only here: the hot paths send the per-line
        path only pairs the views lack, so the name side costs nothing on a clean line."""
        self.note_id(class_id, name, line)
        self.note_name(name, class_id, line)

    def note_id(self, class_id: int, name: str, line: int) -> None:
        """``class_id`` first named ``name`` on ``line`` (kept if it was named before)."""
        if class_id not in self.named:
            self.named[class_id] = name
            self.lines[class_id] = line
            self._view(class_id, name)

    def note_name(self, name: str, class_id: int, line: int) -> None:
        """``name`` first given to ``class_id`` on ``line`` (kept if it was given before)."""
        if name not in self.ids:
            self.ids[name] = class_id
            self.name_lines[name] = line
            self._view(class_id, name)

    def _view(self, class_id: int, name: str) -> None:
        if self.named.get(class_id) == name and self.ids.get(name) == class_id:
            self.by_id[class_id] = name
            self.by_key[str(class_id)] = name

    def __getstate__(self) -> tuple:
        return self.named, self.lines, self.ids, self.name_lines

    def __setstate__(self, state: tuple) -> None:
        self.named, self.lines, self.ids, self.name_lines = state
        self.by_id = {k: v for k, v in self.named.items() if self.ids.get(v) == k}
        self.by_key = {str(k): v for k, v in self.by_id.items()}


class ClassColors(ClassNames):
    """One label attribute's mask colours as first met (``line_rules.CLASS_COLORS``): each class
    index's first colour (``named``, ``lines``; the background, index 0, is never noted there: each
    image carries its own, as the COCO export does) and each colour's first index (``ids``,
    ``name_lines``; the background's colours included: a class may not take one), colours as the
    COCO export compares them (``#rrggbb``, lowercase). The hot paths' views are the color map
    entries ``(index, class name, colour as written)`` known clean both for their name
    (``line_rules.CLASS_NAMES``, the background's excepted) and for their colour, both ways
    (``by_id``: index an integer, as the typed path decodes a color map's keys; ``by_key``: its
    digits, as ``orjson`` reads them), noted by the per-line path (``note_drawn``). Why the three
    at once: a clean mask line then passes one C-level subset test of its map's entries for both
    rules; the names' test and a second one of (index, colour) pairs cost 15% more instructions a
    clean line than the names' test alone (46.2k against 40.0k, callgrind), this one 2.5% (41.0k). A
    set, since one colour is written ``#FF0000`` on one line and ``#ff0000`` on another, each form
    taking the per-line path once, then known."""

    __slots__ = ()

    def __init__(self) -> None:
        super().__init__()
        self.by_id: set[tuple[int, str, str]] = set()  # type: ignore[assignment]
        self.by_key: set[tuple[str, str, str]] = set()  # type: ignore[assignment]

    def note_color(self, index: int, color: str, line: int) -> None:
        """``index`` drawn in ``color`` (as compared) on ``line``: each side noted where it is met
        first (the background's index never)."""
        if index:
            self.note_id(index, color, line)
        self.note_name(color, index, line)

    def note_drawn(self, index: int, name: str, written: str, names: ClassNames) -> None:
        """A color map entry of a line the per-line path checked: added to the views where its
        colour holds both ways here and its name in ``names`` (the attribute's class names; the
        background's name is any). Pairs that hold keep holding (a table only grows), so a
        known entry is clean for good."""
        color = written.lower()
        if (self.ids.get(color) == index and (not index or self.named.get(index) == color)
                and (not index or names.by_id.get(index) == name)):
            self.by_id.add((index, name, written))
            self.by_key.add((str(index), name, written))

    def _view(self, class_id: int, name: str) -> None:
        """The views are ``note_drawn``'s (they hold names and colours as written)."""

    def __setstate__(self, state: tuple) -> None:
        """The tables; the views start empty: they need the names, and are only the hot paths'
        memory (each entry takes the per-line path once again, then is known)."""
        self.named, self.lines, self.ids, self.name_lines = state
        self.by_id = set()
        self.by_key = set()


class Collector:
    """Problems and counts of one byte range (or one whole file)."""

    def __init__(self, strict: bool, max_problems: int) -> None:
        self.strict = strict
        self.max_problems = max_problems
        self.problems: list[Problem] = []
        self.counts: Counter[str] = Counter()
        self.errors = 0
        self.warnings = 0
        self.lines = 0
        self.blank = 0
        self.unlabeled = 0
        self.attributes: dict[str, AttributeStats] = {}
        #: attribute -> (task type, ``type`` as written, line) of its first label of a built-in
        #: type (``line_rules.LineRules.one_type``): the merge holds later ranges to it
        self.first_types: dict[str, tuple[str, str, int]] = {}
        #: attribute -> each class id's first name and its line (``line_rules.CLASS_NAMES``): the
        #: merge holds later ranges to them too
        self.class_names: dict[str, ClassNames] = {}
        #: problem index -> the ``CLASS_NAMES`` message's parts: ``(attribute, class id)`` and the
        #: text before the id's first name, that name, the text after its line; or ``(attribute,
        #: name)`` and the name's first id (``line_rules.said_first``). The merge numbers that line as
        #: the file does from these (``validate._one_name_each``), never by reading the message,
        #: whose names may hold any words
        self.first_names: dict[int, tuple[tuple[str, int | str], str, int | str, str]] = {}
        #: the same for mask colours (``line_rules.CLASS_COLORS``): each attribute's table, and its
        #: messages' parts, an index's first colour or a colour's first index
        self.class_colors: dict[str, ClassColors] = {}
        self.first_colors: dict[int, tuple[tuple[str, int | str], str, int | str, str]] = {}
        #: the byte range checked (``validate.check_range``), so the merge can check it again
        self.start = 0
        self.end: int | None = None

    def add(self, line: int | None, key: str, rule: str, message: str, severity: Severity = "error") -> None:
        if self.strict:
            severity = "error"
        if severity == "error":
            self.errors += 1
        else:
            self.warnings += 1
        self.counts[rule] += 1
        if len(self.problems) < self.max_problems:
            self.problems.append(Problem(line, key, rule, message, severity))

    def names_of(self, attribute: str) -> ClassNames:
        """``attribute``'s class names met so far (an empty table at first)."""
        names = self.class_names.get(attribute)
        if names is None:
            names = self.class_names[attribute] = ClassNames()
        return names

    def colors_of(self, attribute: str) -> ClassColors:
        """``attribute``'s mask colours met so far (an empty table at first)."""
        colors = self.class_colors.get(attribute)
        if colors is None:
            colors = self.class_colors[attribute] = ClassColors()
        return colors

    def stats(self, attribute: str, task_type: str) -> AttributeStats:
        s = self.attributes.get(attribute)
        if s is None:
            s = self.attributes[attribute] = AttributeStats()
        if task_type not in s.task_types:
            s.task_types.append(task_type)
        return s

