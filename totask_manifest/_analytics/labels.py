"""Finding one label attribute's labels in a manifest, and building lines for imported labels.

Shared by every conversion: which attribute to read (named, or the only one of the wanted
task type), what counts as a label (a value its metadata does not mark as none,
``naming.marks_no_label``), and the job-level metadata an imported label gets so that the
manifest it lands in is a valid Ground Truth one.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from .._errors import ManifestError, TotaskError, UsageError, agreeing, counted, json_text
from .._fetch import APPENDED_BASES, appended_bases, base_for_line, base_of, resolve_reference
from .._formats.native import DM, native_format
from .._jobs.selection import needs_label
from .._manifest.io import SCAN_LINES, attributes_seen, read_lines, read_records
from .._manifest.line import Line, duplicate_key_paths, gt_json, may_repeat_a_key
from .._manifest.schemas import format_path
from .._manifest.semantics import box_outside
from .._outcomes import Labeled
from .._storage import redact_secret_url
from .._task_types import common_metadata, get_task_type, order_metadata, task_type_of_metadata

METADATA = "-metadata"
#: the key of a conversion's counts that holds lines to say (not counts): what an import could not
#: carry, said rather than left out unsaid; ``convert`` moves them to ``ConvertResult.notes``
NOTES = "notes"


#: the keys a Ground Truth label's reader names in the label's metadata (``<attr>-metadata``); the
#: rest it names in the label value (``<attr>``), and ``label`` is the value itself
_METADATA_KEYS = frozenset({"objects", "class-map", "class-name", "confidence", "confidence-map", "type", "metadata"})


@contextmanager
def on_line(number: int, attribute: str) -> Iterator[None]:
    """A label document that cannot be converted names its manifest line and the key as
    ``validate`` names it (``b.annotations[0].width``, ``b-metadata.objects``): converters raise
    ``FormatError`` with the key inside the label only, and a user must find the line and the
    attribute (``annotations[0].width`` named no attribute of a line that holds several)."""
    from .._formats.model import FormatError

    try:
        yield
    except FormatError as exc:
        if exc.line is not None:
            raise
        raise FormatError(exc.detail, fmt=exc.format, key=line_key(exc.key, attribute), line=number) from None


def line_key(key: str | None, attribute: str) -> str | None:
    """A key inside one label (``objects[0].confidence``) as the manifest line holds it
    (``b-metadata.objects[0].confidence``), the key ``validate`` names for the same value. A key
    that already names the attribute or its metadata stays as it is."""
    if key is None or key == attribute or key.startswith((attribute + ".", attribute + "[", attribute + METADATA)):
        return key
    head = re.split(r"[.\[]", key, maxsplit=1)[0]
    if head == "label":
        return attribute + key[len(head):]
    return metadata_key(attribute, key) if head in _METADATA_KEYS else f"{attribute}.{key}"


def metadata_key(attribute: str, key: str) -> str:
    """``key`` of the attribute's metadata as the manifest line holds it (``b-metadata.class-map``),
    the key ``validate`` names: an export's refusal of a class map or colour map named
    ``class-map`` alone, no attribute of a line that holds several."""
    return f"{attribute}{METADATA}.{key}"


@dataclass(frozen=True)
class Label:
    """A labeled line: its number, the whole record, the value and the metadata."""

    line: Line
    record: dict
    attribute: str
    task_type: str
    value: Any
    metadata: dict

    @property
    def source(self) -> str | None:
        return self.record.get("source-ref", self.record.get("source"))

    @property
    def source_key(self) -> str:
        """``source`` for a line whose data object is inline text, else ``source-ref``: a
        conversion that carries the data object writes it back under the key it came in."""
        return "source" if "source-ref" not in self.record and "source" in self.record else "source-ref"


def image_source(label: Label, fmt: str) -> str | None:
    """The line's ``source-ref``, for a format that names an image file (COCO ``file_name``, a
    YOLO image path). A line holding its data inline (``source``, text) has no file to name: its
    text came back as a ``source-ref``, a file that is not there; refused naming the line."""
    if label.source_key == "source":
        raise ManifestError(f"the line holds its data inline ('source', text) and {fmt} names an image file; "
                            "only lines with a 'source-ref' convert to it", line=label.line.number, key="source",
                            rule="convert-inline-source")
    return label.source


class PickedAttribute(str):
    """An attribute ``pick_attribute`` chose, as the only one of ``among`` (task types) in the first
    ``SCAN_LINES`` lines: ``iter_labels`` holds every later line to that, since another attribute
    of those types first met past them was left out as "skipped" lines, unsaid."""

    among: frozenset[str]

    def __new__(cls, name: str, among: frozenset[str]) -> PickedAttribute:
        picked = super().__new__(cls, name)
        picked.among = among
        return picked

    def __reduce__(self) -> tuple[type, tuple[str, frozenset[str]]]:  # a copy sent to a worker process
        return PickedAttribute, (str(self), self.among)


def pick_attribute(url: str, task_types: Iterable[str], label_attribute: str | None, *,
                   target: tuple[str, str] | None = None) -> str:
    """The attribute to convert: the one named, else the only one of a wanted type in the first
    lines (a ``PickedAttribute``, which ``iter_labels`` holds the other lines to). ``target``: the
    export's format and what it holds (``("COCO", "boxes and masks")``), said when the lines hold
    labels of other types only (``no_attribute_of_wanted_type``)."""
    if label_attribute:
        return label_attribute
    wanted = frozenset(get_task_type(t).name for t in task_types)
    found: dict[str, str] = {}
    others: dict[str, str] = {}  # named in the error, so the user sees what the file holds
    untyped = False  # metadata of no known type: naming its attribute may still convert it
    for line, rec in read_records(url):
        if line.number > SCAN_LINES:
            break
        for key, meta in rec.items():
            tt = task_type_of_metadata(meta) if key.endswith(METADATA) else None
            if tt is not None:
                (found if tt.name in wanted else others).setdefault(key[: -len(METADATA)], tt.name)
            elif key.endswith(METADATA):
                untyped = True
    if len(found) == 1:
        return PickedAttribute(next(iter(found)), wanted)
    if not found:
        raise no_attribute_of_wanted_type(url, wanted, others, target=None if untyped else target)
    raise several_attributes(url, sorted(found))


def no_attribute_of_wanted_type(url: str, wanted: Iterable[str], others: Mapping[str, str], *,
                                target: tuple[str, str] | None) -> ManifestError:
    """The error for a manifest whose first lines hold no attribute of a type the export takes
    (a data problem, exit 1, as ``nothing_to_convert``: the same rule). ``--label-attribute`` is
    advised only where it may help: when the lines hold labels of other types only (``others``)
    and ``target`` says what the format holds, naming one of them meets ``not_held`` instead."""
    held = ", ".join(f"{a} ({t})" for a, t in sorted(others.items())) or "none"
    if others and target is not None:
        fmt, holds = target
        return ManifestError(f"{redact_secret_url(url)}: {fmt} holds {holds}; the first {SCAN_LINES} lines hold only "
                             f"{held}, so nothing was written", rule="convert-no-labels")
    return ManifestError(f"{redact_secret_url(url)}: no label attribute of type {' or '.join(sorted(wanted))} in the "
                         f"first {SCAN_LINES} lines (the lines hold {held}), so nothing was written; name one with "
                         "--label-attribute", rule="convert-no-labels")


def several_attributes(url: str, names: Sequence[str], past: int | None = None) -> UsageError:
    """The error for a file holding two attributes an export could take, none named. ``past``: the
    line where one first appears, after the lines read to choose."""
    where = "" if past is None else f" ({names[-1]} first on line {past}, past the first {SCAN_LINES} lines read to choose)"
    return UsageError(f"{redact_secret_url(url)} holds several label attributes ({', '.join(names)}){where}; "
                      "choose one with --label-attribute")


def _refuse_another(url: str, line: Line, record: dict, picked: PickedAttribute) -> None:
    """A line holding the metadata of another attribute of the types ``picked`` was chosen among."""
    for key, meta in record.items():
        if key.endswith(METADATA) and key != picked + METADATA and type(meta) is dict:
            tt = task_type_of_metadata(meta)
            if tt is not None and tt.name in picked.among:
                raise several_attributes(url, [str(picked), key[: -len(METADATA)]], line.number)


class PastImage:
    """The boxes an export wrote that reach past their image, counted and said in one line: they
    are written as they are, never clipped (pycocotools takes them, some trainers refuse them,
    others clip them), and ``validate`` warns of each (``box-outside-image``)."""

    def __init__(self) -> None:
        self.count = self.first = 0

    def add(self, line: int, boxes: Iterable[Sequence[float]], width: float, height: float) -> None:
        """``boxes`` (``left, top, width, height`` each) of the ``width`` x ``height`` image on ``line``."""
        for left, top, w, h in boxes:
            if box_outside(left, top, w, h, width, height):
                self.count += 1
                self.first = self.first or line

    def notes(self) -> list[str]:
        if not self.count:
            return []
        n = self.count
        return [f"{counted(n, 'box', 'boxes')} {agreeing(n, 'reaches', 'reach')} past {agreeing(n, 'its', 'their')} "
                f"image (first on line {self.first}), written as {agreeing(n, 'it is', 'they are')}: some trainers "
                "refuse such a box, others clip it (validate warns of it: box-outside-image)"]


def nothing_to_convert(url: str, attribute: str, skipped: int) -> ManifestError:
    """The error for an export that found no label to write (a misspelt ``--label-attribute``, or
    every line failed): an empty COCO document or YOLO folder would pass for a dataset, so the
    exporters write nothing and name the attributes the first lines hold instead."""
    return ManifestError(
        f"no line holds a label under {attribute!r}, so nothing was written ({counted(skipped, 'line')} without one; "
        f"{attributes_seen(url)})",
        rule="convert-no-labels",
    )


def not_held(fmt: str, holds: str, label: Label, rule: str) -> ManifestError:
    """The error for a label of a type the export's format cannot hold (``COCO holds boxes and
    masks, not image-classification``): said as such, on the first such line, rather than as
    "no line holds a label", which would send a user looking for a misspelt attribute."""
    return ManifestError(f"{fmt} holds {holds}, not {label.task_type}", line=label.line.number,
                         key=label.attribute + METADATA, rule=rule)


def no_images(url: str) -> ManifestError:
    """The error for an import that found no image (an empty COCO document, a folder that is no
    YOLO dataset): an empty manifest would pass for a converted dataset, so nothing is written."""
    return ManifestError(f"{redact_secret_url(url)} holds no images, so nothing was written", rule="convert-no-images")


def labeled_metadata(rec: dict, attribute: str) -> dict | None:
    """The attribute's metadata when the line holds a label for it; None when a job would still
    have to label it (``jobs.selection.needs_label``: no value, or metadata that marks a value no
    label, ``naming.marks_no_label``: a failure, or a line routed to review, which ``stats`` counts
    routed and an export left in a training set) or the metadata is not an object."""
    meta = rec.get(attribute + METADATA)
    if not isinstance(meta, dict) or needs_label(rec, attribute):
        return None
    return meta


def routed(meta: Any) -> bool:
    """Whether a metadata object marks its line routed to review (``review-status: routed``,
    this tool's extension), as ``stats`` counts it."""
    return isinstance(meta, dict) and meta.get("review-status") == "routed"


def iter_labels(url: str, attribute: str, *, native_to: str | None = None, allow_drop: bool = False,
                dropped: Counter | None = None) -> Iterator[tuple[Line, Label | None]]:
    """Every line, with its label of ``attribute`` or None (blank, unlabeled or failed).

    With ``native_to`` a document kept as it is (custom type naming its format) comes back
    converted to that task type, or raises ``ManifestError`` naming what the conversion would
    drop unless ``allow_drop`` (what was dropped is then added to ``dropped``).
    """
    names: dict[str, int] = {}  # class name -> id, the ids the lines gave, for documents that name classes only
    fixed: dict[str, int] | None = None  # the ids the file's other lines fix (read at its first DM document)
    base = references_base(url)  # a relative image is read where the manifest's lines say it is
    picked = attribute if isinstance(attribute, PickedAttribute) else None
    for line in read_lines(url):
        if line.is_blank:
            yield line, None
            continue
        rec = line.record()
        if picked is not None and line.number > SCAN_LINES:  # the lines before were read to choose it
            _refuse_another(url, line, rec, picked)
        meta = labeled_metadata(rec, attribute)
        if meta is None:
            yield line, None
            continue
        refuse_repeated_key(line, rec)
        tt = task_type_of_metadata(meta)
        if tt is None:
            raise ManifestError(f"metadata declares no Ground Truth type (type: {json_text(meta.get('type'))})",
                                line=line.number, key=attribute + METADATA, rule="metadata-type")
        label = Label(line, rec, attribute, tt.name, rec[attribute], meta)
        if native_to is not None and (fmt := native_format(meta)) is not None:
            if fmt == DM and fixed is None:  # the ids the whole file fixes, before a DM name takes one
                fixed = _fixed_class_ids(url, attribute)
                for name, class_id in fixed.items():
                    names.setdefault(name, class_id)
            label = native_as(label, native_to, allow_drop=allow_drop, dropped=dropped, names=names, base=base)
        if native_to is not None:  # only documents converted here need the ids
            _note_class_ids(label.metadata.get("class-map"), names)
        yield line, label


def refuse_repeated_key(line: Line, record: dict) -> None:
    """A line holding a key twice in one object is refused (``duplicate-key``, as ``validate``):
    a JSON reader keeps the last copy, so an export wrote the second ``source-ref`` as the COCO
    ``file_name``, or the second ``class_id`` of a box, and said nothing. The cheap test first
    (``may_repeat_a_key``, about a microsecond a line); the exact one only where it may."""
    if may_repeat_a_key(line.body, record) and (paths := duplicate_key_paths(line.body.rstrip(b"\r\n"))):
        where = format_path(paths[0])
        raise ManifestError("the key appears more than once in its object: a reader keeps one copy, so the export "
                            "would take the last, unsaid (validate names every repeated key)",
                            line=line.number, key=where, rule="duplicate-key")


def _note_class_ids(class_map: Any, names: dict[str, int]) -> None:
    """The ids a line's class-map gives its names, kept for the DM v1 documents of later lines:
    numbered apart, by first sight among themselves, a DM 'triangle' got id 0 where an ``objects``
    document had made 'circle' 0, and the export refused the job's own output."""
    if not isinstance(class_map, dict):
        return
    for key, name in class_map.items():
        if isinstance(name, str) and isinstance(key, str) and key.isdigit():
            names.setdefault(name, int(key))


def _fixed_class_ids(url: str, attribute: str) -> dict[str, int]:
    """The ids the lines that number their classes give their names (class maps, ``objects``
    documents' ``class_id``), over the whole file, the first one given for a name. A DM v1
    document names its classes only: numbered by the lines before it alone, its 'triangle' took
    id 1 where a later ``objects`` line had 'circle' 1, and the export refused the job's output."""
    fixed: dict[str, int] = {}
    for _line, rec in read_records(url):
        meta = labeled_metadata(rec, attribute)
        fmt = native_format(meta) if meta is not None else None
        if meta is None or fmt == DM:
            continue
        if fmt is None:  # a Ground Truth label: its class map
            _note_class_ids(meta.get("class-map"), fixed)
            continue
        doc = rec.get(attribute)
        objects = doc.get("objects") if isinstance(doc, dict) else None
        for obj in objects if isinstance(objects, list) else ():
            if not isinstance(obj, dict):
                continue
            props, class_id = obj.get("properties"), obj.get("class_id")
            name = props.get("label") if isinstance(props, dict) else None
            if isinstance(name, str) and type(class_id) is int and class_id >= 0:
                fixed.setdefault(name, class_id)
    return fixed


#: where a job writes its output manifest, below its folder (``layout.JobLayout.output_manifest``)
JOB_OUTPUT = "/manifests/output/output.manifest"


def references_base(url: str) -> str:
    """The folder a manifest's relative references (``source-ref: images/a.jpg``) resolve
    against: its own folder, or, for a job's output manifest (``<job>/manifests/output/
    output.manifest`` beside the job's ``job.json``), the folder the job resolved them against
    (``relative_to``, else its input's folder), as ``report`` reads them: the job copies its input's
    references as they are, so read beside the output they named files that never existed."""
    return references_bases(url).base


@dataclass(frozen=True)
class ReferenceBases:
    """Where a manifest's relative references resolve: ``base`` (``references_base``), and for a
    job's output the folders of the lines its ``--append`` manifests gave (``appended``: the job's
    ``[first line index, folder]`` pairs, ``_fetch.APPENDED_BASES``), as the job resolved them."""

    base: str
    appended: tuple[tuple[int, str], ...] = ()

    def for_line(self, number: int) -> str:
        """The folder line ``number`` (from 1, in the whole file) resolves against."""
        return base_for_line({APPENDED_BASES: self.appended}, number - 1, self.base) or self.base


def references_bases(url: str) -> ReferenceBases:
    """``ReferenceBases`` of the manifest at ``url``: a job's own output manifest resolves as the
    job did (``references_base``), each appended manifest's lines against that manifest's folder."""
    from .._jobs.job import Job

    given = str(url)
    if given.endswith(JOB_OUTPUT):
        job = Job(given[: -len(JOB_OUTPUT)]).record()
        config = job.get("config") if isinstance(job.get("config"), dict) else {}
        options = config.get("options") if isinstance(config.get("options"), dict) else {}
        inp = job.get("input") if isinstance(job.get("input"), dict) else {}
        source = inp.get("url") or config.get("input")
        appended = tuple(appended_bases(options))  # another version's pair of another shape: no folder
        if isinstance(options.get("relative_to"), str) and options["relative_to"]:
            return ReferenceBases(options["relative_to"], appended)
        if isinstance(source, str) and source and source != "-":
            return ReferenceBases(base_of(source), appended)
    return ReferenceBases(base_of(given))


def native_as(label: Label, task_type: str, *, allow_drop: bool, dropped: Counter | None = None,
              names: dict[str, int] | None = None, base: str | None = None) -> Label:
    """A kept document (DM v1, ``objects``) as a Ground Truth label of ``task_type``; the image
    size comes from the line's ``image_size`` or the image's header. A DM v1 document names its
    classes only: a name takes its id in ``names`` (the ids the file's lines give), a new one the
    lowest id no name has. A relative ``source-ref`` is read against ``base`` (the manifest's folder)."""
    from .._formats.detect import to_label
    from .._formats.model import FormatError
    from .._formats.native import shapes

    fmt = native_format(label.metadata)
    class_names = None
    if names is not None and fmt == DM:  # DM v1 names classes only: one id per name over the whole file
        used = set(names.values())
        own: dict[int, str] = {}
        for shape in shapes(label.value, fmt):
            if shape.class_name is None:
                continue
            if shape.class_name not in names:
                names[shape.class_name] = next(i for i in range(len(used) + 1) if i not in used)
                used.add(names[shape.class_name])
            own[names[shape.class_name]] = shape.class_name
        class_names = own
    size = label.record.get("image_size")
    if size is None and task_type == "object-detection":
        size = _image_size(label, base)
    try:
        converted = to_label(label.value, fmt, task_type, image_size=size, allow_drop=allow_drop,
                             class_names=class_names)
    except FormatError as exc:
        raise ManifestError(f"{exc.detail}", line=label.line.number, key=label.attribute, rule=exc.rule) from None
    if dropped is not None:
        dropped.update(converted.metadata.get("dropped") or {})
    return Label(label.line, label.record, label.attribute, task_type, converted.value,
                 {**label.metadata, **converted.metadata, "type": get_task_type(task_type).gt_type})


def _image_size(label: Label, base: str | None) -> tuple[int, int, int]:
    """The stored image's size from its header only (no decode), for a document converted to
    a type whose labels carry it. A relative ``source-ref`` is read against ``base``, the
    manifest's folder: read from the working directory, one command worked in one folder only."""
    from .._imaging import ImageError, image_depth, read_info
    from .._storage import read_bytes

    source = label.source
    if not isinstance(source, str):
        raise ManifestError("a DM v1 or objects document carries no image size, and the line has no source-ref",
                            line=label.line.number, key="source-ref", rule="image-size")
    where = resolve_reference(source, base)
    try:
        info = read_info(read_bytes(where))
    except (ImageError, TotaskError) as exc:  # any reason the image cannot be read names the line
        reason = exc.reason if isinstance(exc, ImageError) else str(exc)
        shown = redact_secret_url(where)
        said = read_against("source-ref", source, where, base)
        raise ManifestError(f"image size: cannot read {shown[:300]}: {reason[:160]}{said}", line=label.line.number,
                            key="source-ref", rule="image-size") from None
    return info.width, info.height, image_depth(info.mode)


def read_against(key: str, ref: str, where: str, base: str | None) -> str:
    """`` (a relative KEY resolves against FOLDER)`` for a reference read elsewhere than it is
    written (``where`` is ``ref`` resolved), else "": an error naming the path tried alone left
    a user guessing why ``mask0.png`` was looked for in ``lab/`` (the manifest's folder, or a job's)."""
    if where == ref:
        return ""
    return f" (a relative {key} resolves against {redact_secret_url(str(base))[:300]})"


def job_metadata(labeled: Labeled, task_type: str, *, job_name: str, human_annotated: str) -> dict:
    """Type-specific metadata plus the fields every Ground Truth label carries (a label that
    declares its own type, a kept document, keeps it), in Ground Truth's order."""
    task_type = task_type_of_metadata(labeled.metadata) or task_type
    return order_metadata(task_type, {**labeled.metadata, **common_metadata(
        task_type, job_name, human_annotated=human_annotated)}, labeled.metadata_order)


def manifest_line(source_ref: str, attribute: str, labeled: Labeled, task_type: str, *, job_name: str,
                  human_annotated: str, extra: dict | None = None, source_key: str = "source-ref") -> bytes:
    """An imported line; ``source_key`` is ``source`` for a data object that is inline text."""
    rec = {source_key: source_ref, **(extra or {}), attribute: labeled.value,
           attribute + METADATA: job_metadata(labeled, task_type, job_name=job_name, human_annotated=human_annotated)}
    return gt_json(rec) + b"\n"
