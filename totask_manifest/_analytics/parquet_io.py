"""A manifest as Parquet: the raw line for an exact way back, nested label columns for analysis.

Each row is one line: ``line_number``, ``raw`` (the exact bytes, terminator included, so
``parquet -> manifest`` gives the same file byte for byte), ``source_ref`` / ``source`` and
``labels``, a list with one struct per label attribute on the line (type, job, confidences,
boxes with class names, chosen classes, mask reference, failure reason). Lines that are not
JSON keep their raw bytes and get no labels. Written and read in row groups, so memory stays
bounded by the group size.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from .._errors import ManifestError, counted
from .._manifest.io import NOTHING_TO_CONVERT, input_empty, read_lines, to_line
from .._manifest.schema_scalars import INT_MAX, INT_MIN
from .._storage import AtomicWriter, open_read, redact_secret_url
from .._task_types import task_type_of_metadata

ROWS_PER_GROUP = 50_000
#: a row group also ends once its lines hold this many bytes: the rows of a group are Python objects
#: until it is written (about 14 times the line's bytes), so 50,000 lines of 50 boxes took 1.1 GB
GROUP_BYTES = 24 << 20
METADATA = "-metadata"

_BOX = pa.struct([
    ("class_id", pa.int64()), ("class_name", pa.string()), ("left", pa.float64()), ("top", pa.float64()),
    ("width", pa.float64()), ("height", pa.float64()), ("confidence", pa.float64()),
])
_CLASS = pa.struct([("class_id", pa.int64()), ("class_name", pa.string()), ("confidence", pa.float64())])
LABEL = pa.struct([
    ("attribute", pa.string()), ("type", pa.string()), ("job_name", pa.string()),
    ("human_annotated", pa.string()), ("creation_date", pa.string()), ("failure_reason", pa.string()),
    ("image_width", pa.int64()), ("image_height", pa.int64()),
    ("boxes", pa.list_(_BOX)), ("classes", pa.list_(_CLASS)), ("ref", pa.string()),
])
SCHEMA = pa.schema([
    ("line_number", pa.int64()), ("raw", pa.binary()), ("source_ref", pa.string()), ("source", pa.string()),
    ("labels", pa.list_(LABEL)),
])


def _num(v: Any) -> float | None:
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None


def _int(v: Any) -> int | None:
    """An integer the ``int64`` columns hold, else None (``raw`` holds the value): a class id of
    2**63 stopped the export with pyarrow's ``OverflowError``; ``3.0``, which ``validate`` and every
    other export refuse as a class id, is no int either (a string of digits is: the guide writes
    a classification label so)."""
    if type(v) is str and v.isascii() and v.isdigit():  # a classification label as the guide shows it ("3")
        v = int(v)
    return v if type(v) is int and INT_MIN <= v <= INT_MAX else None


def _str(v: Any) -> str | None:
    return v if isinstance(v, str) else None


def _label(attr: str, value: Any, meta: dict) -> dict:
    """One attribute's nested columns; shapes that do not fit their type are left empty."""
    tt = task_type_of_metadata(meta)
    name = tt.name if tt else None
    cmap = meta.get("class-map") if isinstance(meta.get("class-map"), dict) else {}
    row: dict[str, Any] = {
        "attribute": attr, "type": _str(meta.get("type")), "job_name": _str(meta.get("job-name")),
        "human_annotated": _str(meta.get("human-annotated")), "creation_date": _str(meta.get("creation-date")),
        "failure_reason": _str(meta.get("failure-reason")), "image_width": None, "image_height": None,
        "boxes": None, "classes": None, "ref": value if isinstance(value, str) else None,
    }
    if name == "object-detection" and isinstance(value, dict):
        size = value.get("image_size")
        if isinstance(size, list) and size and isinstance(size[0], dict):
            row["image_width"], row["image_height"] = _int(size[0].get("width")), _int(size[0].get("height"))
        objs = meta.get("objects") if isinstance(meta.get("objects"), list) else []
        boxes = []
        for i, a in enumerate(value.get("annotations") or []):
            if not isinstance(a, dict):
                continue
            cid = _int(a.get("class_id"))
            conf = objs[i].get("confidence") if i < len(objs) and isinstance(objs[i], dict) else None
            boxes.append({"class_id": cid, "class_name": _str(cmap.get(str(cid))), "left": _num(a.get("left")),
                          "top": _num(a.get("top")), "width": _num(a.get("width")),
                          "height": _num(a.get("height")), "confidence": _num(conf)})
        row["boxes"] = boxes
    elif name in ("image-classification", "text-classification", "label-verification"):
        cid = _int(value)
        row["classes"] = [{"class_id": cid, "class_name": _str(meta.get("class-name")),
                           "confidence": _num(meta.get("confidence"))}] if cid is not None else []
    elif name in ("image-classification-multilabel", "text-classification-multilabel") and isinstance(value, list):
        cm = meta.get("confidence-map") if isinstance(meta.get("confidence-map"), dict) else {}
        row["classes"] = [{"class_id": _int(v), "class_name": _str(cmap.get(str(v))),
                           "confidence": _num(cm.get(str(v)))} for v in value]
    return row


