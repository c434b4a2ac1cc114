"""What a re-run of apply needs from the journal, read once and held in a few bytes a task.

A re-run asks two things of each task's earlier writes (``journal``'s module docstring):

* did the backend say it stored, for a write of this very data, what the task holds now? Only
  a ``done`` whose ``stored_hash`` differs from its ``new_hash`` can answer yes where comparing
  the task's hash with the new data's hash does not (a backend that normalises data), so only
  those are kept: a key of 32 bytes each, the SHA-256 of ``[task id, new hash, stored hash]``
  as JSON, in one sorted array. Two keys are equal only if the three values are (as the task
  data fingerprints themselves, a SHA-256 collision aside): never a shorter hash that could
  call a task unchanged that needs writing.
* is a write of this data in doubt (a ``before`` with no ``done`` or refusal, ``failed`` with
  ``refused``, of its run, and no ``restored`` since)? A write settles a few records after its
  ``before``, so while the journal streams by only the writes in flight are held; those left are
  the writes in doubt.
* may a rollback's restore still land on the task (a ``restoring`` with no ``restored``, refusal
  or ``answered`` after it: a rollback stopped with it in flight)? Written now, the task would be
  emptied by it a moment later, for good. Held likewise: the restores left, with when their
  rollback was last heard of (``restore_landing``).

The journal's records go by one at a time (``journal.iter_journal``): the re-run never holds
the journal, nor a record of it, per task. Rollback reads the same records (``open_writes``),
which settle writes as this does.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from collections.abc import Iterator
from typing import Any

import numpy as np
import orjson

from .._errors import JobError, StorageError
from .journal import iter_journal, journalled_at, landing_age
from .settings import origin

log = logging.getLogger(__name__)

_KEY = np.dtype("V32")


def _key(task_id: int, new_hash: str, stored_hash: str) -> bytes:
    return hashlib.sha256(orjson.dumps([task_id, new_hash, stored_hash])).digest()


class KeySet:
    """32-byte keys, sorted in the bytes they were streamed into (no second copy), looked up by
    binary search: the memory of a journal's writes at 32 bytes each, not a tuple of each."""

    def __init__(self, keys: bytearray) -> None:
        self._keys = np.frombuffer(keys, dtype=_KEY) if keys else np.empty(0, dtype=_KEY)
        self._keys.sort()  # in place

    def __len__(self) -> int:
        return len(self._keys)

    def __contains__(self, key: bytes) -> bool:
        if not len(self._keys):
            return False
        at = int(np.searchsorted(self._keys, np.void(key)))
        return at < len(self._keys) and bytes(self._keys[at]) == key


#: when a restore in doubt, and its rollback run, were last heard of (``landing_age``'s signs)
Signs = list[tuple[dt.datetime | None, dt.datetime | None]]


class _Restores:
    """The restores in doubt as the journal streams by: ``restoring`` records of each task not yet
    settled (``restored``; ``failed`` with ``refused`` or ``answered``, of its run and data: nothing
    of it on its way), and the last ``at`` of each run that journalled one (a string compare: the
    format is fixed-width), only for those runs, so that the rest of the journal costs a lookup."""

    def __init__(self) -> None:
        self.open: dict[int, list[dict]] = {}
        self.last_at: dict[str, str] = {}

    def see(self, rec: dict, op: Any, tid: Any) -> None:
        if op == "restoring" and isinstance(run := rec.get("run"), str):
            self.open.setdefault(tid, []).append(rec)
            self.last_at.setdefault(run, "")
        if not self.last_at:  # a journal no rollback has written to since apply (most): nothing more to do
            return
        run, at = rec.get("run"), rec.get("at")
        if isinstance(run, str) and isinstance(at, str) and at > self.last_at.get(run, "\uffff"):
            self.last_at[run] = at
        if op == "restored":
            self.open.pop(tid, None)
        elif (op == "answered" or (op == "failed" and rec.get("refused"))) and tid in self.open:
            left = [r for r in self.open[tid] if not (r.get("run") == run and r.get("new_hash") == rec.get("new_hash"))]
            if left:
                self.open[tid] = left
            else:
                del self.open[tid]

    def signs(self) -> dict[int, Signs]:
        """Each task's restores left in doubt: when each was journalled, and its run last journalled anything."""
        def last_seen(run: str) -> dt.datetime | None:
            return journalled_at({"at": self.last_at.get(run)})
        return {tid: [(journalled_at(r), last_seen(r["run"])) for r in recs] for tid, recs in self.open.items()}


