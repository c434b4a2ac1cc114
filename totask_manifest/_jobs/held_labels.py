"""What a job's label attribute already holds on the lines it passes over, and when that refuses the job.

Ground Truth's selection rule labels only the lines without a value under the attribute, so a
line holding one is passed through. Two kinds of value there are not the job's to pass over:

- a label of another task type (the attribute holds object-detection boxes, the job is an
  image classifier): the job would write its labels beside them, one attribute holding two
  kinds of label, exit 0, which no reader downstream (COCO, YOLO, ``evaluate``) can take as one
  label column. ``chain`` refuses it from the previous job's configuration
  (``_api_checks.chained_attribute``); ``annotate`` has only the lines, read here;
- a value that is no label at all: no ``KEY-metadata`` beside it (``category-x: "cat"``, an
  ordinary key of the input), or one that declares no Ground Truth task type (a ``groundtruth/...``
  type this tool does not know is named as such: it was said to declare none). Ground Truth
  names a label's metadata ``<attribute>-metadata`` and every label has one; a job onto such a
  key passed over every line holding it and ended COMPLETED with nothing said (``total=0`` when
  every line held it), and where some did not it wrote labels beside the plain values.

A label is of the task type ``naming.declared_task_type`` reads, as ``validate`` reads it: Ground
Truth's own point cloud tracking sample declares detection on a ``-ref`` attribute, and a
tracking job onto it was refused as "holds point_cloud_object_detection labels".

Both are the options' mistake, not the data's (exit 2, as ``chain``'s refusal): the way forward
is another ``--label-attribute`` (docs/architecture.md, "What the label attribute may already hold").
A job with no line to label is refused too, though it writes nothing under the attribute: its
job.json records the attribute as its task type's (``apply`` converts each value so, ``chain``
takes it so), an output ``validate --task-type`` refuses; the refusal says how many lines the job
would label, none included, where it offered "the lines still unlabeled" of none.
The scan notes them as it reads (``scan_ranges``: its workers' ranges, then the whole file).

A label of the job's own type is passed over, but where the job's class names are known before it
starts (``JobClasses``: ``--class-names``, a local model's own) they are held to the class names
those labels hold (``class-map-conflict``, ``validate``'s rule): a model retrained with its
classes in another order, chained onto the attribute, wrote class id 1 'b' beside lines naming it
'square', exit 0, an output ``validate --strict``, ``convert --to coco`` and YOLO refuse. A clash
refuses only a job that labels some line (``raise_for_clash``): one with nothing to label writes no
class name, so it ends as such a job does (COMPLETED, ``nothing_to_label``), where it was refused
for labels it would never write, "the job would label the other lines" said of no line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .._errors import UsageError, counted
from .._manifest.naming import declared_task_type, metadata_key
from .._storage import redact_url
from .._task_types import GT_PREFIX, task_type_of_metadata

if TYPE_CHECKING:  # the rules import the validator's schemas: on use only (the CLI starts without them)
    from .._manifest.problems import ClassNames

#: the kind of a value that is not a label (no metadata, or metadata without a known ``type``)
NOT_A_LABEL = ""
#: the kind of a value whose metadata declares a ``groundtruth/...`` type this tool does not know:
#: this prefix, then the type as written
UNKNOWN_TYPE = "unknown type "
#: the kind of a line without a value under the attribute whose ``<attribute>-metadata`` is no label's
#: metadata (not an object declaring a ``type`` or a ``failure-reason``): the job writes its own
#: metadata there, and the value was lost with exit 0
NOT_LABEL_METADATA = "not label metadata"
#: Ground Truth's custom type: what a job of any task type writes for a document kept as it is
#: (``--native keep``, ``recorder.updates_for``), so it goes beside any type's labels, either way
CUSTOM = "custom"


@dataclass(frozen=True)
class JobClasses:
    """The class names a job writes, known before it starts (id -> name), and where they come
    from, as a refusal names it (``--class-names FILE``, "the model's class names (--model M)").
    Only for the task types whose labels name classes by id (``line_rules.MAP_TYPES``,
    ``SINGLE_TYPES``); a mask's color map is not held here."""

    names: dict[int, str]
    source: str

    @classmethod
    def of(cls, task_type: str, names: object, source: str) -> JobClasses | None:
        """``names`` (a list, index = class id, or an id -> name mapping) for a job of ``task_type``;
        None where its labels name no class by id or no names are known."""
        from .._manifest.line_rules import MAP_TYPES, SINGLE_TYPES

        if task_type not in MAP_TYPES | SINGLE_TYPES or not names:
            return None
        pairs = names.items() if isinstance(names, dict) else enumerate(names)  # type: ignore[attr-defined]
        return cls({int(k): str(v) for k, v in pairs}, source)

    def clash(self, class_id: int, name: str) -> str | None:
        """Why a held label naming ``class_id`` ``name`` clashes with this job's names (validate's
        ``class-map-conflict`` both ways: one class id, one name; one class name, one id), or None."""
        ours = self.names.get(class_id)
        if ours is not None and ours != name:
            return f"{name!r} there, but this job names class id {class_id} {ours!r} ({self.source}): one class id, one name"
        other = next((k for k, v in self.names.items() if v == name), class_id)  # only on a line not clean
        if other != class_id:
            return (f"class id {class_id} for {name!r} there, but this job gives {name!r} class id {other} "
                    f"({self.source}): one class name, one id")
        return None


