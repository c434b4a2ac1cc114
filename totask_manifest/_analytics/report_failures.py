"""The rows of ``report``'s failures table, and where they come from.

A job's table is its ``failures.jsonl`` (or, while it runs, its checkpoint parts: ``Job.failure_records``).
A job whose file was deleted reads them from its checkpoint (``Job.failures_gone``). A folder
that is no job (a real Ground Truth output put in ``FOLDER/manifests/output/``) showed "no
failures" beside label counts saying ``failed 3``: its table is read from the output manifest's
failed lines instead (``<attr>-metadata``'s ``failure-reason`` and ``failure-rule``), and the
page says so.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from .._failure_rules import rule_of
from .._jobs.job import Job
from .._jobs.state import output_stale
from .._jobs.status import RUNNING
from .._manifest.io import read_records
from .._storage import exists

MAX_FAILURE_ROWS = 500
#: said above a table read from the manifest
FROM_MANIFEST = "no failures.jsonl: the failed lines of the output manifest, from their {attr}-metadata"


def _first(records: Iterable[tuple[int, dict[str, Any] | None]]) -> tuple[list[dict], int]:
    """The first ``MAX_FAILURE_ROWS`` rows (all the page shows) and how many there are: a job with
    a million failed lines held a million dicts here, 480 bytes each, to show 500."""
    shown: list[dict] = []
    total = 0
    for number, rec in records:
        total += 1
        if len(shown) < MAX_FAILURE_ROWS:
            shown.append(rec if rec is not None else {"line": None, "reason": f"unreadable failures line {number}"})
    return shown, total


def _manifest_failures(manifest: str, attr: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """The manifest's lines failed under ``attr``, as ``failures.jsonl`` would hold them."""
    for line, rec in read_records(manifest):
        meta = rec.get(f"{attr}-metadata")
        if not isinstance(meta, dict) or "failure-reason" not in meta:
            continue
        reason = meta["failure-reason"] if isinstance(meta["failure-reason"], str) else str(meta["failure-reason"])
        rule = meta.get("failure-rule")
        source = rec.get("source-ref", rec.get("source"))
        yield line.number, {"line": line.number, "source": source if isinstance(source, str) else None,
                            "rule": rule if isinstance(rule, str) else rule_of(reason), "reason": reason}


def report_failures(folder: Job, manifest: str, attr: str | None) -> tuple[list[dict], int, str | None]:
    """The rows the page shows, how many failures there are, and a note where the rows are read
    from the manifest (None where they are the job's own)."""
    record = folder.record()
    own = (record.get("status") == RUNNING or output_stale(record.get("runs")) or exists(folder.layout.failures)
           or folder.failures_gone(record))  # the job's file deleted: its checkpoint holds the rows, task ids too
    if own or not attr or not exists(manifest):
        return (*_first(folder.failure_records()), None)
    return (*_first(_manifest_failures(manifest, attr)), FROM_MANIFEST.format(attr=attr))
