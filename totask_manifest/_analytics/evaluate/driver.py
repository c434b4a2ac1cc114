"""The streaming pass: read each line once, hand its two sides to the evaluators, count the rest.

A line is evaluated when both attributes hold a label that can be compared; every other line is
counted apart by side and kind (``missing``, ``failed``, ``routed``, ``unreadable``), with the
first examples kept for the message. Memory: one line, the evaluators' per-class buffers (see
``coco``) and fixed-size histograms; masks are fetched one pair at a time.
"""

from __future__ import annotations

import logging
import math
import os
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from ..._errors import FetchError, ManifestError, UsageError
from ..._fetch import FetchPolicy, SyncFetcher, resolve_reference
from ..._manifest.io import refuse_absent_attribute, refuse_not_an_attribute
from ..._manifest.long_lines import TooLong
from ..._manifest.ranges import check_workers, iter_bodies, map_ranges, would_split
from ..._storage import exists, open_read, redact_secret_url, redact_url
from ..labels import metadata_key, references_bases
from ..masks import COLOR_MAP, mask_from_bytes
from .attributes import resolve_target
from .batch import BatchedDetection
from .classification import ClassificationEvaluator
from .detection import WorstLine
from .fastlane import FastLane
from .segmentation import SegmentationEvaluator
from .views import Missing, View, kind_name, read_side

MAX_EXAMPLES = 20
#: the two sides of a line, in the order ``compare`` reads them
SIDES = ("predicted", "reference")


class NotComparable(Exception):
    """A line whose two sides were read but cannot be compared (masks of other sizes): counted
    ``both: not comparable``, as boxes on images of other sizes are, not ``unreadable``."""


class SideUnreadable(Exception):
    """A line's mask that cannot be read, and the side it belongs to (``predicted``,
    ``reference``, or ``both`` when neither side's can be read)."""

    def __init__(self, side: str, reason: str) -> None:
        super().__init__(reason)
        self.side = side
        self.reason = reason


@dataclass
class Evaluation:
    """What ``evaluate`` found; ``to_dict`` is what ``--format json`` prints."""

    manifest: str
    predicted: str
    reference: str
    how_found: str
    iou: float
    share: float
    total_lines: int = 0
    blank_lines: int = 0
    invalid_lines: int = 0
    #: of ``invalid_lines``, those over ``long_lines.MAX_LINE_BYTES``: read past, never parsed
    too_long_lines: int = 0
    evaluated: int = 0
    not_evaluated: int = 0
    skipped: dict[str, Counter] = field(
        default_factory=lambda: {"predicted": Counter(), "reference": Counter(), "both": Counter()})
    examples: list[dict[str, Any]] = field(default_factory=list)
    other_shapes: Counter = field(default_factory=Counter)
    detection: dict[str, Any] | None = None
    classification: dict[str, Any] | None = None
    classification_multilabel: dict[str, Any] | None = None
    segmentation: dict[str, Any] | None = None
    #: the lines with the most detection errors, boxes of both sides kept (for the report)
    worst: list[WorstLine] = field(default_factory=list)

    def empty_copy(self) -> Evaluation:
        """The same question with no answers yet: what a worker process starts from."""
        return Evaluation(self.manifest, self.predicted, self.reference, self.how_found, self.iou, self.share)

    def to_dict(self) -> dict[str, Any]:
        return {
            "manifest": redact_url(self.manifest), "predicted": self.predicted, "reference": self.reference,
            "attributes_from": self.how_found, "iou": self.iou, "share": self.share,
            "lines": {
                "total": self.total_lines, "blank": self.blank_lines, "invalid": self.invalid_lines,
                "too_long": self.too_long_lines,
                "evaluated": self.evaluated, "not_evaluated": self.not_evaluated,
                "skipped": {side: dict(sorted(c.items())) for side, c in self.skipped.items()},
                "examples": self.examples,
            },
            "shapes_not_evaluated": dict(sorted(self.other_shapes.items())),
            "detection": self.detection,
            "classification": self.classification,
            "classification_multilabel": self.classification_multilabel,
            "segmentation": self.segmentation,
            "worst_lines": [{"line": w.line, "source": redact_secret_url(w.source) if w.source else w.source,  # printed
                             "errors": w.errors} for w in self.worst],
        }


