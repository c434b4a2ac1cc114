"""The write-ahead journal of a job's writes to Synapse: ``<job>/synapse-journal.jsonl``.

Before apply overwrites a task's data it appends ``{"op": "before", "task_id", "data_unit", "previous",
"previous_hash", "new", "new_hash", ...}`` and waits until that line is flushed and fsynced;
only then is the PUT sent. After the PUT it appends ``done`` with the hash of what the backend
answered it stored (``stored_hash``; a backend may normalise data), and waits again until that
is on disk before the task counts as applied; a refused PUT appends ``failed`` (``refused``: the
backend wrote nothing, as no earlier attempt of it went unanswered (``errors.went_unanswered``: an
earlier 500 or 503 was answered); rollback leaves that write out. Without ``refused`` an earlier
attempt went unanswered and may still land: the write stays in doubt, as if it had been noted
``unanswered``; a journal written before apply told a 500 or 503 apart holds such records after
those too, read as they are). Each attempt of a PUT not sent at once (a repeated one,
``attempt`` 2, 3, ...; or the first, 1, held back by a pause for another request's 429 or queued
for a connection slot the client's other requests held) appends
``attempt`` and waits until it is on disk before that attempt is sent: the run's last sign of life
then follows its last attempt (``TaskHistory.landing``). Rollback journals each restore as
apply does its writes: ``restoring`` (``task_id``, ``host``, ``new_hash``: the hash of the data
put back) on disk before the PUT, ``attempt`` records likewise, how a failed one ended, and
``restored`` after it (or where the task already held its data): a restore a stopped rollback
left in flight is in doubt, and waited for, as a write is, by rollback and by apply (a journal
without ``restoring`` records, written before rollback made them, rolls back as it did; where
``restoring`` cannot be written, a full disk, the restore is sent unjournalled and rollback's
summary says so). So
whatever stops a run (kill -9, a revoked token, the backend going away), the journal holds every
task's previous data for each write that may have happened, and ``rollback`` can finish.

A ``kill -9`` between a PUT and its ``done`` record leaves that write *in doubt*: it may or may
not have reached the backend, which may have stored it normalised. Such a task is recognised
as holding this job's write when its current data contains everything that was sent (every
key and value of the sent data, lists element by element; keys the backend added are allowed),
so re-apply calls it unchanged and rollback restores it rather than reporting a conflict.
A PUT that ended without an answer (a timeout, a dropped connection) or with a gateway's 502 or
504, on its last attempt or an earlier one, stays in doubt, noted ``unanswered``, as does one
refused after such an attempt (``failed`` without ``refused``). Such a write, or one whose run was stopped while it waited (a Ctrl-C), may
still reach the backend: a rollback within a minute of its run's last record leaves the task
open, whatever it holds now (``TaskHistory.landing``), since closing it would leave the write,
landed after, for good. A PUT the backend itself answered (a 500, a 503,
a 2xx whose body is not JSON: ``answered``) stays in doubt, with nothing on its way; a later run
that finds the task holding the write (``done`` with ``recovered``) settles it.

On local disks a record is on disk when ``write_ahead`` returns (write, flush, fsync). On object
stores each commit is one object written whole (``pipe_file``); it is durable when the store
acknowledges the PUT, which for S3 is read-after-write consistent.

A journal whose lines cannot be read (other than a torn last line, which a crash leaves and is
ignored) stops apply and rollback with one line naming the file and line: skipping it would
lose a task's previous data.

Writes are group-committed: concurrent writers' records share one write and one fsync, so the
journal costs one disk flush per batch of PUTs, not one per task. Object stores cannot append,
so a job folder on one gets one object per commit under ``synapse-journal/`` instead; readers
see the same records either way.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import io
import logging
import os
import uuid
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from .._errors import JobError, StorageError, counted, write_failure
from .._jobs.layout import JOURNAL_NAME, JOURNAL_SEGMENTS_DIR
from .._storage import is_local, join, redact_url, url_to_fs
from .errors import SynapseHTTPError, may_still_land
from .taskdata import dumps_exact, loads_exact

log = logging.getLogger(__name__)


def new_run_id() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:8]


#: seconds a record may be dated ahead of this machine's clock and still count as a sign of its
#: run's life (``TaskHistory.landing``): a clock wronger than that would keep a rollback waiting for ever
MAX_CLOCK_AHEAD = 3600.0
#: a record's ``at``: when it was journalled, in UTC
_AT_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime(_AT_FORMAT)


class _LocalStore:
    """Appends unbuffered, and a commit that fails (a full disk) is cut off again: its writers
    learn it failed, so none of its bytes may land later. A buffered file kept the unwritten
    rest, wrote it with the next commit (a ``before`` record of a PUT never sent) or raised it
    again on close, where it replaced apply's report of the rollback it had just done."""

    def __init__(self, path: str) -> None:
        os.makedirs(os.path.dirname(os.path.abspath(path)) or ".", exist_ok=True)
        _drop_torn_tail(path)
        self._file = open(path, "ab", buffering=0)  # noqa: SIM115 - kept open for the journal's lifetime

    def write(self, data: bytes) -> None:
        fd = self._file.fileno()
        start = os.fstat(fd).st_size
        try:
            view = memoryview(data)
            while view:
                view = view[self._file.write(view):]
            os.fsync(fd)
        except BaseException:
            with contextlib.suppress(OSError):  # a torn commit glued to the next would be unreadable
                os.ftruncate(fd, start)
            raise

    def close(self) -> None:
        self._file.close()


