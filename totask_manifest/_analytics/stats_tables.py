"""``stats``' result types, a range's counts (``Partial``: each attribute's ``Counts``), and how
the parent sums the ranges' counts and reads each attribute's figures out of them
(``merge_partials``). Only these counts cross process boundaries."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from .._manifest.naming import declared_task_type
from .._task_types import GT_PREFIX, task_type_of_metadata
from .stats_facts import BINS, DECLARED, FAILED, LABELED, ROUTED, Counts


@dataclass
class ClassCount:
    """Labels of one class: by name where the line's class map (or ``class-name``) gives one,
    else by id. ``class_ids`` lists every id the name was written under (more than one: a clash)."""

    class_id: int | None
    name: str | None
    count: int
    class_ids: list[int] = field(default_factory=list)


@dataclass
class ClassClash:
    """One id written with several names, or one name under several ids, and how often each."""

    class_id: int | None
    name: str | None
    #: ``name`` -> labels (an id's names) or ``str(id)`` -> labels (a name's ids)
    counts: dict[str, int] = field(default_factory=dict)


@dataclass
class AttributeStats:
    """Counts for one label attribute ``A`` (lines holding an ``A-metadata`` object)."""

    name: str
    #: lines with an ``A-metadata`` object
    lines: int = 0
    #: lines with a label value and no ``failure-reason``
    labeled: int = 0
    failed: int = 0
    #: lines a job routed to people for review (``review-status: routed``, no label of the job's)
    routed: int = 0
    #: failed lines per rule (``failure-rule``, or the rule read from ``failure-reason``)
    failures: dict[str, int] = field(default_factory=dict)
    #: task type (without ``groundtruth/``) -> lines
    types: dict[str, int] = field(default_factory=dict)
    #: ``human-annotated`` value -> labeled lines (``yes`` human, ``no`` machine)
    human_annotated: dict[str, int] = field(default_factory=dict)
    job_names: dict[str, int] = field(default_factory=dict)
    #: boxes (detection) or chosen labels (classification) per class, most frequent first
    classes: list[ClassCount] = field(default_factory=list)
    #: ids that carry several names, and names that carry several ids, across the lines
    class_clashes: list[ClassClash] = field(default_factory=list)
    #: counts per confidence bin [0,0.1), ..., [0.9,1.0]; per box for detection, per label otherwise
    confidence_histogram: list[int] = field(default_factory=lambda: [0] * BINS)
    confidence_count: int = 0
    confidence_mean: float | None = None
    #: boxes or labels without any confidence: not in the histogram, not counted as 0.0
    unscored: int = 0
    #: confidences outside [0, 1]: in no bin, so out of the histogram and the mean, counted here
    confidence_out_of_range: int = 0
    #: boxes or labels whose ``class_id`` is not an integer within 64 bits (or an annotation that is
    #: not an object): left out of every count here, never silently; ``validate`` names their lines
    no_class_id: int = 0
    #: detection only: labeled lines per number of boxes, and all boxes
    boxes_per_image: dict[int, int] = field(default_factory=dict)
    boxes: int = 0
    #: documents kept as they are (custom type naming a format): annotations per tool
    #: (``bounding_box``, ``polygon``, ``keypoint``...); their classes are counted by name in ``classes``
    tools: dict[str, int] = field(default_factory=dict)
    #: the built-in task types the labels declare, where more than one (``validate`` refuses such
    #: lines, ``label-attribute-mixed-types``, and names them): every count above mixes them
    mixed_task_types: list[str] = field(default_factory=list)


@dataclass
class ManifestStats:
    url: str
    lines: int
    blank_lines: int
    attributes: dict[str, AttributeStats]
    #: lines that are not a JSON object, or over the byte cap (counted in ``lines``, nothing else read from them)
    invalid_lines: int = 0
    #: of ``invalid_lines``, those over ``long_lines.MAX_LINE_BYTES``: read past, never parsed
    too_long_lines: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# --- partial counts --------------------------------------------------------------------------

@dataclass
class Partial:
    """Counts of one byte range (or a whole stream): line counts and each attribute's ``Counts``.
    This is all that crosses a process boundary (it pickles in microseconds)."""

    lines: int = 0
    blank: int = 0
    invalid: int = 0
    too_long: int = 0
    attributes: dict[str, Counts] = field(default_factory=dict)


# --- merging the partials ----------------------------------------------------------------------

def _ranked(rows: Iterable[tuple[Any, int]]) -> dict[Any, int]:
    return dict(sorted(((k, int(n)) for k, n in rows if k is not None), key=lambda kv: (-kv[1], str(kv[0]))))


def _attribute(name: str, c: Counts | None) -> AttributeStats:
    s = AttributeStats(name)
    if c is None:
        return s
    reasons: Counter[str | None] = Counter()
    types: Counter[str | None] = Counter()
    for (typ, reason, state), n in c.meta_n.items():
        s.lines += n
        types[typ] += n
        if state & LABELED:
            s.labeled += n
        if state & FAILED:
            s.failed += n
            reasons[reason] += n
        if state & ROUTED:
            s.routed += n
    if not s.lines:
        return s
    s.failures = _ranked(reasons.items())
    bare: Counter[str] = Counter()
    for k, v in types.items():
        if k:  # an empty type names nothing
            bare[k.removeprefix(GT_PREFIX)] += v
    s.types = _ranked(bare.items())
    s.mixed_task_types = _mixed_types(name, (typ for typ, _, state in c.meta_n if state & LABELED))
    s.human_annotated = _ranked(c.human_n.items())
    s.job_names = _ranked(c.job_n.items())

    names: dict[int, list[str]] = {}
    for cid, nm in sorted(c.names):
        names.setdefault(cid, []).append(nm)
    # documents kept as they are name their classes without ids
    s.classes, s.class_clashes = _by_name(((cid, nm, k) for (cid, nm), k in c.class_n.items()), names,
                                          c.named.items())
    s.tools = _ranked(c.tools.items())
    s.boxes_per_image = dict(sorted(c.per_image_n.items()))
    s.boxes = sum(b * k for b, k in s.boxes_per_image.items())
    s.unscored, s.no_class_id, s.confidence_out_of_range = c.unscored, c.no_class_id, c.out_of_range
    s.confidence_histogram = list(c.hist)
    s.confidence_count = sum(c.hist)
    s.confidence_mean = c.conf_sum / s.confidence_count if s.confidence_count else None
    return s


def _mixed_types(attribute: str, labeled: Iterable[str | None]) -> list[str]:
    """The built-in task types of ``attribute``'s labels (``labeled``: their ``type`` values), where
    more than one: as ``validate`` reads them, custom labels and types this tool does not know
    left out, a point cloud detection type on a ``-ref`` attribute read as tracking; failed lines
    hold no label, so no type."""
    found: set[str] = set()
    for typ in labeled:
        tt = task_type_of_metadata({"type": typ})
        if tt is not None and tt.name != "custom":
            found.add(declared_task_type(tt.name, attribute, "a reference"))
    return sorted(found) if len(found) > 1 else []


def _by_name(per_pair: Iterable[tuple[int, str | None, int]], names: dict[int, list[str]],
             named: Iterable[tuple[str, int]] = ()) -> tuple[list[ClassCount], list[ClassClash]]:
    """Counts per class name (a label whose line names no class goes to the one name its id has
    elsewhere, else stays counted by id; ``named`` counts names that come without an id), and the
    ids and names that clash. An id the class maps give several names clashes though no label uses
    some of them (0 labels under those names): ``validate --strict``, COCO and YOLO refuse the file
    for it, and stats was silent."""
    by_name: dict[str, dict[int, int]] = {}
    by_id: dict[int, int] = {}
    no_id: dict[str, int] = {}
    for name, k in named:
        if name is not None:
            no_id[name] = no_id.get(name, 0) + int(k)
            by_name.setdefault(name, {})
    for cid, name, k in per_pair:
        if name is None and len(names.get(cid, ())) == 1:
            name = names[cid][0]
        if name is None:
            by_id[cid] = by_id.get(cid, 0) + int(k)
        else:
            ids = by_name.setdefault(name, {})
            ids[cid] = ids.get(cid, 0) + int(k)
    classes = [ClassCount(min(ids, default=None), name, sum(ids.values()) + no_id.get(name, 0), sorted(ids))
               for name, ids in by_name.items()]
    classes += [ClassCount(cid, None, k, [cid]) for cid, k in by_id.items()]
    classes.sort(key=lambda cc: (-cc.count, cc.class_id if cc.class_id is not None else -1, cc.name or ""))
    return classes, _id_clashes(by_name, names) + _name_clashes(by_name, names)


def _id_clashes(by_name: dict[str, dict[int, int]], names: dict[int, list[str]]) -> list[ClassClash]:
    """Ids counted or written under several names: each name's labels under the id, 0 for a name
    only a class map gives it (``validate``'s ``class-map-conflict`` says those too)."""
    per_id: dict[int, dict[str, int]] = {}
    for name, ids in by_name.items():
        for cid, k in ids.items():
            per_id.setdefault(cid, {})[name] = k
    for cid, written in names.items():
        if len(written) > 1:
            for name in written:
                per_id.setdefault(cid, {}).setdefault(name, 0)
    return [ClassClash(cid, None, dict(sorted(counts.items())))
            for cid, counts in sorted(per_id.items()) if len(counts) > 1]


def _name_clashes(by_name: dict[str, dict[int, int]], names: dict[int, list[str]]) -> list[ClassClash]:
    """Names counted or written under several ids: each id's labels of the name, 0 for an id only
    a class map gives it (``{"0": "car", "5": "truck"}`` beside ``{"1": "truck"}``, boxes of class
    0 only: ``validate`` warns and COCO and YOLO refuse, and ``stats`` said nothing). Reads the
    distinct ``(id, name)`` pairs, not the lines: no cost a line."""
    per_name = {name: dict(ids) for name, ids in by_name.items()}
    for cid, written in names.items():
        for name in written:
            per_name.setdefault(name, {}).setdefault(cid, 0)
    return [ClassClash(None, name, {str(cid): k for cid, k in sorted(ids.items())})
            for name, ids in sorted(per_name.items()) if len(ids) > 1]


def merge_partials(url: str, parts: list[Partial], attributes: Sequence[str] | None) -> ManifestStats:
    """The ranges' counts summed, and each attribute's read out of them."""
    merged: dict[str, Counts] = {}
    for part in parts:
        for attr, counts in part.attributes.items():
            counts.flush()
            if attr not in merged:
                merged[attr] = Counts()
            merged[attr].merge(counts)
    if attributes is None:
        # attributes whose metadata declares a type or a failure somewhere; input keys such as
        # ``annotator-metadata`` never do
        attributes = sorted(a for a, c in merged.items() if any(key[2] & DECLARED for key in c.meta_n))
    return ManifestStats(
        url=str(url),
        lines=sum(p.lines for p in parts),
        blank_lines=sum(p.blank for p in parts),
        attributes={a: _attribute(a, merged.get(a)) for a in attributes},
        invalid_lines=sum(p.invalid for p in parts),
        too_long_lines=sum(p.too_long for p in parts),
    )