def evaluate_manifest(
    source: str,
    *,
    predicted: str | None = None,
    reference: str | None = None,
    iou: float = 0.5,
    share: float = 0.95,
    fetch_options: Mapping[str, Any] | None = None,
    worst: int = 12,
    workers: int | None = None,
) -> Evaluation:
    """Compare the ``predicted`` attribute with the ``reference`` one over a manifest or a job folder.

    Without the attribute names, a job folder chained from another gives them (the attribute of
    the job that ran a model, not ``method="file"``, is the prediction, the other job's the
    reference), else ``human-annotated`` does (``no`` = predicted, ``yes`` = reference). Raises
    ``UsageError`` for bad options or
    when the attributes cannot be told. A local file of 16 MiB or more is read by ``workers``
    processes (default: one per CPU; 1 = this process only), with the same result.
    """
    source = os.fspath(source)  # a pathlib.Path too, as validate_manifest takes
    if not (isinstance(iou, int | float) and 0 < iou <= 1 and math.isfinite(iou)):
        raise UsageError(f"--iou must be a number in (0, 1], got {iou!r}")
    if not (isinstance(share, int | float) and 0 < share <= 1):
        raise UsageError(f"--share must be a number in (0, 1], got {share!r}")
    check_workers(workers)
    refuse_not_an_attribute(predicted, "--predicted")
    refuse_not_an_attribute(reference, "--reference")
    target = resolve_target(source, predicted, reference)
    if not exists(target.manifest):
        raise UsageError(f"manifest not found: {redact_url(target.manifest)}")
    ev = Evaluation(target.manifest, target.predicted, target.reference, target.how_found, float(iou), float(share))
    # the flags laid over the job's own policy, as report lays them: its allow_root and the masks' folders stay
    options = {**target.fetch_options, **{k: v for k, v in (fetch_options or {}).items() if v not in (None, [], ())}}
    if references_bases(target.manifest).appended:  # a line's folder goes by its number in the whole file,
        _note_one_process(target.manifest, workers)  # which a worker's range does not know (it numbers its lines from its own first)
        workers = 1
    # numpy and the fetch loop's thread do not survive a fork: spawned workers
    parts = map_ranges(_read_range, target.manifest, (ev, options, worst), workers=workers, start_method="spawn",
                       remote=False)
    run = parts[0]
    for part in parts[1:]:
        run.merge(part)
    run.finish()
    _refuse_an_absent_attribute(run.ev)
    return run.ev


def _note_one_process(manifest: str, workers: int | None) -> None:
    """Say that ``--workers N`` (above 1) is not taken for a job with ``--append`` manifests: it was
    dropped to this process without a word, and the run took N times as long as asked for. Only
    where N processes would have read the file (``would_split``): a small one is read in one
    process anyway, which ``stats`` and ``validate`` leave unsaid."""
    if workers is not None and workers > 1 and would_split(manifest, workers, remote=False):
        logging.getLogger("totask_manifest").warning(
            "note: --workers %d not taken: the job's --append manifests' lines resolve against their own folders "
            "by their number in the whole file, which only one process reading it all knows; evaluated in this "
            "process", workers)


def _refuse_an_absent_attribute(ev: Evaluation) -> None:
    """A side no line holds (a misspelt ``predicted``, usually) is a ``ManifestError``, as ``stats``
    refuses a label attribute no line holds: a result of ``0 evaluated`` and ``predicted: missing
    50`` reads as labels that did not compare. Not where a line was evaluated, or a line is damaged."""
    objects = ev.total_lines - ev.blank_lines - ev.invalid_lines
    data_lines = 0 if ev.evaluated or ev.invalid_lines else objects
    for option, side, name in (("--predicted", "predicted", ev.predicted), ("--reference", "reference", ev.reference)):
        refuse_absent_attribute(ev.manifest, name, data_lines=data_lines, without=ev.skipped[side]["missing"],
                                option=option, unnamed_too=True)  # a failed label is missing, its metadata held


