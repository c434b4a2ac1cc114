"""``stats``' result types and its polars side: each batch's columns become small grouped
tables (``batch_frames``), folded into a range's running counts (``Partial``); the parent folds
the ranges' tables once more (``merge_partials``) and reads each attribute's counts out of them.
Only these counts cross process boundaries."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import polars as pl

from .._task_types import GT_PREFIX
from .stats_facts import (
    BINS,
    DECLARED,
    FAILED,
    LABELED,
    NO_CLASS_ID_BIN,
    UNSCORED_BIN,
    Columns,
    class_id_of,
    label_text,
)


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
    #: boxes or labels whose ``class_id`` is not an integer within 64 bits (or an annotation that is
    #: not an object): left out of every count here, never silently; ``validate`` names their lines
    no_class_id: int = 0
    #: detection only: labeled lines per number of boxes, and all boxes
    boxes_per_image: dict[int, int] = field(default_factory=dict)
    boxes: int = 0
    #: documents kept as they are (custom type naming a format): annotations per tool
    #: (``bounding_box``, ``polygon``, ``keypoint``...); their classes are counted by name in ``classes``
    tools: dict[str, int] = field(default_factory=dict)


@dataclass
class ManifestStats:
    url: str
    lines: int
    blank_lines: int
    attributes: dict[str, AttributeStats]
    #: lines that are not a JSON object (counted in ``lines``, nothing else read from them)
    invalid_lines: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# --- partial counts (polars) -------------------------------------------------------------------

_SCHEMAS: dict[str, dict[str, pl.DataType]] = {
    "meta": {"attr": pl.String(), "type": pl.String(), "reason": pl.String(), "human": pl.String(),
             "job": pl.String(), "state": pl.Int8(), "n": pl.Int64()},
    "classes": {"attr": pl.String(), "class_id": pl.Int64(), "name": pl.String(), "n": pl.Int64()},
    "names": {"attr": pl.String(), "class_id": pl.Int64(), "name": pl.String()},
    "conf": {"attr": pl.String(), "bin": pl.Int64(), "n": pl.Int64(), "sum": pl.Float64()},
    "per_image": {"attr": pl.String(), "boxes": pl.Int64(), "n": pl.Int64()},
    "tools": {"attr": pl.String(), "tool": pl.String(), "n": pl.Int64()},
    "named": {"attr": pl.String(), "name": pl.String(), "n": pl.Int64()},
}
#: how two partial tables fold into one: group by the keys, sum the rest (names: distinct rows)
_KEYS = {name: [c for c in schema if c not in ("n", "sum")] for name, schema in _SCHEMAS.items()}


def _empty(name: str) -> pl.DataFrame:
    return pl.DataFrame(schema=_SCHEMAS[name])


def _fold(name: str, frames: Iterable[pl.LazyFrame | pl.DataFrame]) -> pl.DataFrame:
    """Concatenate partial tables and group them again, so the result has one row per key."""
    lazy = [f.lazy() for f in frames]
    if not lazy:
        return _empty(name)
    both = pl.concat(lazy, how="vertical")
    keys = _KEYS[name]
    if name == "names":
        return both.unique(maintain_order=False).collect()
    sums = [pl.col(c).sum() for c in _SCHEMAS[name] if c not in keys]
    return both.group_by(keys).agg(sums).collect()


def _names_frame(attr: str, pairs: set[tuple[Any, Any]]) -> pl.LazyFrame:
    """The ``(class id, name)`` pairs; ids that are not integers are left out."""
    rows: dict[tuple[int, str], None] = {}
    for key, name in pairs:
        class_id = class_id_of(key)
        if class_id is not None:
            rows[class_id, name if type(name) is str else str(name)] = None
    return pl.LazyFrame({"attr": [attr] * len(rows), "class_id": [k for k, _ in rows],
                         "name": [v for _, v in rows]}, schema=_SCHEMAS["names"])


def _counted(attr: str, name: str, counts: Mapping[tuple, int]) -> pl.LazyFrame:
    """Rows already counted (``Columns.meta_n``...): one row per key, its count in ``n``."""
    columns = [c for c in _SCHEMAS[name] if c not in ("attr", "n")]
    keys = list(counts)
    data: dict[str, list] = {"attr": [attr] * len(keys)}
    for i, column in enumerate(columns):
        data[column] = [k[i] for k in keys]
    data["n"] = list(counts.values())
    return pl.LazyFrame(data, schema=_SCHEMAS[name])


def batch_frames(columns: dict[str, Columns]) -> dict[str, list[pl.LazyFrame]]:
    """One batch's columns as lazy per-attribute counts (grouped when folded)."""
    out: dict[str, list[pl.LazyFrame]] = {name: [] for name in _SCHEMAS}
    one = pl.lit(1, pl.Int64)
    for attr, c in columns.items():
        a = pl.lit(attr, pl.String)
        meta = pl.LazyFrame({"type": c.types, "reason": c.reasons, "human": c.humans, "job": c.jobs,
                             "state": c.states},
                            schema={k: v for k, v in _SCHEMAS["meta"].items() if k not in ("attr", "n")})
        out["meta"].append(meta.select(a.alias("attr"), pl.all(), one.alias("n")))
        if c.meta_n:
            out["meta"].append(_counted(attr, "meta", c.meta_n))
        if c.class_n:
            out["classes"].append(_counted(attr, "classes", c.class_n))
        if c.per_image_n:
            out["per_image"].append(_counted(attr, "per_image", {(k,): n for k, n in c.per_image_n.items()}))
        if c.ids:
            try:
                labels = pl.Series(c.labels, dtype=pl.String, strict=True)
            except (TypeError, pl.exceptions.PolarsError):  # a name that is a number, list or object
                labels = pl.Series([label_text(n) for n in c.labels], dtype=pl.String)
            out["classes"].append(pl.LazyFrame({"class_id": c.ids, "name": labels},
                                               schema={"class_id": pl.Int64, "name": pl.String})
                                  .select(a.alias("attr"), "class_id", "name", one.alias("n")))
        if c.conf:
            v = pl.col("c")
            out["conf"].append(
                pl.LazyFrame({"c": c.conf}, schema={"c": pl.Float64})
                .select(a.alias("attr"), (v * BINS).floor().clip(0, BINS - 1).cast(pl.Int64).alias("bin"),
                        one.alias("n"), v.alias("sum"))
            )
        if c.unscored:  # bin -1: boxes or labels without a confidence
            out["conf"].append(pl.LazyFrame({"attr": [attr], "bin": [UNSCORED_BIN], "n": [c.unscored], "sum": [0.0]},
                                            schema=_SCHEMAS["conf"]))
        if c.no_class_id:  # bin -2: boxes or labels without a usable class id
            out["conf"].append(pl.LazyFrame({"attr": [attr], "bin": [NO_CLASS_ID_BIN], "n": [c.no_class_id],
                                             "sum": [0.0]}, schema=_SCHEMAS["conf"]))
        if c.per_image:
            out["per_image"].append(pl.LazyFrame({"boxes": c.per_image}, schema={"boxes": pl.Int64})
                                    .select(a.alias("attr"), "boxes", one.alias("n")))
        if c.names:
            out["names"].append(_names_frame(attr, c.names))
        for table, column, values in (("tools", "tool", c.tools), ("named", "name", c.named)):
            if values:
                out[table].append(pl.LazyFrame({column: values}, schema={column: pl.String})
                                  .select(a.alias("attr"), column, one.alias("n")))
    return out