def _rows(url: str) -> Iterator[dict]:
    for line in read_lines(url):
        row: dict[str, Any] = {"line_number": line.number, "raw": line.raw, "source_ref": None, "source": None,
                               "labels": []}
        if not line.is_blank:
            try:
                rec = line.record()
            except ManifestError:
                rec = None
                row["unreadable"] = True
            if rec is not None:
                row["source_ref"], row["source"] = _str(rec.get("source-ref")), _str(rec.get("source"))
                for key, meta in rec.items():
                    if key.endswith(METADATA) and isinstance(meta, dict) and (
                        "type" in meta or "failure-reason" in meta
                    ):
                        attr = key[: -len(METADATA)]
                        row["labels"].append(_label(attr, rec.get(attr), meta))
        yield row


def manifest_to_parquet(src: str, dst: str, unreadable: list[int] | None = None) -> int:
    """Write ``src`` as Parquet at ``dst`` (atomically); returns the number of lines.

    A line that is not a JSON object (a truncated file) keeps its bytes in ``raw`` (the round trip
    stays exact) with empty columns; its number goes to ``unreadable``, so the caller can say so
    and exit 1 as every command does on invalid data, instead of a silent success."""
    n = 0
    with AtomicWriter(dst) as out, pq.ParquetWriter(out, SCHEMA, compression="zstd") as writer:
        batch: list[dict] = []
        held = 0
        for row in _rows(src):
            if row.pop("unreadable", False) and unreadable is not None:
                unreadable.append(row["line_number"])
            batch.append(row)
            n += 1
            held += len(row["raw"])
            if len(batch) >= ROWS_PER_GROUP or held >= GROUP_BYTES:
                writer.write_table(pa.Table.from_pylist(batch, schema=SCHEMA))
                batch, held = [], 0
        if batch or n == 0:
            writer.write_table(pa.Table.from_pylist(batch, schema=SCHEMA))
    return n


def parquet_to_manifest(src: str, dst: str) -> int:
    """The exact lines back from the ``raw`` column, one line a row. A column of another type (a
    table rebuilt by another tool) stopped with a traceback, and rows without a terminator were
    written fused (``{...}{...}``: one broken line for two, exit 0): each is refused naming the
    row, nothing written. The last row alone may end without one, as a manifest's last line may.
    A file of no row, or of blank lines only, holds no data object: refused as every other
    ``convert`` of such an input is (``input-empty``, exit 1, nothing written); it wrote an
    empty manifest, exit 0, that every job and ``validate`` then refused."""
    n = 0
    data = False  # a row holding a data object met yet: blank rows are looked at until then only
    shown = redact_secret_url(src)
    with open_read(src) as f, AtomicWriter(dst) as out:
        try:
            pf = pq.ParquetFile(f)
        except (pa.ArrowInvalid, OSError) as exc:
            raise ManifestError(f"{shown} is not a Parquet file: {exc}", rule="parquet") from None
        if "raw" not in pf.schema_arrow.names:
            raise ManifestError(f"{shown} has no 'raw' column: it was not written by 'convert --to parquet'",
                                rule="parquet", key="raw")
        kind = pf.schema_arrow.field("raw").type
        if not (pa.types.is_binary(kind) or pa.types.is_large_binary(kind)):
            raise ManifestError(f"{shown}: its 'raw' column holds {kind}, not each line's bytes (binary), as "
                                "'convert --to parquet' writes them", rule="parquet", key="raw")
        ended = True
        for batch in pf.iter_batches(columns=["raw"], batch_size=ROWS_PER_GROUP):
            for raw in batch.column(0).to_pylist():
                n += 1
                if not ended:  # the row before would be fused with this one
                    raise _bad_row(shown, n - 1, "ends without a line terminator, so its line would join the "
                                                 "next; only the last row may")
                if raw is None:
                    raise _bad_row(shown, n, "is null: a row holds one line's bytes")
                cut = raw.find(b"\n")
                if cut != -1 and cut != len(raw) - 1:
                    raise _bad_row(shown, n, "holds more than one line: a row holds one line's bytes")
                ended = cut != -1
                data = data or not to_line(n, raw, first_in_file=n == 1).is_blank
                out.write(raw)
        if not data:
            raise input_empty(shown, n, what="Parquet file", needs=NOTHING_TO_CONVERT, held=_blank_rows(n))
    return n


def _blank_rows(rows: int) -> str:
    """What a Parquet file holding no data object holds, as ``input_empty`` says it: "no row" where
    it has none ("0 lines, all blank" said of nothing at all), else "N rows, all blank" (a row
    holds a line, but the file has rows, not lines)."""
    return f"{counted(rows, 'row')}, all blank" if rows else "no row"


def _bad_row(shown: str, row: int, what: str) -> ManifestError:
    return ManifestError(f"{shown}: row {row}'s raw {what}", rule="parquet", key="raw")
