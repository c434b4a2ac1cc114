"""What a manifest holds, counted with polars in constant memory.

Lines are read as one string column (``pl.scan_lines``); nothing asks polars to infer nested
structs, which is slow on manifests and unifies types across lines (performance-notes.md).
Even polars' own per-line JSON (``str.json_path_match``, ``str.json_decode``) parses the whole
line for every field, about 12 s per field on a million lines, so fields are found with
regular expressions scoped to the attribute: the ``"<A>-metadata": {...}`` object (nested two
levels deep at most, which covers every built-in type's metadata) and the ``"<A>": ...`` value.
A line the expressions cannot scope (deeper nesting, odd braces inside strings) goes to an
exact path that parses it with orjson, so every line is counted exactly once and correctly.

Both paths write the same narrow per-line columns to temporary Parquet files; every count is a
small query over those. Strings are kept in their JSON-escaped form until the counts are done
and unescaped then, on the few distinct values.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import orjson
import polars as pl

from ..task_types import GT_PREFIX
from .sources import local_file

LINE = "line"
#: confidence histogram: ten bins of width 0.1, the last one closed ([0.9, 1.0])
BINS = 10
DETECTION_TYPES = frozenset({"object-detection"})
SINGLE_TYPES = frozenset({"image-classification", "text-classification", "label-verification", "video-classification"})
MULTI_TYPES = frozenset({"image-classification-multilabel", "text-classification-multilabel"})
ENGINE = "streaming"
_FAMILIES = {"detection": DETECTION_TYPES, "single": SINGLE_TYPES, "multi": MULTI_TYPES}

_META_KEY = r'"[^"\\]+-metadata"\s*:\s*\{'
_TYPE_VALUE = r'"type"\s*:\s*"groundtruth/[^"\\]*"'
#: a JSON object nested at most three levels (braces inside strings are rare; see the exact path)
_OBJ3 = r"\{[^{}]*(?:\{[^{}]*(?:\{[^{}]*\}[^{}]*)*\}[^{}]*)*\}"
_STR = r'"[^"\\]*(?:\\.[^"\\]*)*"'
_NUM = r"-?[0-9][0-9.eE+-]*"
#: a brace where JSON structure cannot put one, so it sits inside a string: ``a{``, ``{b``,
#: ``\\"}``, ``x}``, ``}"`` (a cheap test; a full quote-aware scan costs more than the rest)
_BRACE_IN_STRING = r'[^:\[,\s]\s*\{|\{[^"}\s]|\\"\s*\}|[^"0-9{}\]el\s]\s*\}|\}\s*"'
_EXACT_BATCH = 10_000


@dataclass
class ClassCount:
    class_id: int | None
    name: str | None
    count: int


@dataclass
class AttributeStats:
    """Counts for one label attribute ``A`` (lines holding ``A-metadata``)."""

    name: str
    #: lines with ``A-metadata``
    lines: int = 0
    #: lines with a label value and no ``failure-reason``
    labeled: int = 0
    failed: int = 0
    failures: dict[str, int] = field(default_factory=dict)
    #: task type (without ``groundtruth/``) -> lines
    types: dict[str, int] = field(default_factory=dict)
    #: ``human-annotated`` value -> labeled lines (``yes`` human, ``no`` machine)
    human_annotated: dict[str, int] = field(default_factory=dict)
    job_names: dict[str, int] = field(default_factory=dict)
    #: boxes (detection) or chosen labels (classification) per class, most frequent first
    classes: list[ClassCount] = field(default_factory=list)
    #: counts per confidence bin [0,0.1), ..., [0.9,1.0]; per box for detection, per label otherwise
    confidence_histogram: list[int] = field(default_factory=lambda: [0] * BINS)
    confidence_count: int = 0
    confidence_mean: float | None = None
    #: detection only: labeled lines per number of boxes, and all boxes
    boxes_per_image: dict[int, int] = field(default_factory=dict)
    boxes: int = 0


@dataclass
class ManifestStats:
    url: str
    lines: int
    blank_lines: int
    attributes: dict[str, AttributeStats]
    #: lines the regular expressions could not scope and orjson counted instead
    exact_path_lines: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# --- per-line columns --------------------------------------------------------------------------

def _schema(n: int) -> dict[str, pl.DataType]:
    out: dict[str, pl.DataType] = {}
    for i in range(n):
        p = f"a{i}_"
        out |= {
            p + "has_meta": pl.Boolean(), p + "has_value": pl.Boolean(), p + "type": pl.String(),
            p + "failure": pl.String(), p + "human": pl.String(), p + "job": pl.String(),
            p + "class_map": pl.String(), p + "box_ids": pl.List(pl.Int64), p + "box_conf": pl.List(pl.Float64),
            p + "single_id": pl.Int64(), p + "single_name": pl.String(), p + "single_conf": pl.Float64(),
            p + "multi_ids": pl.List(pl.Int64), p + "conf_map": pl.String(),
        }
    return out


def _key(name: str) -> str:
    """The regex for ``"name":`` as it appears in JSON text."""
    return re.escape(orjson.dumps(name).decode()) + r"\s*:\s*"


def _first(expr: pl.Expr, pattern: str) -> pl.Expr:
    # extract_all returns whole matches without capture groups, several times faster than extract
    return expr.str.extract_all(pattern).list.first()


def _after_colon(expr: pl.Expr) -> pl.Expr:
    """``"key": value`` or ``: value`` -> ``value``."""
    return expr.str.replace(r'^(?:"(?:[^"\\]|\\.)*")?\s*:\s*', "")


def _string_field(meta: pl.Expr, key: str) -> pl.Expr:
    """A string field of the metadata object, still JSON-escaped."""
    return _after_colon(_first(meta, _key(key) + _STR)).str.slice(1).str.strip_suffix('"')


def _numbers(expr: pl.Expr, key: str) -> pl.Expr:
    return expr.str.extract_all(_key(key) + _NUM).list.eval(
        pl.element().str.replace(r"^.*:\s*", "").cast(pl.Float64, strict=False)
    )


def _fast_columns(attrs: Sequence[str], families: set[str]) -> tuple[list[pl.Expr], list[pl.Expr], pl.Expr]:
    """(scoping columns, per-line columns, "some attribute could not be scoped").

    Each key is found with a literal search and its object matched anchored at that spot,
    which costs a third of an unanchored search over the line. Only the value shapes of the
    task type families the file holds (``families``) are looked for.
    """
    line = pl.col(LINE)
    scope: list[pl.Expr] = []
    cols: list[pl.Expr] = []
    hard: list[pl.Expr] = []
    null_str, null_int = pl.lit(None, pl.String), pl.lit(None, pl.Int64)
    for i, attr in enumerate(attrs):
        p = f"a{i}_"
        # what follows the first ``"A-metadata"`` / ``"A"``: starts with ``:`` when it is a key
        mtail = line.str.splitn(orjson.dumps(attr + "-metadata").decode(), 2).struct.field("field_1")
        vtail = line.str.splitn(orjson.dumps(attr).decode(), 2).struct.field("field_1")
        colon = r"^\s*:\s*"
        scope += [
            mtail.is_not_null().alias(p + "mkey"),
            _first(mtail, colon + _OBJ3).alias(p + "m"),
            vtail.is_not_null().alias(p + "vkey"),
            (_first(vtail, colon + _OBJ3) if "detection" in families else null_str).alias(p + "vobj"),
            (_first(vtail, colon + r"(?:-?\d+|\"\d+\")") if "single" in families else null_str).alias(p + "vint"),
            (_first(vtail, colon + r"\[[^\[\]{}]*\]") if "multi" in families else null_str).alias(p + "vlist"),
        ]
        m, typ = pl.col(p + "m"), pl.col(p + "type")
        det = typ.is_in([GT_PREFIX + t for t in DETECTION_TYPES])
        single = typ.is_in([GT_PREFIX + t for t in SINGLE_TYPES])
        multi = typ.is_in([GT_PREFIX + t for t in MULTI_TYPES])
        cols += [
            m.is_not_null().alias(p + "has_meta"),
            pl.col(p + "vkey").alias(p + "has_value"),
            _string_field(m, "type").alias(p + "type"),
            _string_field(m, "failure-reason").alias(p + "failure"),
            _string_field(m, "human-annotated").alias(p + "human"),
            _string_field(m, "job-name").alias(p + "job"),
            _after_colon(_first(m, _key("class-map") + r"\{[^{}]*\}")).alias(p + "class_map"),
        ]
        if "detection" in families:
            ids = _numbers(_after_colon(pl.col(p + "vobj")), "class_id").list.eval(
                pl.element().cast(pl.Int64, strict=False)
            )
            cols += [pl.when(det).then(ids).alias(p + "box_ids"),
                     pl.when(det).then(_numbers(m, "confidence")).alias(p + "box_conf")]
        else:
            cols += [pl.lit(None, pl.List(pl.Int64)).alias(p + "box_ids"),
                     pl.lit(None, pl.List(pl.Float64)).alias(p + "box_conf")]
        if "single" in families:
            value = _after_colon(pl.col(p + "vint")).str.strip_chars('"').cast(pl.Int64, strict=False)
            cols += [pl.when(single).then(value).alias(p + "single_id"),
                     pl.when(single).then(_string_field(m, "class-name")).alias(p + "single_name"),
                     pl.when(single).then(_numbers(m, "confidence").list.first()).alias(p + "single_conf")]
        else:
            cols += [null_int.alias(p + "single_id"), null_str.alias(p + "single_name"),
                     pl.lit(None, pl.Float64).alias(p + "single_conf")]
        if "multi" in families:
            ids = _after_colon(pl.col(p + "vlist")).str.extract_all(r"\d+").list.eval(pl.element().cast(pl.Int64))
            conf_map = _after_colon(_first(m, _key("confidence-map") + r"\{[^{}]*\}"))
            cols += [pl.when(multi).then(ids).alias(p + "multi_ids"),
                     pl.when(multi).then(conf_map).alias(p + "conf_map")]
        else:
            cols += [pl.lit(None, pl.List(pl.Int64)).alias(p + "multi_ids"), null_str.alias(p + "conf_map")]
        value_missed = pl.col(p + "vkey") & (
            (det & pl.col(p + "vobj").is_null())
            | (single & pl.col(p + "vint").is_null())
            | (multi & pl.col(p + "vlist").is_null())
        )
        # a brace inside a string (a class name, a quoted error body) could end the match in the
        # wrong place: such lines take the exact path
        braces_in_strings = m.str.contains(_BRACE_IN_STRING)
        hard.append(
            (pl.col(p + "mkey") & m.is_null()) | value_missed.fill_null(False) | braces_in_strings.fill_null(False)
        )
    return scope, cols, pl.any_horizontal(hard) if hard else pl.lit(False)


def _esc(s: Any) -> str | None:
    """The JSON-escaped body of a string, as the fast path keeps it."""
    return orjson.dumps(s).decode()[1:-1] if isinstance(s, str) else None


def _unesc(s: str) -> str:
    try:
        return orjson.loads('"' + s + '"') if "\\" in s else s
    except orjson.JSONDecodeError:
        return s


def _exact_row(raw: str, attrs: Sequence[str]) -> dict[str, Any]:
    """The per-line columns for one line, from a real JSON parse."""
    row: dict[str, Any] = {}
    try:
        rec = orjson.loads(raw)
    except orjson.JSONDecodeError:
        rec = None
    if not isinstance(rec, dict):
        rec = {}
    for i, attr in enumerate(attrs):
        p = f"a{i}_"
        meta = rec.get(attr + "-metadata")
        meta = meta if isinstance(meta, dict) else None
        value = rec.get(attr)
        typ = meta.get("type") if meta else None
        name = typ[len(GT_PREFIX):] if isinstance(typ, str) and typ.startswith(GT_PREFIX) else None
        cm = meta.get("class-map") if meta else None
        row |= {
            p + "has_meta": meta is not None, p + "has_value": attr in rec,
            p + "type": _esc(typ), p + "failure": _esc(meta.get("failure-reason")) if meta else None,
            p + "human": _esc(meta.get("human-annotated")) if meta else None,
            p + "job": _esc(meta.get("job-name")) if meta else None,
            p + "class_map": orjson.dumps(cm).decode() if isinstance(cm, dict) else None,
            p + "box_ids": None, p + "box_conf": None, p + "single_id": None, p + "single_name": None,
            p + "single_conf": None, p + "multi_ids": None, p + "conf_map": None,
        }
        if meta is None:
            continue
        if name in DETECTION_TYPES and isinstance(value, dict):
            anns = value.get("annotations") or []
            row[p + "box_ids"] = [a.get("class_id") for a in anns if isinstance(a, dict)
                                  and isinstance(a.get("class_id"), int)]
            objs = meta.get("objects") or []
            row[p + "box_conf"] = [float(o["confidence"]) for o in objs if isinstance(o, dict)
                                   and isinstance(o.get("confidence"), int | float)]
        elif name in SINGLE_TYPES:
            with contextlib.suppress(TypeError, ValueError):
                row[p + "single_id"] = int(value)
            row[p + "single_name"] = _esc(meta.get("class-name"))
            conf = meta.get("confidence")
            row[p + "single_conf"] = float(conf) if isinstance(conf, int | float) else None
        elif name in MULTI_TYPES and isinstance(value, list):
            row[p + "multi_ids"] = [v for v in value if isinstance(v, int)]
            cmap = meta.get("confidence-map")
            row[p + "conf_map"] = orjson.dumps(cmap).decode() if isinstance(cmap, dict) else None
    return row


@contextlib.contextmanager
def _per_line_tables(
    path: str, attrs: Sequence[str], families: set[str]
) -> Iterator[tuple[pl.LazyFrame, int, int, int]]:
    """Write the per-line columns (fast path and exact path) to Parquet.

    Yields the table, the number of lines, of blank lines and of lines on the exact path.
    """
    tmpdir = tempfile.mkdtemp(prefix="totask-stats-")
    try:
        scope, cols, hard = _fast_columns(attrs, families)
        # the type decides which value pattern applies, so it is computed first
        types = [c for c in cols if c.meta.output_name().endswith("_type")]
        rest = [c for c in cols if not c.meta.output_name().endswith("_type")]
        schema = _schema(len(attrs))
        lines = (
            pl.scan_lines(path, name=LINE).with_columns(scope).with_columns(types).with_columns(hard.alias("_hard"))
        )
        fast = os.path.join(tmpdir, "fast.parquet")
        # one pass over the text: the columns, plus the raw line only where the fast path gave up
        lines.select(rest + [pl.col(c.meta.output_name()) for c in types] + [pl.col("_hard"), pl.col(LINE)]).select(
            *schema,
            pl.col("_hard"),
            pl.when(pl.col("_hard")).then(pl.col(LINE)).alias("_raw"),
            (pl.col(LINE).str.strip_chars() == "").alias("_blank"),
        ).sink_parquet(fast, engine=ENGINE)
        counts = _collect(pl.scan_parquet(fast).select(pl.len(), pl.col("_blank").sum()))
        n_lines, n_blank = (int(x or 0) for x in counts.row(0))
        exact_lines = 0
        exact_files = []
        hard_lines = pl.scan_parquet(fast).filter(pl.col("_hard")).select("_raw")
        for k, batch in enumerate(hard_lines.collect_batches(chunk_size=_EXACT_BATCH, engine=ENGINE)):
            if batch.height == 0:
                continue
            exact_lines += batch.height
            rows = [_exact_row(raw, attrs) for raw in batch["_raw"]]
            exact_files.append(os.path.join(tmpdir, f"exact-{k:06d}.parquet"))
            pl.DataFrame(rows, schema=schema).write_parquet(exact_files[-1])
        table = pl.scan_parquet(fast).filter(~pl.col("_hard")).select(list(schema))
        if exact_files:
            table = pl.concat([table, pl.scan_parquet(exact_files, schema=schema)])
        yield table, n_lines, n_blank, exact_lines
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)


# --- counts ------------------------------------------------------------------------------------

def _collect(lf: pl.LazyFrame) -> pl.DataFrame:
    return lf.collect(engine=ENGINE)


def _counts(lf: pl.LazyFrame, col: str, *, unescape: bool = True) -> dict[Any, int]:
    df = _collect(lf.filter(pl.col(col).is_not_null()).group_by(col).len())
    out: Counter = Counter()
    for key, n in df.iter_rows():
        out[_unesc(key) if unescape and isinstance(key, str) else key] += int(n)
    return dict(sorted(out.items(), key=lambda kv: (-kv[1], str(kv[0]))))


def _class_names(lf: pl.LazyFrame, col: str) -> dict[int, str]:
    """Names from every distinct class map; an id named differently on different lines gets ``a|b``."""
    names: dict[int, set[str]] = {}
    for (raw,) in _collect(lf.select(pl.col(col)).drop_nulls().unique()).iter_rows():
        with contextlib.suppress(orjson.JSONDecodeError, AttributeError):
            for k, v in orjson.loads(raw).items():
                with contextlib.suppress(ValueError):
                    names.setdefault(int(k), set()).add(str(v))
    return {cid: "|".join(sorted(v)) for cid, v in names.items()}


def _histogram(lf: pl.LazyFrame, values: pl.Expr) -> tuple[list[int], int, float]:
    v = pl.col("c")
    df = _collect(
        lf.select(values.alias("c"))
        .drop_nulls()
        .select(v.clip(0, 1).mul(BINS).floor().cast(pl.Int64).clip(0, BINS - 1).alias("bin"), v)
        .group_by("bin")
        .agg(pl.len().alias("n"), v.sum().alias("sum"))
    )
    hist = [0] * BINS
    total, acc = 0, 0.0
    for b, n, s in df.iter_rows():
        hist[b] += int(n)
        total += int(n)
        acc += float(s)
    return hist, total, acc


def _multi_confidences(lf: pl.LazyFrame, p: str) -> pl.LazyFrame:
    """Confidences of the chosen classes only (a confidence-map may hold other classes too)."""
    rows = lf.select(p + "multi_ids", p + "conf_map").with_row_index("row")
    pairs = (
        rows.select("row", pl.col(p + "conf_map").str.extract_all(r'"\d+"\s*:\s*' + _NUM).alias("pair"))
        .explode("pair")
        .drop_nulls("pair")
        .select(
            "row",
            pl.col("pair").str.extract(r'"(\d+)"', 1).cast(pl.Int64).alias("class_id"),
            pl.col("pair").str.replace(r"^.*:\s*", "").cast(pl.Float64, strict=False).alias("conf"),
        )
    )
    chosen = rows.select("row", pl.col(p + "multi_ids").alias("class_id")).explode("class_id")
    return chosen.join(pairs, on=["row", "class_id"], how="inner")


def _attribute(table: pl.LazyFrame, attr: str, i: int) -> AttributeStats:
    p = f"a{i}_"
    c = pl.col
    lf = table.filter(c(p + "has_meta"))
    s = AttributeStats(attr)
    ok = c(p + "has_value") & c(p + "failure").is_null()
    head = _collect(lf.select(pl.len().alias("lines"), ok.sum().alias("labeled"),
                              c(p + "failure").is_not_null().sum().alias("failed")))
    s.lines, s.labeled, s.failed = (int(x or 0) for x in head.row(0))
    if s.lines == 0:
        return s
    s.failures = _counts(lf, p + "failure")
    s.types = {k[len(GT_PREFIX):] if k.startswith(GT_PREFIX) else k: n for k, n in _counts(lf, p + "type").items()}
    labeled = lf.filter(ok)
    s.human_annotated = _counts(labeled, p + "human")
    s.job_names = _counts(labeled, p + "job")

    classes: list[ClassCount] = []
    parts: list[tuple[list[int], int, float]] = []
    if s.types.keys() & DETECTION_TYPES:
        det = labeled.filter(c(p + "box_ids").is_not_null())
        names = _class_names(det, p + "class_map")
        ids = _counts(det.select(c(p + "box_ids").explode()), p + "box_ids")
        classes += [ClassCount(cid, names.get(cid), n) for cid, n in ids.items()]
        per_image = _collect(det.select(c(p + "box_ids").list.len().alias("n")).group_by("n").len())
        s.boxes_per_image = dict(sorted((int(n), int(k)) for n, k in per_image.iter_rows()))
        s.boxes = sum(n * k for n, k in s.boxes_per_image.items())
        parts.append(_histogram(det, c(p + "box_conf").explode()))
    if s.types.keys() & SINGLE_TYPES:
        single = labeled.filter(c(p + "single_id").is_not_null())
        df = _collect(single.group_by(p + "single_id", p + "single_name").len())
        per_id: dict[int, list] = {}
        for cid, name, n in df.iter_rows():
            entry = per_id.setdefault(cid, [set(), 0])
            if name is not None:
                entry[0].add(_unesc(name))
            entry[1] += int(n)
        classes += [ClassCount(cid, "|".join(sorted(nm)) or None, n) for cid, (nm, n) in per_id.items()]
        parts.append(_histogram(single, c(p + "single_conf")))
    if s.types.keys() & MULTI_TYPES:
        multi = labeled.filter(c(p + "multi_ids").is_not_null())
        names = _class_names(multi, p + "class_map")
        ids = _counts(multi.select(c(p + "multi_ids").explode()), p + "multi_ids")
        classes += [ClassCount(cid, names.get(cid), n) for cid, n in ids.items()]
        parts.append(_histogram(_multi_confidences(multi, p), c("conf")))
    s.classes = sorted(classes, key=lambda cc: (-cc.count, cc.class_id if cc.class_id is not None else -1))
    total = sum(n for _, n, _ in parts)
    if total:
        s.confidence_histogram = [sum(h[b] for h, _, _ in parts) for b in range(BINS)]
        s.confidence_count = total
        s.confidence_mean = sum(acc for _, _, acc in parts) / total
    return s


def _discover(path: str) -> tuple[list[str], set[str]]:
    """Candidate attributes (every ``"<A>-metadata": {`` key) and the task type families present."""
    df = _collect(
        pl.scan_lines(path, name=LINE)
        .select(pl.col(LINE).str.extract_all(_META_KEY + "|" + _TYPE_VALUE).alias("k"))
        .explode("k")
        .drop_nulls("k")
        .group_by("k")
        .len()
    )
    names: set[str] = set()
    families: set[str] = set()
    for key, _ in df.iter_rows():
        if key.startswith('"type"'):
            name = _unesc(key[key.index(GT_PREFIX) + len(GT_PREFIX) : -1])
            families |= {fam for fam, types in _FAMILIES.items() if name in types}
        else:
            names.add(_unesc(key[1 : key.rindex('-metadata"')]))
    return sorted(names - {"source", "source-ref"}), families


def _count_lines(path: str) -> tuple[int, int]:
    df = _collect(pl.scan_lines(path, name=LINE).select(pl.len(), (pl.col(LINE).str.strip_chars() == "").sum()))
    return int(df.row(0)[0]), int(df.row(0)[1] or 0)


def manifest_stats(url: str, *, label_attributes: Sequence[str] | None = None) -> ManifestStats:
    """Count what the manifest at ``url`` holds, per label attribute (all of them by default).

    Without ``label_attributes`` every key ``<A>-metadata`` is a candidate, and candidates whose
    metadata never declares a type or a failure (input keys such as ``annotator-metadata``) are
    left out.
    """
    with local_file(url, suffix=".manifest") as path:
        if label_attributes:
            # no discovery pass: look for every value shape
            attrs, families = list(dict.fromkeys(label_attributes)), set(_FAMILIES)
        else:
            attrs, families = _discover(path)
        out: dict[str, AttributeStats] = {}
        if not attrs:
            lines, blank = _count_lines(path)
            return ManifestStats(url=str(url), lines=lines, blank_lines=blank, attributes=out)
        with _per_line_tables(path, attrs, families) as (table, lines, blank, exact):
            for i, attr in enumerate(attrs):
                s = _attribute(table, attr, i)
                if label_attributes or s.types or s.failed:
                    out[attr] = s
        return ManifestStats(url=str(url), lines=lines, blank_lines=blank, attributes=out, exact_path_lines=exact)


# --- text rendering ----------------------------------------------------------------------------

def _bar(n: int, top: int, width: int = 30) -> str:
    return "#" * max(1 if n else 0, round(width * n / top)) if top else ""


def format_text(stats: ManifestStats) -> str:
    """A report for people; ``--format json`` gives ``to_dict()`` for programs."""
    out = [f"{stats.url}", f"  lines: {stats.lines:,} ({stats.blank_lines:,} blank)"]
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
            out.append("  failures by reason:")
            out += [f"    {n:>9,}  {reason}" for reason, n in a.failures.items()]
        if a.classes:
            top = max(cc.count for cc in a.classes)
            out.append("  labels per class:")
            out += [f"    {cc.count:>9,}  {cc.class_id!s:>4} {cc.name or '?':<24} {_bar(cc.count, top)}"
                    for cc in a.classes]
        if a.boxes_per_image:
            out.append(f"  boxes: {a.boxes:,}; images per box count:")
            out += [f"    {n:>4} boxes: {k:,}" for n, k in a.boxes_per_image.items()]
        if a.confidence_count:
            top = max(a.confidence_histogram)
            out.append(f"  confidence (n={a.confidence_count:,}, mean {a.confidence_mean:.3f}):")
            for b, n in enumerate(a.confidence_histogram):
                hi = "]" if b == BINS - 1 else ")"
                out.append(f"    [{b / BINS:.1f}, {(b + 1) / BINS:.1f}{hi} {n:>9,} {_bar(n, top)}")
    if stats.exact_path_lines:
        out.append(f"\n({stats.exact_path_lines:,} lines were parsed one by one: their metadata nests deeply)")
    return "\n".join(out) + "\n"