def _read_range(manifest: str, start: int, end: int | None, ev: Evaluation, fetch_options: dict[str, Any],
                worst: int) -> _Run:
    """One process's share: the lines starting in ``[start, end)``, numbered from 1 within the
    range; ranges are folded in file order, so every figure (and the order of tied scores) is
    what one process would have found."""
    run = _Run(ev.empty_copy(), fetch_options, worst)
    try:
        with open_read(manifest) as f:
            run.read(f, start, end)
    finally:
        run.close()
    return run


class _Run:
    """One pass's state: the counters (in ``ev``) and the evaluators. A range read in a worker
    process is one ``_Run``; ``merge`` folds the next range's into this one."""

    def __init__(self, ev: Evaluation, fetch_options: dict[str, Any], worst: int) -> None:
        self.ev = ev
        self.fetch_options = fetch_options
        # relative masks resolve where the job read them (a job's output: its input's folder, or an
        # --append manifest's), as report and convert read them; beside the output no mask ever was
        self.bases = references_bases(ev.manifest)
        self.detection = BatchedDetection(ev.iou, worst, ev.predicted, ev.reference)
        self.classification = {False: ClassificationEvaluator(False), True: ClassificationEvaluator(True)}
        self.segmentation = SegmentationEvaluator()
        self._fetcher: SyncFetcher | None = None

    def close(self) -> None:
        if self._fetcher is not None:
            self._fetcher.close()
            self._fetcher = None

    def read(self, f: Any, start: int = 0, end: int | None = None) -> None:
        number = 0
        lane = FastLane(self.ev, self.detection, self.line, self.record, MAX_EXAMPLES)
        for batch in iter_bodies(f, start=start, end=end):  # the file's BOM taken off its first line
            if type(batch[0]) is TooLong:  # a line over the byte cap, read past: invalid data
                number += 1
                self.ev.invalid_lines += 1
                self.ev.too_long_lines += 1
                continue
            number = lane.feed(batch, number)
        self.ev.total_lines = number

    def merge(self, other: _Run) -> None:
        """Fold in the range after this one (its line numbers start after this one's)."""
        ev, o = self.ev, other.ev
        offset = ev.total_lines
        for name in ("total_lines", "blank_lines", "invalid_lines", "too_long_lines", "evaluated", "not_evaluated"):
            setattr(ev, name, getattr(ev, name) + getattr(o, name))
        for side, counts in o.skipped.items():
            ev.skipped[side].update(counts)
        ev.other_shapes.update(o.other_shapes)
        for e in o.examples[: max(0, MAX_EXAMPLES - len(ev.examples))]:
            ev.examples.append({**e, "line": e["line"] + offset})
        self.detection.merge(other.detection, offset)
        for multi in (False, True):
            self.classification[multi].merge(other.classification[multi])
        self.segmentation.merge(other.segmentation)

    def finish(self) -> None:
        ev, share = self.ev, self.ev.share
        if self.detection.lines:
            ev.detection = self.detection.result(share)
            ev.worst = self.detection.worst()
        if self.classification[False].lines:
            ev.classification = self.classification[False].result(share)
        if self.classification[True].lines:
            ev.classification_multilabel = self.classification[True].result(share)
        if self.segmentation.lines:
            ev.segmentation = self.segmentation.result()

    def skip(self, number: int, side: str, kind: str, reason: str) -> None:
        self.ev.skipped[side][kind] += 1
        if len(self.ev.examples) < MAX_EXAMPLES:
            self.ev.examples.append({"line": number, "side": side, "kind": kind, "reason": reason})

    def line(self, number: int, raw: bytes) -> None:
        ev = self.ev
        if not raw.strip():
            ev.blank_lines += 1
            return
        try:
            rec = orjson.loads(raw)
        except orjson.JSONDecodeError:
            rec = None
        self.record(number, rec)

    def record(self, number: int, rec: Any) -> None:
        """A parsed line, read the usual way (``FastLane`` takes the common detection lines)."""
        ev = self.ev
        if not isinstance(rec, dict):
            ev.invalid_lines += 1
            return
        pred = read_side(rec, ev.predicted)
        ref = read_side(rec, ev.reference)
        if isinstance(pred, Missing) or isinstance(ref, Missing):
            ev.not_evaluated += 1
            for side, got in (("predicted", pred), ("reference", ref)):
                if isinstance(got, Missing):
                    self.skip(number, side, got.kind, got.reason)
            return
        if pred.size is not None and ref.size is not None and pred.size != ref.size:
            # boxes drawn on images of other sizes match by chance only: AP 0 would blame the labels
            self.not_comparable(number, "image sizes differ: predicted {}x{}, reference {}x{}".format(
                *pred.size, *ref.size))
            return
        used = False
        try:
            used = self.compare(number, rec, pred, ref)
        except NotComparable as exc:
            self.not_comparable(number, str(exc))
            return
        except SideUnreadable as exc:  # one side's mask, or each side's: counted under that side
            ev.not_evaluated += 1
            self.skip(number, exc.side, "unreadable", exc.reason)
            return
        except (ManifestError, FetchError, ValueError) as exc:
            ev.not_evaluated += 1
            self.skip(number, "both", "unreadable", str(exc)[:200])
            return
        if not used:
            self.not_comparable(number, f"predicted is {kind_name(pred.kind)}, reference is {kind_name(ref.kind)}")
            return
        ev.evaluated += 1
        for k, n in (*pred.other_shapes.items(), *ref.other_shapes.items()):
            ev.other_shapes[k] += n

    def not_comparable(self, number: int, reason: str) -> None:
        """Line ``number``, both sides read, counted apart as ``both: not comparable`` (``reason``)."""
        self.ev.not_evaluated += 1
        self.skip(number, "both", "not comparable", reason)

    def compare(self, number: int, rec: dict, pred: View, ref: View) -> bool:
        used = False
        source = rec.get("source-ref") if isinstance(rec.get("source-ref"), str) else None
        if pred.boxes is not None and ref.boxes is not None:
            self.detection.add(number, source, pred.boxes, ref.boxes, pred.confidence)
            used = True
        # two multi-label sets, empty ones too ("none of these" on both sides is a right answer);
        # a native document's empty class set only says it holds no classification tool
        both_multi = pred.kind == ref.kind == "multi"
        if pred.classes is not None and ref.classes is not None and (pred.classes or ref.classes or both_multi):
            multi = not (pred.kind == "single" and ref.kind == "single")
            self.classification[multi].add(pred.classes, ref.classes, pred.confidence)
            used = True
        if pred.mask is not None and ref.mask is not None:
            (pm, p_map), (rm, r_map) = self.masks(number, pred.mask, ref.mask)
            if pm.shape != rm.shape:  # pixels of other images: an IoU of them would blame the labels
                raise NotComparable(f"mask sizes differ: predicted {pm.shape[1]}x{pm.shape[0]}, "
                                    f"reference {rm.shape[1]}x{rm.shape[0]}")
            self.segmentation.add(pm, p_map, rm, r_map)
            used = True
        return used

    def masks(self, number: int, *sides: tuple[str, Mapping[str, Any]]) -> list[tuple[np.ndarray, Mapping[str, Any]]]:
        """Line ``number``'s predicted and reference masks (``(url, colour map)`` each), decoded.
        Each side is read even when the other cannot be, so that ``SideUnreadable`` names the side
        at fault: every such line was counted under ``both``, one missing mask as much as two."""
        read: list[tuple[np.ndarray, Mapping[str, Any]]] = []
        failed: dict[str, str] = {}
        for side, attribute, (url, cmap) in zip(SIDES, (self.ev.predicted, self.ev.reference), sides, strict=True):
            try:
                data = self.fetch(url, number)
                read.append((mask_from_bytes(data, cmap, url=url, line=number, key=metadata_key(attribute, COLOR_MAP),
                                             what=f"{side} mask", ref_key=attribute), cmap))
            except (ManifestError, FetchError, ValueError) as exc:
                failed[side] = str(exc)[:200]
        if len(failed) == len(SIDES):
            raise SideUnreadable("both", "; ".join(f"{side}: {reason}" for side, reason in failed.items()))
        if failed:
            raise SideUnreadable(*failed.popitem())
        return read

    def fetch(self, ref: str, number: int) -> bytes:
        """The mask ``ref`` of line ``number``, a relative one read where the line's data was."""
        if self._fetcher is None:  # only segmentation fetches: other evaluations start no event loop
            self._fetcher = SyncFetcher(FetchPolicy.from_options(self.fetch_options))
        return self._fetcher.fetch(resolve_reference(ref, self.bases.for_line(number)))
