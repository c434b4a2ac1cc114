"""Damaged checkpoint parts: what ``resume`` does with them, and what ``status`` and ``report`` show.

Parts are written whole and atomically, so a damaged part needs a crash without sync (a file
system that persisted the rename before the bytes: a torn or empty part) or a damaged store.
Its lines are not recorded; nothing else is lost. A *last* part (or a run of last parts) is safe
to set aside: a resume carries on after the last recorded line, so its lines are labeled again,
and the commit merges the input with the recorded lines in order. It is renamed
(``part-000003.ckpt.damaged``), never deleted: it may be the only copy of someone's work.

A damaged part *followed by good ones* is not set aside: a resume only labels lines after the
last recorded one, so its lines would be neither recorded nor redone. The error names the part
and what to do by hand. So does a part *missing* before the last one (deleted by hand, lost by
its store): parts are numbered from 0 without a gap, so a number not there is one.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

from .._errors import DamagedCheckpoint, JobError, StorageError, counted
from .._storage import backend_errors, exists, fsync_dir, is_local, redact_url, url_to_fs
from .checkpoint import STATUSES, load_part, part_summary, summarize
from .known_keys import LINE_COUNTS
from .layout import JobLayout, part_number

log = logging.getLogger("totask_manifest")

#: the suffix a set-aside part gets: not a part's name any more (``layout.parts`` skips it)
SUFFIX = ".damaged"


@dataclass(frozen=True, slots=True)
class SetAside:
    """One damaged part a resume renamed: where it was, where it is now, what was wrong."""

    url: str
    moved_to: str
    why: str


#: what the parts hold for a run about to carry on: ``checkpoint.summarize``'s ``(last index recorded,
#: counts, next part's number)`` and the damaged parts set aside
Recorded = tuple[tuple[int, dict[str, int], int], list[SetAside]]


def summarize_setting_aside(layout: JobLayout) -> Recorded:
    """``checkpoint.summarize`` for a run about to carry on, after setting aside the damaged
    parts at the end (each logged as a warning). A damaged part before a readable one is refused
    (``JobError``), naming it and what to do. Called under the job's lease."""
    moved: list[SetAside] = []
    while True:
        parts = layout.parts()
        try:
            if parts:  # its heads too, not only its footer: the commit reads them next
                load_part(parts[-1], bodies=False)
            return summarize(layout), moved
        except DamagedCheckpoint as exc:
            if exc.url != parts[-1]:
                raise _not_last(layout, exc, parts) from None
            moved.append(_set_aside(exc))


def readable_summary(layout: JobLayout) -> tuple[dict[str, int], list[DamagedCheckpoint]]:
    """Counts by status (and ``dropped``) from the parts that can be read, and the damaged
    ones: what ``status`` and ``report`` show of a killed job, where a damaged part must neither
    stop them nor be hidden."""
    counts = dict.fromkeys((*STATUSES, *LINE_COUNTS), 0)
    damaged: list[DamagedCheckpoint] = []
    for url in layout.parts():
        try:
            summary = part_summary(url)
        except DamagedCheckpoint as exc:
            damaged.append(exc)
            continue
        for key, value in summary.counts.items():
            counts[key] += value
    return counts, damaged


def damage_note(damaged: list[DamagedCheckpoint], layout: JobLayout) -> str | None:
    """One line about the damaged parts, for ``status`` and ``report``; None when there are none.
    A damaged part followed by a readable one gets what ``resume`` would answer (it refuses it),
    not "run resume": that sent the user to a refusal."""
    if not damaged:
        return None
    parts = layout.parts()
    bad = {exc.url for exc in damaged}
    readable = [i for i, url in enumerate(parts) if url not in bad]
    for exc in damaged:
        if exc.url in parts and readable and parts.index(exc.url) < readable[-1]:
            return str(_not_last(layout, exc, parts))
    first = damaged[0]
    more = f" (and {len(damaged) - 1} more)" if len(damaged) > 1 else ""
    return (f"checkpoint part {redact_url(first.url)} is damaged ({first.why}){more}; its lines are not recorded: "
            "run resume, which sets a damaged last part aside (renamed, kept) and labels its lines again")


def _set_aside(exc: DamagedCheckpoint) -> SetAside:
    """Rename a damaged part out of the parts' names (a free ``.damaged``, ``.damaged-2``, ...)."""
    target, n = exc.url + SUFFIX, 1
    while exists(target):
        n += 1
        target = f"{exc.url}{SUFFIX}-{n}"
    fs, path = url_to_fs(exc.url)
    _fs, target_path = url_to_fs(target)
    try:
        with backend_errors(exc.url, "write"):
            fs.mv(path, target_path)
    except OSError as err:
        raise StorageError(f"cannot set aside the damaged checkpoint part {redact_url(exc.url)}: "
                           f"{err.strerror or err}") from None
    if is_local(fs):
        fsync_dir(os.path.dirname(os.path.abspath(path)))
    log.warning("checkpoint part %s is damaged (%s): set aside as %s; its lines are labeled again",
                redact_url(exc.url), exc.why, redact_url(target).rsplit("/", 1)[-1])
    return SetAside(exc.url, target, exc.why)


def _not_last(layout: JobLayout, exc: DamagedCheckpoint, parts: list[str]) -> JobError:
    later = len(parts) - 1 - parts.index(exc.url) if exc.url in parts else 0
    return JobError(
        f"checkpoint part {redact_url(exc.url)} is damaged ({exc.why}) and {counted(later, 'later part')} {'holds' if later == 1 else 'hold'} finished "
        "lines, so resume cannot label its lines again; restore the part from a backup, or move it and every "
        f"later part out of {redact_url(layout.intermediate)} (keep them) and run resume, which labels "
        "their lines again")


def missing_note(layout: JobLayout, parts: list[str] | None = None) -> str | None:
    """One line about a checkpoint part missing before the last part (the writer numbers them
    from 0 without a gap): its lines are not recorded, and a resume, which carries on after the
    last recorded line, would never label them. None when none is missing. What ``resume``
    refuses with (before it writes anything) and what ``status`` shows."""
    parts = layout.parts() if parts is None else parts
    numbers = {part_number(url): url for url in parts}
    gone = next((n for n in range(max(numbers, default=0)) if n not in numbers), None)
    if gone is None:
        return None
    more = sum(1 for n in range(gone + 1, max(numbers)) if n not in numbers)
    later = sum(1 for n in numbers if n > gone)
    return (f"checkpoint part {redact_url(layout.part(gone))} is missing{_lines_of(numbers, gone)}"
            f"{f' (and {more} more)' if more else ''} and {counted(later, 'later part')} {'holds' if later == 1 else 'hold'} finished lines, so resume "
            "cannot label its lines again; restore it from a backup, or move every later part out of "
            f"{redact_url(layout.intermediate)} (keep them) and run resume, which labels their lines again")


def _lines_of(numbers: dict[int, str], gone: int) -> str:
    """`` (input lines A-B)``: those between the parts around a missing one; empty where one of
    them cannot be read (the damaged parts' own rules name it)."""
    try:
        after = part_summary(numbers[gone - 1]).last + 1 if gone else 0
        until = part_summary(next(numbers[n] for n in sorted(numbers) if n > gone)).first
    except DamagedCheckpoint:
        return ""
    return f" (input lines {after + 1}-{until})"