@dataclass
class Partial:
    """Counts of one byte range (or a whole stream): small polars tables plus line counts."""

    lines: int = 0
    blank: int = 0
    invalid: int = 0
    tables: dict[str, pl.DataFrame] = field(default_factory=lambda: {n: _empty(n) for n in _SCHEMAS})

    def absorb(self, batch: dict[str, list[pl.LazyFrame]]) -> None:
        for name, frames in batch.items():
            if frames:
                self.tables[name] = _fold(name, [self.tables[name], *frames])


# --- merging the partials ----------------------------------------------------------------------

def _ranked(rows: Iterable[tuple[Any, int]]) -> dict[Any, int]:
    return dict(sorted(((k, int(n)) for k, n in rows if k is not None), key=lambda kv: (-kv[1], str(kv[0]))))


def _attribute(name: str, tables: dict[str, pl.DataFrame]) -> AttributeStats:
    s = AttributeStats(name)
    mine = {t: df.lazy().filter(pl.col("attr") == name) for t, df in tables.items()}
    meta = mine["meta"]
    state, n = pl.col("state"), pl.col("n")
    labeled, failed = (state & LABELED) != 0, (state & FAILED) != 0
    head = meta.select(n.sum().alias("lines"), n.filter(labeled).sum().alias("labeled"),
                       n.filter(failed).sum().alias("failed")).collect()
    s.lines, s.labeled, s.failed = (int(x or 0) for x in head.row(0))
    if not s.lines:
        return s

    def counts(lf: pl.LazyFrame, col: str) -> dict[Any, int]:
        return _ranked(lf.group_by(col).agg(n.sum()).collect().iter_rows())

    s.failures = counts(meta.filter(failed), "reason")
    types: Counter[str] = Counter()
    for k, v in counts(meta, "type").items():
        if k:  # an empty type names nothing
            types[k.removeprefix(GT_PREFIX)] += v
    s.types = _ranked(types.items())
    s.human_annotated = counts(meta.filter(labeled), "human")
    s.job_names = counts(meta.filter(labeled), "job")

    names: dict[int, list[str]] = {}
    for cid, nm in mine["names"].sort("class_id", "name").collect().select("class_id", "name").iter_rows():
        names.setdefault(cid, []).append(nm)
    per_pair = mine["classes"].group_by("class_id", "name").agg(n.sum()).collect().iter_rows()
    # documents kept as they are name their classes without ids
    by_name = mine["named"].group_by("name").agg(n.sum()).collect().iter_rows()
    s.classes, s.class_clashes = _by_name(per_pair, names, by_name)
    s.tools = _ranked(mine["tools"].group_by("tool").agg(n.sum()).collect().iter_rows())
    per_image = mine["per_image"].group_by("boxes").agg(n.sum()).collect().iter_rows()
    s.boxes_per_image = dict(sorted((int(b), int(k)) for b, k in per_image))
    s.boxes = sum(b * k for b, k in s.boxes_per_image.items())
    conf = mine["conf"].group_by("bin").agg(n.sum(), pl.col("sum").sum()).collect()
    total = 0.0
    for b, k, subtotal in conf.iter_rows():
        if b == UNSCORED_BIN:
            s.unscored = int(k)
            continue
        if b == NO_CLASS_ID_BIN:
            s.no_class_id = int(k)
            continue
        s.confidence_histogram[b] += int(k)
        s.confidence_count += int(k)
        total += float(subtotal)
    s.confidence_mean = total / s.confidence_count if s.confidence_count else None
    return s