def _drop_torn_tail(path: str) -> None:
    """Cut a last line left without its newline by a crash.

    Appending after it would glue the torn bytes to this run's first record, and readers skip
    that merged line as unparsable: a ``before`` record (with the task's previous data) would be
    lost to rollback. The torn line itself was never acknowledged, so nothing relied on it.
    """
    try:
        f = open(path, "r+b")  # noqa: SIM115 - closed below
    except FileNotFoundError:
        return
    with f:
        size = f.seek(0, os.SEEK_END)
        if size == 0:
            return
        f.seek(size - 1)
        if f.read(1) == b"\n":
            return
        keep, pos, block = 0, size, 65536
        while pos > 0:
            start = max(0, pos - block)
            f.seek(start)
            chunk = f.read(pos - start)
            cut = chunk.rfind(b"\n")
            if cut >= 0:
                keep = start + cut + 1
                break
            pos = start
        log.warning("journal %s ends with a torn line (%s) from an interrupted run; dropping it", path,
                    counted(size - keep, "byte"))
        f.truncate(keep)
        f.flush()
        os.fsync(f.fileno())


class _ObjectStore:
    def __init__(self, job_url: str, run_id: str) -> None:
        self.fs, self.folder = url_to_fs(join(job_url, JOURNAL_SEGMENTS_DIR))
        self.run_id = run_id
        self.seq = 0

    def write(self, data: bytes) -> None:
        self.seq += 1
        self.fs.pipe_file(f"{self.folder}/{self.run_id}-{self.seq:06d}.jsonl", data)

    def close(self) -> None:
        pass