@dataclass
class HeldLabels:
    """The lines (of a range, then of a file) that hold the attribute with a value the job of
    ``task_type`` must not pass over: per kind (another task type's name, or ``NOT_A_LABEL``)
    how many, and the first one's number. ``task_type`` None: nothing is noted (a resume's scan
    again, whose input was checked when the job started, or a caller that names no job)."""

    task_type: str | None = None
    counts: dict[str, int] = field(default_factory=dict)
    first: dict[str, int] = field(default_factory=dict)
    #: the job's class names, where known (``JobClasses``): held to the labels passed over
    classes: JobClasses | None = None
    #: the range's class names met so far, the job's first (the scan's typed path passes a line
    #: whose classes it holds: ``scan_ranges._TypedRuns``); each pair found clean is noted, so a
    #: map the lines repeat is worked out here once
    table: ClassNames | None = None
    #: the first held label naming a class otherwise than the job: (line, key, why)
    clash: tuple[int, str, str] | None = None

    def note(self, number: int, record: dict, attribute: str) -> None:
        """Line ``number``, which holds ``attribute`` (not null, no earlier failure): noted
        where its value is not a label of the job's task type."""
        if self.task_type is None:
            return
        meta = record.get(metadata_key(attribute))
        if type(meta) is dict and meta.get("type") == GT_PREFIX + self.task_type:
            if self.classes is not None:
                self._hold_classes(number, attribute, record.get(attribute), meta)
            return  # the common case, without a lookup
        kind = held_kind(meta, attribute, record.get(attribute))
        if fits(kind, self.task_type):
            if self.classes is not None and kind == self.task_type:
                self._hold_classes(number, attribute, record.get(attribute), meta)
            return
        self.counts[kind] = self.counts.get(kind, 0) + 1
        self.first.setdefault(kind, number)

    def _hold_classes(self, number: int, attribute: str, value: object, meta: dict) -> None:
        """Line ``number``'s label under ``attribute`` (of the job's type, ``value`` and its ``meta``) held to the job's
        class names: the first clash kept, each clean pair noted in ``table``."""
        from .._manifest.line_rules import class_pairs

        assert self.classes is not None and self.task_type is not None
        if self.clash is not None:
            return  # one is refused, the first line in the file: a later one in this range is not it
        for class_id, name, key, _said in class_pairs(self.task_type, attribute, value, meta):
            why = self.classes.clash(class_id, name)
            if why is not None:
                self.clash = (number, key, why)
                return
            if self.table is not None:
                self.table.note(class_id, name, number)

    def note_metadata(self, number: int, record: dict, attribute: str) -> None:
        """Line ``number``, which the job labels: noted where ``<attribute>-metadata`` holds what
        no label's metadata is (``label_metadata``), which the job's own would replace."""
        if self.task_type is None or label_metadata(record.get(metadata_key(attribute))):
            return
        self.counts[NOT_LABEL_METADATA] = self.counts.get(NOT_LABEL_METADATA, 0) + 1
        self.first.setdefault(NOT_LABEL_METADATA, number)

    def add(self, other: HeldLabels, base: int) -> None:
        """``other``, of the range whose first line follows line ``base``, added (its lines renumbered)."""
        for kind, count in other.counts.items():
            self.counts[kind] = self.counts.get(kind, 0) + count
            self.first.setdefault(kind, other.first[kind] + base)
        if self.clash is None and other.clash is not None:
            line, key, why = other.clash
            self.clash = (line + base, key, why)