class RerunIndex:
    """The journal's answers for a re-run: ``stored``, ``in_doubt`` and ``restore_landing``."""

    def __init__(self, keys: bytearray, in_doubt: set[tuple[int, str]], *, written: bool = False,
                 hosts: set[str] | None = None, restores: dict[int, Signs] | None = None) -> None:
        self._stored = KeySet(keys)
        self._in_doubt = in_doubt
        #: task id -> its rollbacks' restores in doubt (``_Restores``)
        self._restores = restores or {}
        #: whether the journal holds any write: a task may then hold one of this job's earlier writes
        self.written = written
        #: the other backends (``index_journal``'s ``host``) that writes still open went to: not
        #: rolled back since (``before``'s ``host``; an older journal names none)
        self.hosts = hosts or set()

    def __len__(self) -> int:
        """How many (task, new data, stored data) it holds beyond the writes stored as sent."""
        return len(self._stored)

    def stored(self, task_id: int, new_hash: str, current_hash: str) -> bool:
        """Whether a ``done`` of ``task_id`` said the backend stored ``current_hash`` for a write
        of ``new_hash`` (True too where they are equal: what was sent is what is held)."""
        return current_hash == new_hash or _key(task_id, new_hash, current_hash) in self._stored

    def in_doubt(self, task_id: int, new_hash: str) -> bool:
        return (task_id, new_hash) in self._in_doubt

    def restore_landing(self, task_id: int, now: dt.datetime, window: float) -> float | None:
        """Seconds since the rollback of a restore in doubt of ``task_id`` was last heard of, where
        that is under ``window`` (``landing_age``): that restore may still land, and would undo a
        write sent now; else None (an older journal has no ``restoring`` records: None)."""
        signs = self._restores.get(task_id)
        return None if signs is None else landing_age(signs, now, window)


def index_journal(job_url: str, host: str | None = None) -> RerunIndex:
    """Read the job's journal once (``JobError`` on a corrupt line, as ``read_journal``). ``host``:
    the backend the run writes to; the other backends that writes not rolled back went to are
    ``RerunIndex.hosts`` (one that was rolled back whole names none: applying elsewhere is fine)."""
    keys = bytearray()
    written = False
    # task id -> [run, new hash] of each ``before`` not settled yet, as ``open_writes`` keeps them
    open_: dict[int, list[tuple[Any, str]]] = {}
    here = None if host is None else origin(host)
    elsewhere: dict[str, set[int]] = {}  # another backend's host -> the tasks written there, not restored
    restores = _Restores()
    for rec in iter_journal(job_url):
        op, tid = rec.get("op"), rec.get("task_id")
        restores.see(rec, op, tid)
        if tid is None:
            continue
        if op == "before":
            written = True
            open_.setdefault(tid, []).append((rec.get("run"), rec["new_hash"]))
            if here is not None and type(there := rec.get("host")) is str and origin(there) != here:
                elsewhere.setdefault(there, set()).add(tid)
        elif op in ("done", "failed"):
            stored, new = rec.get("stored_hash"), rec.get("new_hash")
            if op == "done" and stored and new and isinstance(stored, str) and stored != new:
                keys += _key(tid, new, stored)  # a stored hash of another type equals no task's hash
            pending = open_.get(tid)
            # a write refused after an attempt no one answered may still land: in doubt (``open_writes``)
            if pending and (op == "done" or rec.get("refused")):
                run, recovered = rec.get("run"), rec.get("recovered")  # a write found stored: any run's (``open_writes``)
                left = [(r, h) for r, h in pending if not ((r == run or recovered) and h == rec.get("new_hash", h))]
                if left:
                    open_[tid] = left
                else:
                    del open_[tid]
        elif op == "restored":
            open_.pop(tid, None)
            for tasks in elsewhere.values():
                tasks.discard(tid)
    in_doubt = {(tid, h) for tid, pending in open_.items() for _, h in pending}
    return RerunIndex(keys, in_doubt, written=written, hosts={there for there, tasks in elsewhere.items() if tasks},
                      restores=restores.signs())


def _write_hashes(job_url: str, *, recovered: bool = True) -> Iterator[tuple[int, str]]:
    """``(task id, hash)`` of each write in the journal of ``job_url``: what it was sent (a write
    a kill left in doubt included) and what the backend said it stored. ``recovered`` False leaves
    out a re-run's recovered stored hash: what the task held when it was found in doubt, which may
    hold a reviewer's addition (``journal.contains`` allows extra keys)."""
    for rec in iter_journal(job_url):
        tid = rec.get("task_id")
        if rec.get("op") in ("before", "done") and tid is not None:
            stored = rec.get("stored_hash") if recovered or not rec.get("recovered") else None
            for h in {rec.get("new_hash"), stored}:
                if isinstance(h, str):
                    yield tid, h


class LineageIndex:
    """Every write of the jobs a job was chained or cloned from (``apply_plan.lineage``), what was
    sent and what the backend said it stored (a recovered one's aside): ``(task id, hash) in
    index``. A journal that cannot be read adds nothing: its tasks then look changed since export,
    a conflict, the safe side."""

    def __init__(self, job_urls: tuple[str, ...]) -> None:
        keys = bytearray()
        for url in job_urls:
            try:
                for tid, h in _write_hashes(url, recovered=False):
                    keys += _key(tid, h, "")
            except (JobError, StorageError) as exc:
                log.debug("the journal of %s is not read for apply's lineage: %s", url, exc)
        self._written = KeySet(keys)

    def __contains__(self, task_hash: tuple[int, str]) -> bool:
        return _key(task_hash[0], task_hash[1], "") in self._written


def own_writes(job_url: str, task_ids: set[int]) -> set[tuple[int, str]]:
    """``(task id, hash)`` of every write of this job to one of ``task_ids`` (``_write_hashes``).
    Read for the few tasks that look changed since export, after the run (``apply``): a task
    holding one of these holds this job's data."""
    return {(tid, h) for tid, h in _write_hashes(job_url) if tid in task_ids}