class Journal:
    """An append-only journal for one run; use from one event loop."""

    def __init__(self, job_url: str, run_id: str | None = None) -> None:
        self.job_url = job_url
        self.run_id = run_id or new_run_id()
        self.url = join(job_url, JOURNAL_NAME)
        fs, path = url_to_fs(self.url)
        try:
            self._store: _LocalStore | _ObjectStore = _LocalStore(path) if is_local(fs) else _ObjectStore(job_url, self.run_id)
        except OSError as exc:
            raise StorageError(f"cannot open the journal {self.url}: {exc}") from None
        self._pending: list[bytes] = []
        self._waiters: list[asyncio.Future] = []
        self._committer: asyncio.Task | None = None
        self.records = 0

    def _encode(self, op: str, fields: dict[str, Any]) -> bytes:
        self.records += 1
        return dumps_exact({"op": op, "run": self.run_id, "at": _now(), **fields}) + b"\n"

    async def write_ahead(self, op: str, **fields: Any) -> None:
        """Append a record and return once it is on disk (raises ``StorageError`` if it cannot be)."""
        future = asyncio.get_running_loop().create_future()
        self._pending.append(self._encode(op, fields))
        self._waiters.append(future)
        self._kick()
        await future

    def note(self, op: str, **fields: Any) -> None:
        """Append a record that goes to disk with the next commit (or ``flush``)."""
        self._pending.append(self._encode(op, fields))
        if len(self._pending) >= 1024:
            self._kick()

    def attempts(self, task_id: int, new_hash: str) -> Callable[[int], Awaitable[None]]:
        """The client's ``on_attempt`` for a PUT of ``new_hash`` to ``task_id`` (apply's write or
        rollback's restore): an ``attempt`` record on disk before each attempt not sent at once (a
        repeated one; a first one held back by another request's 429 or queued for a connection
        slot). Rollback times a write in doubt from its run's last record (``TaskHistory.landing``):
        a PUT held for minutes by a run with nothing else to journal, then killed, looked a minute
        old while its last attempt was on its way. A first attempt sent at once needs none (its
        ``before`` or ``restoring`` was just written): a run that meets no 429, repeats no PUT and
        never waits for a slot journals nothing more."""

        async def attempt(number: int) -> None:
            await self.write_ahead("attempt", task_id=task_id, new_hash=new_hash, attempt=number)

        return attempt

    def note_failure(self, exc: SynapseHTTPError, task_id: int, new_hash: str) -> bool:
        """Note how a PUT of ``new_hash`` to ``task_id`` ended without success (apply's write or
        rollback's restore), as the readers (``open_writes``, ``journal_index``) settle it; whether
        the backend refused it with nothing written (``failed`` with ``refused``).

        Refused after a 500 or 503 of the backend's own: nothing of that attempt is on its way, but
        it may have stored the write before failing, as a final 500 may: ``answered``, in doubt for
        rollback and a re-run to look at the task (not to wait a minute for it). Refused otherwise
        (401 and 403 included): the backend wrote nothing, unless an earlier attempt it never
        answered did (``refused`` False: that attempt may still land, so the write stays in doubt).
        No answer (a timeout, a dropped connection), or a gateway that stopped waiting for the
        backend, on this attempt or an earlier one: ``unanswered``, the backend may still be
        processing it (``TaskHistory.landing``). The backend's own answer (a 2xx whose body is not
        JSON, a 500, a 503): ``answered``, in doubt, nothing on its way."""
        refusal = exc.status is not None and 300 <= exc.status < 500
        if refusal and exc.after_server_error and not exc.after_unanswered:
            self.note("answered", task_id=task_id, new_hash=new_hash, status=exc.status)
        elif refusal:
            refused = not may_still_land(exc)
            self.note("failed", task_id=task_id, new_hash=new_hash, status=exc.status, refused=refused)
            return refused
        elif may_still_land(exc):
            self.note("unanswered", task_id=task_id, new_hash=new_hash, status=exc.status)
        else:
            self.note("answered", task_id=task_id, new_hash=new_hash, status=exc.status)
        return False

    def _kick(self) -> None:
        if self._committer is None or self._committer.done():
            self._committer = asyncio.ensure_future(self._commit_loop())

    async def _commit_loop(self) -> None:
        while self._pending:
            batch, waiters = self._pending, self._waiters
            self._pending, self._waiters = [], []
            try:
                await asyncio.to_thread(self._store.write, b"".join(batch))
            except Exception as exc:  # every writer waiting on this commit learns it failed
                error = StorageError(_cannot_write(self.url, exc))
                for w in waiters:
                    if not w.done():
                        w.set_exception(error)
                continue
            for w in waiters:
                if not w.done():
                    w.set_result(None)

    async def flush(self) -> None:
        if self._pending:
            self._kick()
        while self._committer is not None and not self._committer.done():
            await asyncio.shield(self._committer)
            if self._pending:
                self._kick()

    async def aclose(self) -> None:
        with contextlib.suppress(Exception):
            await self.flush()
        self._store.close()