def label_metadata(meta: object) -> bool:
    """Whether ``meta``, under ``<attribute>-metadata`` on a line the job labels, is a label's
    metadata or nothing (absent, null, ``{}``): an object declaring a ``type`` (a label's) or a
    ``failure-reason`` (a failed line's, which a chained job labels again), which the job's own replaces."""
    return meta is None or (type(meta) is dict and (not meta or "type" in meta or "failure-reason" in meta))


def fits(kind: str, task_type: str) -> bool:
    """Whether a held value of ``kind`` may stay beside the labels a job of ``task_type`` writes."""
    if kind in (NOT_A_LABEL, NOT_LABEL_METADATA) or kind.startswith(UNKNOWN_TYPE):
        return False
    return kind == task_type or CUSTOM in (kind, task_type)


def held_kind(meta: object, attribute: str, value: object) -> str:
    """The task type of ``value`` under ``attribute``, its metadata ``meta`` (``naming.declared_task_type``);
    ``UNKNOWN_TYPE`` and the type where it is a ``groundtruth/...`` one not known, else ``NOT_A_LABEL``."""
    task_type = task_type_of_metadata(meta)
    if task_type is not None:
        return declared_task_type(task_type.name, attribute, value)
    said = meta.get("type") if isinstance(meta, dict) else None
    if isinstance(said, str) and said.lower().startswith(GT_PREFIX):
        return UNKNOWN_TYPE + said
    return NOT_A_LABEL


def shape_passes(record: dict, attribute: str, task_type: str | None) -> bool:
    """Whether a line of ``record``'s shape that holds ``attribute`` is one the job passes over
    (a label of its task type, or no value there at all): the scan's typed path takes a run of
    a shape whole, its metadata's ``type`` the same on every line (each schema fixes it), so a
    shape whose first line is not passed over is left to the per-line path, which notes it."""
    if task_type is None:
        return True
    if record.get(attribute) is None:  # lines the job labels: a shape with metadata there looked at line by line
        return record.get(metadata_key(attribute)) is None
    return fits(held_kind(record.get(metadata_key(attribute)), attribute, record[attribute]), task_type)


