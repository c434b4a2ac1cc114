"""What a manifest holds, counted exactly, in parallel, in constant memory.

Every line is parsed with orjson: no pattern guesses where a field starts or ends, so a brace
or a quote inside a string cannot shift a count. Parsing is the cost, so a local file is split
into byte ranges (``validate``'s ``iter_line_batches``: a line belongs to the range its first
byte is in, so ranges partition the file), shared out among one process per core. A process turns each line into a few narrow facts per label attribute (type, failure
reason, who labeled it, class ids, confidences, boxes per image) appended to plain column
lists; every ``BATCH_LINES`` lines those columns become polars frames that are grouped and
counted, and folded into the range's running partial counts. Only the counts cross process
boundaries; the parent concatenates the partials and groups them once more with polars.
Memory is bounded by the batch size and the number of distinct values (classes, reasons, job
names), never by the number of lines.

Other fsspec URLs (s3://, memory://) stream through the same per-line code in this process:
ranged reads of a remote object cost a request each and gain little.

This process counts ranges too, beside ``workers - 1`` pool processes. Those are started with
``spawn``: a process forked after polars has run its thread pool deadlocks on its first polars
query (the pool's threads do not survive the fork).
"""

from __future__ import annotations

import gc
import itertools
import logging
import multiprocessing
import os
import sys
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass, field
from typing import IO, Any

import orjson
import polars as pl

from .. import storage, worker_pool
from ..errors import UsageError
from ..failure_rules import rule_of
from ..manifest.line import BOM
from ..manifest.validate import iter_line_batches
from ..task_types import GT_PREFIX

#: confidence histogram: ten bins of width 0.1, the last one closed ([0.9, 1.0])
BINS = 10
#: the confidence table's bin for boxes or labels that carry no confidence at all
UNSCORED_BIN = -1
#: the same table's count of boxes or labels left out for want of a usable class id
NO_CLASS_ID_BIN = -2
DETECTION_TYPES = frozenset({"object-detection"})
SINGLE_TYPES = frozenset({"image-classification", "text-classification", "label-verification", "video-classification"})
MULTI_TYPES = frozenset({"image-classification-multilabel", "text-classification-multilabel"})
#: lines per column batch handed to polars
BATCH_LINES = 50_000
#: a local file is split into ranges of at least this many bytes (smaller files: one range, no pool)
MIN_RANGE_BYTES = 8 << 20
#: ranges per worker: many small ranges even out processes that start late or get less CPU
RANGES_PER_WORKER = 8
#: ``type`` string (with or without ``groundtruth/``) -> family of label value shape
_DET, _SINGLE, _MULTI = 1, 2, 3
_FAMILY = {
    prefix + name: family
    for family, names in ((_DET, DETECTION_TYPES), (_SINGLE, SINGLE_TYPES), (_MULTI, MULTI_TYPES))
    for name in names
    for prefix in ("", GT_PREFIX)
}
_CUSTOM = GT_PREFIX + "custom"
#: ``state`` bits of a metadata row
_LABELED, _FAILED, _DECLARED = 1, 2, 4
#: keys whose ``-metadata`` is not a label attribute's
_NOT_ATTRIBUTES = frozenset({"source", "source-ref"})
_SUFFIX = "-metadata"
#: distinct top-level keys remembered per process (lines with ever-new keys must not grow memory)
_KEY_CACHE = 4096
_UNSEEN = object()
_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1
log = logging.getLogger("totask_manifest")


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


# --- per-line facts ----------------------------------------------------------------------------

def _text(value: Any) -> str:
    """A non-string JSON value as a dictionary key: its JSON text."""
    return orjson.dumps(value).decode()