def _cannot_write(url: str, exc: Exception) -> str:
    """Why a commit of the journal failed, as every other writer says it (``write_failure``): a
    full disk in words, and a file size limit (``ulimit -f``) as the process's, to raise, which
    said only "[Errno 27] File too large" here while annotate and convert named the limit."""
    shown = f"the journal {redact_url(url)}"
    return write_failure(shown, exc) if isinstance(exc, OSError) else f"cannot write {shown}: {exc}"


def read_journal(job_url: str) -> list[dict]:
    """Every record of the job's journal in write order (``iter_journal``, all held at once)."""
    return list(iter_journal(job_url))


def iter_journal(job_url: str) -> Iterator[dict]:
    """Every record of the job's journal in write order, read a line at a time: a reader that
    keeps only what it needs holds no more than one record (a segment of an object store's
    journal, one commit, is read whole).

    A torn last line of the local journal (a crash mid-append) is ignored; any other line that
    is not a well-formed record raises ``JobError`` naming the file and line.
    """
    fs, path = url_to_fs(join(job_url, JOURNAL_NAME))
    try:
        if fs.exists(path):
            with fs.open(path, "rb") as f:
                yield from _records(join(job_url, JOURNAL_NAME), f, may_tear=True)
        seg_fs, folder = url_to_fs(join(job_url, JOURNAL_SEGMENTS_DIR))
        if seg_fs.exists(folder):
            for name in sorted(seg_fs.ls(folder, detail=False)):
                if str(name).endswith(".jsonl"):
                    chunk = seg_fs.cat_file(name)
                    yield from _records(str(name), io.BytesIO(chunk), may_tear=False)
    except OSError as exc:
        raise StorageError(f"cannot read the journal of {redact_url(job_url)}: {exc}") from None


def _records(url: str, lines: Iterable[bytes], *, may_tear: bool) -> Iterator[dict]:
    for number, raw in enumerate(lines, 1):
        torn = may_tear and not raw.endswith(b"\n")  # only the last piece has no newline after it
        raw = raw.removesuffix(b"\n")
        if not raw.strip():
            continue
        try:
            rec = loads_exact(raw)  # what a task held before, digit for digit
            problem = _record_problem(rec)
        except ValueError as exc:
            problem = f"not JSON ({exc})"
        if problem is None:
            yield rec
        elif not torn:
            raise JobError(f"the journal {redact_url(url)} is corrupt at line {number}: {problem}; "
                           "restore it from a backup (apply and rollback need every record)")


def _record_problem(rec: Any) -> str | None:
    """Why ``rec`` is not a usable journal record, or None."""
    if not isinstance(rec, dict) or not isinstance(rec.get("op"), str):
        return "not a journal record (no 'op')"
    op = rec["op"]
    if op in ("before", "done", "failed", "restored", "restoring"):
        tid = rec.get("task_id")
        if not isinstance(tid, int) or isinstance(tid, bool):
            return f"a {op!r} record without an integer task_id"
    if op == "before" and not (isinstance(rec.get("previous_hash"), str) and isinstance(rec.get("new_hash"), str)):
        return "a 'before' record without previous_hash and new_hash"
    if op == "done" and not isinstance(rec.get("new_hash", ""), str):
        return "a 'done' record with a bad new_hash"
    return None