def _by_name(per_pair: Iterable[tuple[int, str | None, int]], names: dict[int, list[str]],
             named: Iterable[tuple[str, int]] = ()) -> tuple[list[ClassCount], list[ClassClash]]:
    """Counts per class name (a label whose line names no class goes to the one name its id has
    elsewhere, else stays counted by id; ``named`` counts names that come without an id), and the
    ids and names that clash."""
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
    clashes = [ClassClash(None, name, {str(cid): k for cid, k in sorted(ids.items())})
               for name, ids in sorted(by_name.items()) if len(ids) > 1]
    per_id: dict[int, dict[str, int]] = {}
    for name, ids in by_name.items():
        for cid, k in ids.items():
            per_id.setdefault(cid, {})[name] = k
    clashes[:0] = [ClassClash(cid, None, dict(sorted(counts.items())))
                   for cid, counts in sorted(per_id.items()) if len(counts) > 1]
    return classes, clashes


def merge_partials(url: str, parts: list[Partial], attributes: Sequence[str] | None) -> ManifestStats:
    tables = {name: _fold(name, [p.tables[name] for p in parts]) for name in _SCHEMAS}
    if attributes is None:
        # attributes whose metadata declares a type or a failure somewhere; input keys such as
        # ``annotator-metadata`` never do
        declared = tables["meta"].filter((pl.col("state") & DECLARED) != 0)
        attributes = sorted(declared.get_column("attr").unique().to_list())
    return ManifestStats(
        url=str(url),
        lines=sum(p.lines for p in parts),
        blank_lines=sum(p.blank for p in parts),
        attributes={a: _attribute(a, tables) for a in attributes},
        invalid_lines=sum(p.invalid for p in parts),
    )