def raise_for_held(url: str, held: HeldLabels, attribute: str, what: str = "input manifest", *, labels: int) -> None:
    """Refuse a job whose label attribute holds, on some line, what it must not pass over (see
    the module's docstring): one line naming the manifest, the first such line, the attribute,
    what it holds, the job's task type, how many lines the job would label (``labels``: with
    ``--append``, the combined input's) and the way forward. A job labeling no line is refused
    too: it writes nothing, but records the attribute as its task type's labels (job.json, which
    ``apply`` and ``chain`` read), which an output ``validate --task-type`` refuses."""
    if held.task_type is None:
        return
    if not held.counts:
        raise_for_clash(url, held, attribute, labels, what)
        return
    kind = min(held.first, key=held.first.__getitem__)  # the first line of any kind: the one named
    line, count = held.first[kind], held.counts[kind]
    where = f"{what} {redact_url(url)} line {line}"
    also = f" ({count} such lines in all)" if count > 1 else ""  # "(50 lines do)" read as 50 holding the metadata
    would = _would_label(labels, attribute, held.task_type)
    if kind == NOT_LABEL_METADATA:
        meta = metadata_key(attribute)
        raise UsageError(
            f"{where}: {meta!r} is no label's metadata (not an object declaring a 'type' or a 'failure-reason'){also}; "
            f"the job writes its own {meta!r} on each line it labels, so what the line holds there would be lost: "
            f"give --label-attribute a name whose metadata key the lines do not hold")
    if kind == NOT_A_LABEL:
        meta = metadata_key(attribute)
        raise UsageError(
            f"{where}: {attribute!r} is not a label there: it has no {meta!r} declaring a Ground Truth task type{also}; "
            f"a job passes over every line holding its label attribute, so those lines would never be labeled, and "
            f"{would}: give --label-attribute a name the lines do not hold as an ordinary key")
    if kind.startswith(UNKNOWN_TYPE):
        meta = metadata_key(attribute)
        raise UsageError(
            f"{where}: {meta!r} declares {kind[len(UNKNOWN_TYPE):]!r}, a Ground Truth task type this tool does not "
            f"know{also}; a job passes over every line holding its label attribute, so those lines would never be "
            f"labeled, and {would}: give --label-attribute a new name for this job's labels")
    other = (f"or --task-type {kind} to label the lines still unlabeled" if labels else
             f"or --task-type {kind}, with which it has nothing to label")
    raise UsageError(
        f"{where}: label attribute {attribute!r} holds {kind} labels{also} and this job labels {held.task_type}; "
        f"one attribute holds one task type's labels (as in Ground Truth), and {would}: give --label-attribute a new "
        f"name for the {held.task_type} labels, {other}")


def _would_label(labels: int, attribute: str, task_type: str) -> str:
    """What a job refused for the values it passes over under ``attribute`` would do with it, as its
    refusal says it: label ``labels`` lines beside them, or none, yet record ``attribute`` as its own."""
    if labels:
        return f"the job would label {counted(labels, 'line')} under {attribute!r} beside them"
    return (f"the job would label no line, yet record {attribute!r} as {task_type} labels in its job.json (read by "
            f"apply and chain), which validate --task-type {task_type} refuses in its output")


def raise_for_clash(url: str, held: HeldLabels, attribute: str, labels: int, what: str = "input manifest") -> None:
    """Refuse a job that labels ``labels`` lines (more than none) with class names naming a class
    otherwise than a label it passes over under ``attribute`` (``JobClasses``): one line naming the
    line, the key, both names, the rule and how many lines would be written so. A job labeling no
    line writes no class name: nothing clashes in its output, so it is not refused."""
    from .._manifest.line_rules import CLASS_NAMES

    if held.clash is None or not labels:
        return
    line, key, why = held.clash
    raise UsageError(
        f"{what} {redact_url(url)} line {line}, key {key!r}: {why} [{CLASS_NAMES}]; the job would label "
        f"{counted(labels, 'line')} under {attribute!r} with its own class names, beside this label: an output "
        f"validate --strict and the COCO and YOLO exports refuse: give --class-names FILE naming the classes as "
        f"{attribute!r} does, or --label-attribute a new name")


def nothing_to_label(job_name: str, lines: int, attribute: str) -> str:
    """Why a new job selected no line (every data line holds a label of its type under its
    attribute, the others being refused above): said, as the job ends COMPLETED having labeled
    nothing (Ground Truth's rule), where it said only "every selected line is recorded"."""
    return (f"job {job_name}: nothing to label: every data line ({counted(lines, 'line')} read) already holds a label under "
            f"{attribute!r} (a job labels only the lines without one); to label them anew, give --label-attribute "
            "a new name")