def contains(current: Any, sent: Any) -> bool:
    """Whether ``current`` holds everything in ``sent``: dict keys recursively (extra keys
    allowed), lists element by element with the same length, other values equal."""
    if isinstance(sent, dict):
        return isinstance(current, dict) and all(k in current and contains(current[k], v) for k, v in sent.items())
    if isinstance(sent, list):
        return (isinstance(current, list) and len(current) == len(sent)
                and all(contains(c, v) for c, v in zip(current, sent, strict=True)))
    if isinstance(sent, bool) or isinstance(current, bool):
        return current is sent
    return bool(current == sent)


@dataclass
class TaskHistory:
    """One task's writes since it was last restored (or ever)."""

    task_id: int
    #: ``before`` records in order: the first one's ``previous`` is what rollback puts back
    writes: list[dict] = field(default_factory=list)
    #: what the backend said it stored for those writes (differs from ``new_hash`` if it normalises)
    stored: set[str] = field(default_factory=set)
    #: ``before`` records with no ``done`` or refusal (``failed`` with ``refused``) after them: writes
    #: in doubt after a crash, or refused after an attempt that may still land; and ``restoring``
    #: records of a stopped rollback's restores (no ``restored`` after them), which may still land too
    in_doubt: list[dict] = field(default_factory=list)
    #: where the writes name no data unit (an older journal): the one their manifest line names
    exported_unit: int | None = None
    #: run id -> when that run last journalled anything (shared by every task's history): a write
    #: in doubt may be on its way until a while after its run's last sign of life (``landing``)
    runs_last_seen: dict[str, dt.datetime] = field(default_factory=dict)
    #: ``id`` of the writes in doubt that the backend answered (``answered``: a 2xx whose body is
    #: not JSON): stored or not, nothing of them is on its way
    answered: set[int] = field(default_factory=set)
    #: ``id`` of the writes in doubt no one answered (``unanswered``: a timeout, a 5xx; or ``failed``
    #: without ``refused``: refused after such an attempt): the backend may still process them, even
    #: when their run ended by itself (apply's own rollback)
    unanswered: set[int] = field(default_factory=set)

    @property
    def original(self) -> Any:
        return self.writes[0].get("previous")

    @property
    def original_hash(self) -> str:
        return self.writes[0]["previous_hash"]

    @property
    def data_unit(self) -> int | None:
        """The data unit the task was bound to when the job wrote it (in a journal written before
        apply recorded it, the one its manifest line names: ``written_units``): its ``previous``
        data belongs to that image."""
        for write in self.writes:
            unit = write.get("data_unit")
            if isinstance(unit, int) and not isinstance(unit, bool):
                return unit
        return self.exported_unit

    def landing(self, now: dt.datetime, window: float, *, unanswered_only: bool = False) -> float | None:
        """Seconds since the run of a write in doubt last journalled anything, where that is under
        ``window``: that run may have stopped moments ago with the write on its way, or be retrying
        it; else None. Timed from the run's last record, not the write's own: a PUT is retried
        (429s, 5xx) long after its ``before`` record, and one answered by no one (``unanswered``)
        may still be processed. A time ahead of ``now`` (another machine's clock) gives a negative
        age, so the wait is the real one; one over ``MAX_CLOCK_AHEAD`` ahead is no sign of life.
        ``unanswered_only``: only the writes noted ``unanswered`` (apply's own rollback, whose
        other requests have all ended)."""
        return landing_age(((journalled_at(write), self.runs_last_seen.get(write.get("run")))
                            for write in self.in_doubt
                            if id(write) not in self.answered
                            and not (unanswered_only and id(write) not in self.unanswered)), now, window)

    def ours(self) -> set[str]:
        """Fingerprints the task may hold because this job wrote them.

        A later write's ``previous_hash`` is not among them: unless it is one of our own
        hashes, it is data someone else put there between two runs (a human edit that a
        ``--force`` apply then failed to overwrite, say), and rollback must not clobber it
        without ``--force``.
        """
        return {w["new_hash"] for w in self.writes} | self.stored

    def holds_ours(self, current: Any, current_hash: str) -> bool:
        """Whether the task's current data is one of this job's writes (see the module docstring
        for writes in doubt)."""
        if current_hash in self.ours():
            return True
        return any("new" in w and contains(current, w["new"]) for w in self.in_doubt)


