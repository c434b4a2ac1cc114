"""A manifest of only the lines that hold a label under one attribute, for consumers.

Ground Truth (and every job here) leaves a failed line without its label key, only
``<attr>-metadata`` with a ``failure-reason``; lines routed to review and lines never labeled
have no label either. Training scripts and conversion kits index ``line[attr]`` and crash on
such a line, so they get this view. Every line left out is counted under its reason, so nothing
disappears unreported. Kept lines are copied byte for byte (a byte order mark is not: JSON
parsers refuse it at the start of a line).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .._errors import ManifestError, counted
from .._fetch import base_of, resolve_reference
from .._jobs.layout import refuse_output_in_job
from .._jobs.selection import needs_label
from .._manifest.io import blank_held, read_lines, refuse_empty_path, refuse_not_an_attribute
from .._manifest.naming import metadata_key
from .._stale_temporaries import remove_stale_temporaries
from .._storage import AtomicWriter, redact_url, refuse_file_output, refuse_output_over_input
from .labels import references_base, routed

#: why a line was left out, in the order reports list them
REASONS = ("failed", "routed", "missing", "blank")


@dataclass
class LabeledOnly:
    """What ``labeled_only`` wrote: lines kept, and lines left out by reason with the first of each."""

    source: str
    output: str
    label_attribute: str
    kept: int = 0
    left_out: dict[str, int] = field(default_factory=lambda: dict.fromkeys(REASONS, 0))
    #: reason -> number of the first line left out for it
    first_line: dict[str, int] = field(default_factory=dict)
    #: kept lines whose relative ``source-ref`` or mask reference (``seg-ref``: every ``-ref`` key)
    #: names another file read beside the output than beside the input (``images/a.jpg`` copied
    #: into another folder), the first of them, and the keys that did, in the order met
    moved_refs: int = 0
    first_moved: int | None = None
    moved_keys: list[str] = field(default_factory=list)
    #: the folder the input's relative references resolve against (``labels.references_base``)
    base: str = ""

    @property
    def total_left_out(self) -> int:
        return sum(self.left_out.values())

    def summary(self) -> str:
        """One line: what was kept, what was left out and why."""
        head = (f"{redact_url(self.output)}: kept {self.kept} of {counted(self.kept + self.total_left_out, 'line')} "
                f"labeled under {self.label_attribute!r}")
        parts = [f"{reason} {n} (first: line {self.first_line[reason]})"
                 for reason, n in self.left_out.items() if n]
        return head + (f"; left out {self.total_left_out}: " + ", ".join(parts) if parts else "; left out none")

    def moved_note(self) -> str | None:
        """One line saying the kept lines' relative references no longer name their files, or None.
        Kept lines are copied as they are (a consumer may resolve them against its own root), so the
        references are not rewritten; but a training script reading them beside the output found
        nothing, and nothing had said so."""
        if not self.moved_refs:
            return None
        keys = " / ".join(self.moved_keys)
        return (f"{redact_url(self.output)}: {counted(self.moved_refs, 'kept line')} {'holds' if self.moved_refs == 1 else 'hold'} a relative {keys} "
                f"(first on line {self.first_moved}) written as it is, which resolves against the input's "
                f"folder {redact_url(self.base)}, not beside the output: write the output beside the input, "
                "or read it with that folder as the root")

    def to_dict(self) -> dict:
        return {"source": redact_url(self.source), "output": redact_url(self.output),
                "label_attribute": self.label_attribute, "kept": self.kept, "left_out": dict(self.left_out),
                "first_line": dict(self.first_line), "relative_refs_moved": self.moved_refs}


def why_unlabeled(record: dict, attribute: str) -> str | None:
    """None when the line holds a label under ``attribute``, else ``failed``, ``routed`` or ``missing``.
    A line routed to review holds no label of the job's even beside a value (``stats`` counts it
    routed, ``validate`` warns ``routed-with-label``): training got a line a model was not sure of."""
    meta = record.get(metadata_key(attribute))
    if not needs_label(record, attribute):  # a routed line's value too (``naming.marks_no_label``)
        return None
    if isinstance(meta, dict) and "failure-reason" in meta:
        return "failed"
    if routed(meta):
        return "routed"
    return "missing"


def _moved_reference(base: str, out_base: str) -> Callable[[Any], bool] | None:
    """Whether a reference copied from a manifest whose relative references resolve against
    ``base`` names another file read beside the output (in ``out_base``); None where the two
    folders are one (every reference stays where it was)."""
    if resolve_reference(".", base) == resolve_reference(".", out_base):
        return None

    def moved(ref: Any) -> bool:
        return isinstance(ref, str) and resolve_reference(ref, base) != resolve_reference(ref, out_base)

    return moved


#: the keys a Ground Truth line holds references under: ``source-ref``, and a mask label's
#: ``<attr>-ref`` (``seg-ref: mask0.png``), resolved as ``source-ref`` is by every reader
REFERENCE_SUFFIX = "-ref"


def _count_moved(result: LabeledOnly, moved: Callable[[Any], bool], record: dict, number: int) -> None:
    """Count the kept line in ``result`` where one of its references (``REFERENCE_SUFFIX`` keys)
    moved: mask references were left out, so ``seg-ref: mask0.png`` copied into ``lab/`` said 0."""
    keys = [key for key, value in record.items() if key.endswith(REFERENCE_SUFFIX) and moved(value)]
    if not keys:
        return
    result.moved_refs += 1
    result.first_moved = result.first_moved or number
    result.moved_keys.extend(key for key in keys if key not in result.moved_keys)


def labeled_only(src: str, dst: str, label_attribute: str) -> LabeledOnly:
    """Write to ``dst`` (any fsspec URL, atomically) the lines of ``src`` holding a label under
    ``label_attribute``.

    A line that is not JSON stops it with ``ManifestError`` naming the line (the manifest is
    broken, not merely unlabeled). When no line holds a label, nothing is written and a
    ``ManifestError`` says what the lines held instead (usually a misspelt attribute).
    """
    src, dst = os.fspath(src), os.fspath(dst)  # a pathlib.Path too, as validate_manifest takes
    refuse_empty_path(src, "input (src)")
    refuse_empty_path(dst, "output (dst)")
    refuse_output_over_input(src, dst)
    refuse_output_in_job(dst)
    refuse_file_output(dst)
    refuse_not_an_attribute(label_attribute)
    remove_stale_temporaries(dst)  # what a ``labeled`` to the same place killed before left (kill -9)
    result = LabeledOnly(src, dst, label_attribute, base=references_base(src))
    moved = _moved_reference(result.base, base_of(dst))
    seen_attributes: set[str] = set()

    def leave_out(reason: str, number: int) -> None:
        result.left_out[reason] += 1
        result.first_line.setdefault(reason, number)

    with AtomicWriter(dst) as out:
        for line in read_lines(src):
            if line.is_blank:
                leave_out("blank", line.number)
                continue
            record = line.record()
            reason = why_unlabeled(record, label_attribute)
            if reason is not None:
                if len(seen_attributes) < 20:
                    seen_attributes.update(k[: -len("-metadata")] for k in record if k.endswith("-metadata"))
                leave_out(reason, line.number)
                continue
            out.write(line.body + (line.newline or b"\n"))
            result.kept += 1
            if moved is not None:
                _count_moved(result, moved, record, line.number)
        if result.kept == 0:
            held = ", ".join(sorted(seen_attributes)) or "none"
            tally = {r: n for r, n in result.left_out.items() if n}
            # a manifest of blank lines, or none, said as every command says it (``blank_held``)
            said = blank_held(tally.get("blank", 0)) if set(tally) <= {"blank"} else \
                ", ".join(f"{r} {n}" for r, n in tally.items())
            raise ManifestError(
                f"no line holds a label under {label_attribute!r}, so nothing was written "
                f"({said}; label attributes seen: {held})",
                rule="labeled-none",
            )
    return result