def _class_id(value: Any) -> int | None:
    """``value`` as a class id (an integer, or a string or float holding one), None when it is
    not one or lies outside the 64-bit range the count tables hold (``validate`` reports such
    values; counting them under a wrapped or clamped id would be a number nobody measured)."""
    try:
        class_id = int(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return class_id if _INT64_MIN <= class_id <= _INT64_MAX else None


def _label(name: Any) -> str | None:
    """A class name as counted: strings as they are, other JSON values as their text."""
    return name if name is None or type(name) is str else _text(name)


class _Columns:
    """Facts about one attribute over one batch of lines, as plain lists (cheap to append to).

    One entry per metadata object in ``types``/``reasons``/``humans``/``jobs``/``states``; one per
    box or chosen label in ``ids``; one per confidence in ``conf``; one per detection line in
    ``per_image``; ``names`` is the set of ``(class id, name)`` pairs (a set: class maps repeat
    on every line, their distinct pairs are few).
    """

    __slots__ = ("conf", "humans", "ids", "jobs", "labels", "named", "names", "no_class_id", "per_image", "reasons",
                 "states", "tools", "types", "unscored")

    def __init__(self) -> None:
        self.types: list[str | None] = []
        self.reasons: list[str | None] = []
        self.humans: list[str | None] = []
        self.jobs: list[str | None] = []
        self.states: list[int] = []
        self.ids: list[int] = []
        #: the name the line itself gives each entry of ``ids`` (its class map), or None
        self.labels: list[str | None] = []
        self.conf: list[float] = []
        self.per_image: list[int] = []
        self.names: set[tuple[Any, Any]] = set()
        #: native documents: one tool name per annotation, one class name per named annotation
        self.tools: list[str] = []
        self.named: list[str] = []
        #: boxes or chosen labels without a confidence (kept apart: a missing score is not 0.0)
        self.unscored = 0
        #: boxes or labels left out: no usable class id
        self.no_class_id = 0

    def add_native(self, value: Any, fmt: str) -> None:
        """A document kept as it is: its annotations by tool and class name, boxes per document."""
        from ..formats.native import shapes

        boxes = 0
        for shape in shapes(value, fmt):
            self.tools.append(shape.tool)
            if shape.class_name is not None:
                self.named.append(shape.class_name)
            if shape.box is not None:
                boxes += 1
            if shape.confidence is not None:
                self.conf.append(shape.confidence)
            elif shape.box is not None:
                self.unscored += 1  # a box without a score is unscored, not 0.0
        self.per_image.append(boxes)

    def add(self, record: dict, attribute: str, meta: dict) -> None:
        typ = meta.get("type")
        if typ is not None and type(typ) is not str:
            typ = _text(typ)
        self.types.append(typ)
        if "failure-reason" in meta:
            rule = meta.get("failure-rule")
            if type(rule) is not str or not rule:
                reason = meta["failure-reason"]
                rule = rule_of(reason if type(reason) is str else _text(reason))
            self.reasons.append(rule)
            self.humans.append(None)
            self.jobs.append(None)
            self.states.append(_FAILED | _DECLARED)
            return
        self.reasons.append(None)
        declared = _DECLARED if "type" in meta else 0
        if attribute not in record:
            self.humans.append(None)
            self.jobs.append(None)
            self.states.append(declared)
            return
        human = meta.get("human-annotated")
        self.humans.append(human if human is None or type(human) is str else _text(human))
        job = meta.get("job-name")
        self.jobs.append(job if job is None or type(job) is str else _text(job))
        self.states.append(_LABELED | declared)
        family = _FAMILY.get(typ)
        if family is None:
            fmt = meta.get("format")
            if type(typ) is str and typ.lower() == _CUSTOM and type(fmt) is str:
                self.add_native(record[attribute], fmt)
            return
        value = record[attribute]
        if family == _DET:
            if type(value) is not dict:
                return
            anns = value.get("annotations")
            boxes = 0
            class_map = meta.get("class-map")
            if type(class_map) is not dict:
                class_map = {}
            if type(anns) is list:
                ids = self.ids
                for a in anns:
                    if type(a) is dict and type(c := a.get("class_id")) is int and _INT64_MIN <= c <= _INT64_MAX:
                        ids.append(c)
                        boxes += 1
                if boxes:  # the names this line's class map gives its boxes (non-strings: _batch_frames)
                    self.labels += [class_map.get(str(c)) for c in ids[-boxes:]]
                self.no_class_id += len(anns) - boxes
            self.per_image.append(boxes)
            objects = meta.get("objects")
            if type(objects) is list:
                conf = self.conf
                for o in objects:
                    if type(o) is dict and type(c := o.get("confidence")) in (float, int):
                        conf.append(c)
                    else:
                        self.unscored += 1
            # boxes beyond the objects list have no confidence either
            self.unscored += max((len(anns) if type(anns) is list else 0) - (len(objects) if type(objects) is list else 0), 0)
            if class_map:
                try:  # the common case inline: this runs on every detection line
                    self.names.update(class_map.items())
                except TypeError:
                    self._names(class_map)
        elif family == _SINGLE:
            class_id = _class_id(value)
            if class_id is None:
                self.no_class_id += 1
                return
            self.ids.append(class_id)
            name = meta.get("class-name")
            self.labels.append(_label(name))
            if name is not None:
                self._names({class_id: name})
            conf = meta.get("confidence")
            if type(conf) in (float, int):
                self.conf.append(conf)
            else:
                self.unscored += 1
        elif type(value) is list:  # multi-label
            ids = [v for v in value if type(v) is int and _INT64_MIN <= v <= _INT64_MAX]
            self.ids += ids
            self.no_class_id += len(value) - len(ids)
            class_map = meta.get("class-map")
            if type(class_map) is dict:
                self._names(class_map)
                self.labels += [_label(class_map.get(str(v))) for v in ids]
            else:
                self.labels += [None] * len(ids)
            conf_map = meta.get("confidence-map")
            # only the chosen classes: a confidence-map may hold others too
            scored = [c for v in ids if type(c := conf_map.get(str(v))) in (float, int)] if type(conf_map) is dict else []
            self.conf += scored
            self.unscored += len(ids) - len(scored)

    def _names(self, class_map: dict) -> None:
        try:
            self.names.update(class_map.items())
        except TypeError:  # a name that is a list or an object: named by its JSON text
            self.names.update((k, v if type(v) is str else _text(v)) for k, v in class_map.items())


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
        class_id = _class_id(key)
        if class_id is not None:
            rows[class_id, name if type(name) is str else str(name)] = None
    return pl.LazyFrame({"attr": [attr] * len(rows), "class_id": [k for k, _ in rows],
                         "name": [v for _, v in rows]}, schema=_SCHEMAS["names"])


def _batch_frames(columns: dict[str, _Columns]) -> dict[str, list[pl.LazyFrame]]:
    """One batch's columns as lazy per-attribute counts (grouped when folded)."""
    out: dict[str, list[pl.LazyFrame]] = {name: [] for name in _SCHEMAS}
    one = pl.lit(1, pl.Int64)
    for attr, c in columns.items():
        a = pl.lit(attr, pl.String)
        meta = pl.LazyFrame({"type": c.types, "reason": c.reasons, "human": c.humans, "job": c.jobs,
                             "state": c.states},
                            schema={k: v for k, v in _SCHEMAS["meta"].items() if k not in ("attr", "n")})
        out["meta"].append(meta.select(a.alias("attr"), pl.all(), one.alias("n")))
        if c.ids:
            try:
                labels = pl.Series(c.labels, dtype=pl.String, strict=True)
            except (TypeError, pl.exceptions.PolarsError):  # a name that is a number, list or object
                labels = pl.Series([_label(n) for n in c.labels], dtype=pl.String)
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
class _Partial:
    """Counts of one byte range (or a whole stream): small polars tables plus line counts."""

    lines: int = 0
    blank: int = 0
    invalid: int = 0
    tables: dict[str, pl.DataFrame] = field(default_factory=lambda: {n: _empty(n) for n in _SCHEMAS})

    def absorb(self, batch: dict[str, list[pl.LazyFrame]]) -> None:
        for name, frames in batch.items():
            if frames:
                self.tables[name] = _fold(name, [self.tables[name], *frames])


def _count_lines(batches: Iterator[list[bytes]], attributes: Sequence[str] | None) -> _Partial:
    """Parse every line once; hand the facts to polars every ``BATCH_LINES`` lines."""
    part = _Partial()
    loads, decode_error = orjson.loads, orjson.JSONDecodeError
    columns: dict[str, _Columns] = {}
    # key -> label attribute (None: not a ``-metadata`` key); named attributes are the only keys
    keys: dict[str, Any] = (
        {a + _SUFFIX: a for a in attributes} if attributes is not None else {}
    )
    discover = attributes is None
    pending = 0
    gc_was_enabled = gc.isenabled()
    gc.disable()  # the loop makes no reference cycles; the collector would only rescan young dicts
    try:
        for lines in batches:
            part.lines += len(lines)
            pending += len(lines)
            for body in lines:
                try:
                    record = loads(body)
                except decode_error:
                    if body.strip():
                        part.invalid += 1
                    else:
                        part.blank += 1
                    continue
                if type(record) is not dict:
                    part.invalid += 1
                    continue
                for key in (record if discover else keys):
                    attr = keys.get(key, _UNSEEN)
                    if attr is _UNSEEN:  # a key seen for the first time (discovery only)
                        attr = key[: -len(_SUFFIX)] if key.endswith(_SUFFIX) else None
                        if attr in _NOT_ATTRIBUTES:
                            attr = None
                        if len(keys) < _KEY_CACHE:
                            keys[key] = attr
                    if attr is None:
                        continue
                    meta = record.get(key)
                    if type(meta) is not dict:
                        continue
                    cols = columns.get(attr)
                    if cols is None:
                        cols = columns[attr] = _Columns()
                    cols.add(record, attr, meta)
            if pending >= BATCH_LINES:
                part.absorb(_batch_frames(columns))
                columns, pending = {}, 0
    finally:
        if gc_was_enabled:
            gc.enable()
    if columns:
        part.absorb(_batch_frames(columns))
    return part


def _count_stream(f: IO[bytes], attributes: Sequence[str] | None, start: int = 0, end: int | None = None) -> _Partial:
    batches = iter_line_batches(f, start=start, end=end)
    if start == 0:  # a byte order mark before the file's first line is not part of its JSON
        first = next(batches, None)
        if first is None:
            return _Partial()
        if first and first[0].startswith(BOM):
            first[0] = first[0][len(BOM):]
        batches = itertools.chain([first], batches)
    return _count_lines(batches, attributes)


def _count_range(path: str, start: int, end: int, attributes: Sequence[str] | None) -> _Partial:
    """A worker's job: the lines starting in ``[start, end)`` of a local file."""
    with open(path, "rb") as f:
        return _count_stream(f, attributes, start, end)


def _ranges(size: int, workers: int) -> list[tuple[int, int]]:
    count = max(1, min(workers * RANGES_PER_WORKER, size // MIN_RANGE_BYTES)) if workers > 1 else 1
    step = -(-size // count) if size else 0
    return [(i * step, min((i + 1) * step, size)) for i in range(count)]


def _spawn_works() -> bool:
    """``spawn`` re-runs the main script in each worker: impossible for one read from stdin."""
    main_file = getattr(sys.modules.get("__main__"), "__file__", None)
    return main_file is None or os.path.exists(main_file)


def _count_local(f: IO[bytes], path: str, attributes: Sequence[str] | None, workers: int) -> list[_Partial]:
    """Count an open local file: in this process when it makes one range, else with a pool.

    This process is one of the ``workers``: it takes ranges from the end of the queue (those no
    worker has picked up yet; ``Future.cancel`` succeeds only for them) while ``workers - 1``
    pool processes take them from the front, so nobody waits for a process to start.
    """
    ranges = _ranges(os.fstat(f.fileno()).st_size, workers)
    if len(ranges) == 1 or not _spawn_works():
        return [_count_stream(f, attributes)]
    context = multiprocessing.get_context("spawn")
    parts: dict[int, _Partial] = {}
    broken = False
    with ProcessPoolExecutor(max_workers=min(workers - 1, len(ranges) - 1), mp_context=context,
                             initializer=worker_pool.quiet_worker) as pool:
        with worker_pool.spawning():  # workers ignore Ctrl-C from their first instruction
            futures = [pool.submit(_count_range, path, start, end, attributes) for start, end in ranges]
        try:
            for i in reversed(range(len(ranges))):
                if futures[i].cancel():
                    parts[i] = _count_range(path, *ranges[i], attributes)
            for i, future in enumerate(futures):
                if i in parts:
                    continue
                try:
                    parts[i] = future.result()
                except BrokenProcessPool as exc:  # a worker was killed: exact counts, only slower
                    if not broken:
                        log.warning("stats: a worker process died (%s); counting the rest in this process", exc)
                    broken = True
                    parts[i] = _count_range(path, *ranges[i], attributes)
        except BaseException:
            worker_pool.stop(pool, futures)  # a Ctrl-C: no traceback from the pool or its workers
            raise
    return [parts[i] for i in range(len(ranges))]


# --- merging the partials ----------------------------------------------------------------------

def _ranked(rows: Iterable[tuple[Any, int]]) -> dict[Any, int]:
    return dict(sorted(((k, int(n)) for k, n in rows if k is not None), key=lambda kv: (-kv[1], str(kv[0]))))


def _attribute(name: str, tables: dict[str, pl.DataFrame]) -> AttributeStats:
    s = AttributeStats(name)
    mine = {t: df.lazy().filter(pl.col("attr") == name) for t, df in tables.items()}
    meta = mine["meta"]
    state, n = pl.col("state"), pl.col("n")
    labeled, failed = (state & _LABELED) != 0, (state & _FAILED) != 0
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


def _merge(url: str, parts: list[_Partial], attributes: Sequence[str] | None) -> ManifestStats:
    tables = {name: _fold(name, [p.tables[name] for p in parts]) for name in _SCHEMAS}
    if attributes is None:
        # attributes whose metadata declares a type or a failure somewhere; input keys such as
        # ``annotator-metadata`` never do
        declared = tables["meta"].filter((pl.col("state") & _DECLARED) != 0)
        attributes = sorted(declared.get_column("attr").unique().to_list())
    return ManifestStats(
        url=str(url),
        lines=sum(p.lines for p in parts),
        blank_lines=sum(p.blank for p in parts),
        attributes={a: _attribute(a, tables) for a in attributes},
        invalid_lines=sum(p.invalid for p in parts),
    )


def manifest_stats(url: str, *, label_attributes: Sequence[str] | None = None,
                   workers: int | None = None) -> ManifestStats:
    """Count what the manifest at ``url`` holds, per label attribute (all of them by default).

    Without ``label_attributes`` every key ``<A>-metadata`` holding an object is a candidate,
    and candidates whose metadata never declares a ``type`` or a ``failure-reason`` (input keys
    such as ``annotator-metadata``) are left out. ``workers`` (default: one per CPU) processes
    read a local file's byte ranges; other URLs are streamed by this process.
    """
    if workers is not None and workers < 1:
        raise UsageError(f"workers must be at least 1 (got {workers})")
    workers = workers or os.cpu_count() or 1
    attributes = list(dict.fromkeys(label_attributes)) if label_attributes else None
    fs, path = storage.url_to_fs(url)
    with storage.open_read(url) as f:  # a missing file: the same clear error as everywhere
        parts = _count_local(f, path, attributes, workers) if storage.is_local(fs) else [_count_stream(f, attributes)]
    return _merge(url, parts, attributes)


# --- text rendering ----------------------------------------------------------------------------

def _bar(n: int, top: int, width: int = 30) -> str:
    return "#" * max(1 if n else 0, round(width * n / top)) if top else ""


def format_text(stats: ManifestStats) -> str:
    """A report for people; ``--format json`` gives ``to_dict()`` for programs."""
    out = [f"{stats.url}", f"  lines: {stats.lines:,} ({stats.blank_lines:,} blank)"]
    if stats.invalid_lines:
        out.append(f"  lines that are not a JSON object: {stats.invalid_lines:,} (run validate to see why)")
    if not stats.attributes:
        out.append("  no label attributes (an input manifest)")
    for a in stats.attributes.values():
        out.append(f"\nlabel attribute {a.name!r}")
        out.append(f"  lines with metadata: {a.lines:,}   labeled: {a.labeled:,}   failed: {a.failed:,}")
        if a.types:
            out.append("  task types: " + ", ".join(f"{k} ({n:,})" for k, n in a.types.items()))
        if a.human_annotated:
            out.append("  human-annotated: " + ", ".join(
                f"{k} ({'human' if k == 'yes' else 'machine' if k == 'no' else '?'}) {n:,}"
                for k, n in a.human_annotated.items()))
        if a.job_names:
            out.append("  jobs: " + ", ".join(f"{k} ({n:,})" for k, n in a.job_names.items()))
        if a.failures:
            out.append("  failures by rule:")
            out += [f"    {n:>9,}  {rule}" for rule, n in a.failures.items()]
        if a.classes:
            top = max(cc.count for cc in a.classes)
            out.append("  labels per class:")
            out += [f"    {cc.count:>9,}  {','.join(map(str, cc.class_ids)) or '-':>4} "
                    f"{cc.name or '?':<24} {_bar(cc.count, top)}" for cc in a.classes]
        for clash in a.class_clashes:
            if clash.class_id is not None:
                out.append(f"  class id {clash.class_id} has several names: "
                           + ", ".join(f"{name!r} ({k:,})" for name, k in clash.counts.items()))
            else:
                out.append(f"  class {clash.name!r} has several ids: "
                           + ", ".join(f"{cid} ({k:,})" for cid, k in clash.counts.items()))
        if a.tools:
            out.append("  annotations per tool: " + ", ".join(f"{k} ({n:,})" for k, n in a.tools.items()))
        if a.boxes_per_image:
            out.append(f"  boxes: {a.boxes:,}; images per box count:")
            out += [f"    {n:>4} boxes: {k:,}" for n, k in a.boxes_per_image.items()]
        if a.confidence_count:
            top = max(a.confidence_histogram)
            out.append(f"  confidence (n={a.confidence_count:,}, mean {a.confidence_mean:.3f}):")
            for b, n in enumerate(a.confidence_histogram):
                hi = "]" if b == BINS - 1 else ")"
                out.append(f"    [{b / BINS:.1f}, {(b + 1) / BINS:.1f}{hi} {n:>9,} {_bar(n, top)}")
        if a.unscored:
            out.append(f"  without a confidence (unscored, not in the histogram): {a.unscored:,}")
        if a.no_class_id:
            out.append(f"  left out of every count: {a.no_class_id:,} box(es) or label(s) whose class_id is not an "
                       "integer within 64 bits (validate names their lines)")
    return "\n".join(out) + "\n"