def landing_age(signs: Iterable[Iterable[dt.datetime | None]], now: dt.datetime, window: float) -> float | None:
    """The youngest age under ``window`` of the writes in doubt (or restores) whose signs of life
    are ``signs`` (for each, when it was journalled and when its run last journalled anything;
    the latest counts), or None. Shared by rollback (``TaskHistory.landing``) and a re-run of
    apply (``journal_index``), so both wait for the same minute. A time ahead of ``now`` gives a
    negative age; one over ``MAX_CLOCK_AHEAD`` ahead is no sign of life."""
    ages = []
    for times in signs:
        seen = [when for when in times if when is not None and (when - now).total_seconds() < MAX_CLOCK_AHEAD]
        if seen:
            ages.append((now - max(seen)).total_seconds())
    recent = [age for age in ages if age < window]
    return min(recent) if recent else None


def heard_of(age: float) -> str:
    """A ``landing_age`` as the messages say it: ``last heard of 3 s ago``, or, a record dated
    ahead of this machine's clock, how far ahead (the wait is then that much longer)."""
    return f"last heard of {age:.0f} s ago" if age >= 0 else f"whose clock is {-age:.0f} s ahead of this machine's"


def journalled_at(record: dict) -> dt.datetime | None:
    """When ``record`` was journalled (its ``at``, as ``_now`` writes it), or None."""
    try:
        return dt.datetime.strptime(record["at"], _AT_FORMAT).replace(tzinfo=dt.UTC)
    except (KeyError, TypeError, ValueError):
        return None


def open_writes(records: list[dict]) -> dict[int, TaskHistory]:
    """Tasks with writes not yet undone, in the order they were first written."""
    histories: dict[int, TaskHistory] = {}
    last_seen: dict[str, dt.datetime] = {}  # every history's ``runs_last_seen``
    for rec in records:
        op = rec.get("op")
        tid = rec.get("task_id")
        if (when := journalled_at(rec)) is not None and isinstance(rec.get("run"), str):
            last_seen[rec["run"]] = max(when, last_seen.get(rec["run"], when))
        if tid is None:
            continue
        if op == "before":
            history = histories.setdefault(tid, TaskHistory(tid, runs_last_seen=last_seen))
            history.writes.append(rec)
            history.in_doubt.append(rec)
        elif op == "restoring" and tid in histories:
            # a restore on its way: in doubt as a write is, until ``restored`` (or a refusal) settles it
            histories[tid].in_doubt.append(rec)
        elif op in ("done", "failed") and tid in histories:
            history = histories[tid]
            if op == "done" and rec.get("stored_hash"):
                history.stored.add(rec["stored_hash"])
            # a write found stored by a later run (``recovered``) settles the same data's writes of any run
            settled = [w for w in history.in_doubt if (w.get("run") == rec.get("run") or rec.get("recovered"))
                       and w.get("new_hash") == rec.get("new_hash", w.get("new_hash"))]
            if op == "failed" and not rec.get("refused"):
                # refused after an attempt no one answered, which may still land: in doubt, as ``unanswered``
                history.unanswered.update(id(w) for w in settled)
                continue
            history.in_doubt = [w for w in history.in_doubt if not any(w is s for s in settled)]
            if op == "failed" and settled:
                # refused, no earlier attempt left unanswered: nothing was written, so nothing of it to restore
                history.writes = [w for w in history.writes if w is not settled[-1]]
                if not history.writes:
                    del histories[tid]
        elif op in ("answered", "unanswered") and tid in histories:
            history = histories[tid]
            marked = history.answered if op == "answered" else history.unanswered
            marked.update(id(w) for w in history.in_doubt
                          if w.get("run") == rec.get("run") and w.get("new_hash") == rec.get("new_hash"))
        elif op == "restored":
            histories.pop(tid, None)
    return histories
