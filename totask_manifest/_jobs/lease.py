"""One writer per job folder: an exclusive lease that works on every fsspec storage.

Two processes writing one job folder lose lines: the second one's final checkpoint part can
replace the first one's. So every command that writes a job folder (``annotate``, ``resume``,
``chain`` and ``clone`` into it, ``apply``, ``rollback``) first takes the folder's lease.

**Where.** ``<job>/.lease/lease-<generation>.json``; the lease is the file with the highest
generation. Taking it means *creating* the next generation's file, which must be atomic:

* local folders: the record is written under a temporary name, then ``os.link``\\ ed to the
  generation's name; ``link`` fails if the name exists, so exactly one of two racers wins and
  the file is never seen half-written;
* ``s3://``: ``pipe_file(mode="create")``, which s3fs sends as a PUT with ``If-None-Match: *``
  (S3's conditional write; a second PUT gets ``412 Precondition Failed``, raised as
  ``FileExistsError``);
* ``memory://``: ``pipe_file(mode="create")`` (checked and written under the GIL);
* any other fsspec storage: ``pipe_file(mode="create")`` where the implementation has it (fsspec's
  default checks then writes, which is not atomic), then the record is read back a moment later
  and must still hold this holder's unique id. Two racers can both pass on such a store; the
  checks on every checkpoint (below) then stop the loser at its next part.

Nothing is ever deleted to take a lease over, so no holder can delete another's fresh lease:
a stale generation ``N`` is taken over by creating ``N + 1``, and only one racer can.

**Holder and heartbeat.** The record names the holder (``holder.Holder``): host, pid (with its
start time, against pid reuse), a unique id and the command. A thread rewrites the holder's own
generation file every ``timeout / 4`` seconds with a new heartbeat time.

**Stale.** A lease is free when it was released, when its heartbeat is older than the timeout
(``TOTASK_LEASE_TIMEOUT`` seconds, default 60; hosts' clocks are assumed to agree within a few
seconds), or when its holder ran on this host (same boot, same pid namespace) and that process
is gone, which lets ``resume`` take over at once after a ``kill -9``.

**Refused.** A job-running command (``JOB_RUNS``: those that record their runs in ``job.json``)
refused under the lease before it recorded anything there (an input changed since the job read
it, a file gone) gives the lease back as it found it, where the record it took over is a job
run's too (``RUN_RECORDS``: a killed ``annotate`` or ``resume``, or a killed to_task ``run``, whose
annotate ran under its "run" record): that record is written back into its own generation, so
``status`` still names that run, not a command that never ran the job. Any other
command (``apply``, ``rollback``, ``run``) writes where ``job.json`` does not show it (a journal,
a run record), so failing, it releases the lease as its own: given back, an interrupted apply
vanished behind a long-dead holder, named again by the next command's "taking over".

**Lost.** A holder that was paused past the timeout may find its lease taken over. The job
checks its lease before every checkpoint part and before every ``job.json`` write; a lost lease
stops the run at once, writing nothing more, with a ``LeaseLost`` error.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import math
import os
import re
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

from .. import _signals
from .._errors import (
    WRITE_ERRNOS,
    JobBusyError,
    JobError,
    StorageError,
    UsageError,
    say_also,
    write_failure,
)
from .._folders import NOT_WRITABLE_ERRNOS, missing_folders, not_writable, remove_empty
from .._storage import backend_errors, fsync_dir, is_local, join, local_file_url, redact_url, url_to_fs
from .holder import Holder
from .layout import LEASE_DIR, file_in_the_way

log = logging.getLogger("totask_manifest")

_NAME = re.compile(r"lease-(\d{6,})\.json")
#: what ``link`` says on a file system without hard links (Linux: EPERM, "does not support the
#: creation of hard links"; others: EOPNOTSUPP, ENOSYS); locks (``flock``) the lease does not use
_NO_LINKS = frozenset({errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.ENOSYS})
DEFAULT_TIMEOUT = 60.0
#: the commands that record their runs in ``job.json`` (``_api``): only their unchanged ``job.json``
#: shows that a failing one did nothing, and only their killed runs does ``status`` name from the lease
JOB_RUNS = frozenset({"annotate", "resume", "chain", "clone"})
#: the holders' commands whose killed records a refused job run gives back: the job runs', and a
#: to_task ``run``'s, which holds the lease as "run" and re-enters it for its annotate (``hold``
#: keeps the holder's command), so the run ``job.json`` records is under a "run" record
RUN_RECORDS = JOB_RUNS | {"run"}


class LeaseLost(JobError):
    """This process's lease was taken over (it looked stale); it must write nothing more."""


def lease_timeout() -> float:
    """Seconds without a heartbeat after which a lease is stale (``TOTASK_LEASE_TIMEOUT``); not a
    finite number is refused (``nan`` spun the heartbeat, ``inf`` killed it, ``abc`` read as 60)."""
    raw = os.environ.get("TOTASK_LEASE_TIMEOUT", "").strip()
    with contextlib.suppress(ValueError):
        if math.isfinite(value := float(raw) if raw else DEFAULT_TIMEOUT):
            return max(value, 1.0)
    raise UsageError(f"TOTASK_LEASE_TIMEOUT={raw!r} is not a number of seconds (default {DEFAULT_TIMEOUT:g}): "
                     "set it to one, or unset it")


# -- the lease files ---------------------------------------------------------------------------


def _generations(fs: Any, folder: str) -> list[int]:
    # s3fs (and others) cache listings: a lease decision must see what is there now
    with contextlib.suppress(Exception):
        fs.invalidate_cache(folder)
    try:
        entries = fs.ls(folder, detail=False)
    except FileNotFoundError:
        return []
    out = []
    for entry in entries:
        m = _NAME.fullmatch(str(entry).rstrip("/").rsplit("/", 1)[-1])
        if m:
            out.append(int(m.group(1)))
    return sorted(out)


def _read_raw(fs: Any, path: str) -> bytes | None:
    """The file's bytes, or None where it is not there."""
    try:
        return bytes(fs.cat_file(path))
    except FileNotFoundError:
        return None


def _parse_holder(raw: bytes | None) -> Holder | None:
    if raw is None:
        return None
    return Holder.from_json(raw) or Holder("", "?", "", 0, "", "unreadable lease", 0.0, 0.0)


def _read_holder(fs: Any, path: str) -> Holder | None:
    return _parse_holder(_read_raw(fs, path))


def busy_error(job_url: str, holder: Holder, timeout: float | None = None) -> JobBusyError:
    """The one-line refusal of a second writer, naming the live holder of the folder's lease."""
    timeout = lease_timeout() if timeout is None else timeout
    return JobBusyError(
        f"job {redact_url(job_url)} is in use by {holder.describe()}, last heartbeat "
        f"{time.time() - holder.heartbeat:.0f} s ago; wait for it to end or stop it "
        f"(a lease is stale after {timeout:g} s without a heartbeat)"
    )


def current_holder(job_url: str) -> tuple[Holder | None, str | None]:
    """(the latest holder of the job folder's lease or None, why it is gone or None if live)."""
    fs, folder = url_to_fs(join(job_url, LEASE_DIR))
    gens = _generations(fs, folder)
    if not gens:
        return None, None
    holder = _read_holder(fs, f"{folder}/lease-{gens[-1]:06d}.json")
    if holder is None:
        return None, None
    return holder, holder.gone_reason(lease_timeout())


def _create_exclusive(fs: Any, path: str, data: bytes) -> None:
    """Create ``path`` holding ``data`` unless it exists (``FileExistsError``); see the module docstring."""
    if is_local(fs):
        directory = os.path.dirname(path)
        os.makedirs(directory, exist_ok=True)
        tmp = f"{directory}/.tmp-{os.path.basename(path)}-{uuid.uuid4().hex}"
        try:  # a full disk fails the write: the temporary goes too, as after the link
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.link(tmp, path)
        finally:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        fsync_dir(directory)
        return
    fs.pipe_file(path, data, mode="create")


def _atomic_exclusive(fs: Any) -> bool:
    """Whether ``_create_exclusive`` is atomic on this storage (else it is verified by reading back)."""
    protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    return is_local(fs) or protocol in ("s3", "s3a", "memory")


class Lease:
    """A held lease on one job folder; ``release`` (or leaving ``hold``) gives it back."""

    def __init__(self, job_url: str, holder: Holder, fs: Any, folder: str, generation: int,
                 created: list[str], found: bytes | None = None) -> None:
        self.job_url = job_url
        #: local folders taking the lease created, deepest first (``.lease``, the job's, a new
        #: ``--output`` root): removed again when the command leaves no job behind; never one that existed
        self.created = created
        self.holder = holder
        self.fs = fs
        self.folder = folder
        self.generation = generation
        self.lost: str | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.depth = 1
        #: the record of the generation this lease followed (a gone or released holder's), and
        #: ``job.json`` as it was when the lease was taken: a job run refused before it changed
        #: ``job.json`` writes that record back (``_give_back_as_found``, where ``_gives_back``), so
        #: ``status`` names the run that holder recorded, not a command that never ran the job
        self.found = found
        self.job_json_found: bytes | None = None

    @property
    def job_json(self) -> str:
        return self.folder.rsplit("/", 1)[0] + "/job.json"

    def note_job_json(self) -> None:
        """Keep ``job.json`` as the lease found it, where there is a record to give back; left
        unknown (a store that failed the read, or not a job run's lease: ``_gives_back``), the
        lease is released as the command's own."""
        if self._gives_back():
            with contextlib.suppress(Exception):
                self.job_json_found = _read_raw(self.fs, self.job_json)

    def _gives_back(self) -> bool:
        """Whether a refusal may give back the record found: only a job run (``JOB_RUNS``) taking
        over a job run's record (``RUN_RECORDS``, a to_task ``run``'s included). ``apply`` and
        ``rollback`` never write ``job.json``, so its being unchanged does not show they did nothing
        (a journal written, then a Ctrl-C); and another command's record names no run ``status`` shows."""
        if self.found is None or self.holder.command not in JOB_RUNS:
            return False
        found = _parse_holder(self.found)
        return found is not None and found.command in RUN_RECORDS

    @property
    def path(self) -> str:
        return f"{self.folder}/lease-{self.generation:06d}.json"

    def _write_own(self, data: bytes | None = None) -> None:
        """Rewrite this generation's file: this holder's record, or ``data`` (one found, given back)."""
        data = self.holder.to_json() if data is None else data
        if is_local(self.fs):
            from .._storage import write_bytes_atomic

            write_bytes_atomic(self.path, data)
        else:
            self.fs.pipe_file(self.path, data)

    def verify(self) -> None:
        """Raise ``LeaseLost`` unless this lease is still the latest generation and ours."""
        with self._lock:
            self._verify()

    def _verify(self) -> None:
        if self.lost is None:
            # a store that stopped answering (an endpoint gone) is one StorageError naming the
            # lease folder: the job then fails in one line, not with botocore's traceback
            with backend_errors(join(self.job_url, LEASE_DIR)):
                self._check_generation()
        if self.lost is not None:
            raise LeaseLost(self.lost + "; this run stops without writing more (another process owns the job now)")

    def _check_generation(self) -> None:
        """Set ``lost`` when this lease is no longer the latest generation, or no longer ours."""
        gens = _generations(self.fs, self.folder)
        if not gens or gens[-1] != self.generation:
            newer = _read_holder(self.fs, f"{self.folder}/lease-{gens[-1]:06d}.json") if gens else None
            who = f" by {newer.describe()}" if newer is not None else ""
            self.lost = f"the lease on {redact_url(self.job_url)} was taken over{who}"
        else:
            mine = _read_holder(self.fs, self.path)
            if mine is None or mine.id != self.holder.id:
                self.lost = f"the lease on {redact_url(self.job_url)} is no longer this process's"

    def heartbeat(self) -> None:
        with self._lock:
            self._verify()
            self.holder.heartbeat = time.time()
            self._write_own()

    def _beat(self, interval: float) -> None:
        while not self._stop.wait(interval):
            try:
                self.heartbeat()
            except LeaseLost as exc:
                log.error("%s", exc)
                return
            except Exception as exc:  # storage trouble: try again next beat; the timeout is generous
                log.warning("lease heartbeat on %s failed: %s", redact_url(self.job_url), exc)

    def start_heartbeat(self) -> None:
        interval = lease_timeout() / 4
        self._thread = threading.Thread(target=self._beat, args=(interval,), name="totask-lease", daemon=True)
        self._thread.start()

    def release(self, refused: bool = False) -> str | None:
        """Give the lease back. Where the command left no job behind (it was refused before
        ``job.json`` was written), the lease file goes too, so no empty job folder is left.
        ``refused``: the command failed; where it left ``job.json`` as it found it, the record it
        took over is given back (``_give_back_as_found``), not this process's marked released.
        A Ctrl-C or SIGTERM meanwhile is held back until it is given (``_signals.held``): cut
        short, it left the lease naming this process, which another host waits out.

        Returns why it could not be given back (None once it is): the caller says so, in the
        failing command's one line (``hold``) or in a warning of its own where the command succeeded."""
        with _signals.held():
            return self._release(refused)

    def _release(self, refused: bool) -> str | None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        with self._lock:
            if self.lost is not None:
                return None
            try:
                with contextlib.suppress(Exception):
                    self.fs.invalidate_cache(self.job_json)
                if not self.fs.exists(self.job_json):
                    self._drop()
                    return None
                gens = _generations(self.fs, self.folder)
                if gens and gens[-1] == self.generation:
                    if refused and self._give_back_as_found():
                        return None
                    self.holder.released = True
                    self.holder.heartbeat = time.time()
                    self._write_own()
            except Exception as exc:  # left as is, the lease goes stale: same-host at once, else after the timeout
                return f"{redact_url(self.job_url)}: {' '.join(str(exc).split())}"
        return None

    def _give_back_as_found(self) -> bool:
        """Write back the record this lease followed where ``job.json`` is as the lease found it:
        the command recorded no run, so the last holder stays the one its runs name (a killed
        run stays "gone", not "ended without a final status" under a refused command's pid).
        Whether it did."""
        if self.found is None or self.job_json_found is None:
            return False
        now: bytes | None = None
        with contextlib.suppress(Exception):  # unread, it counts as changed: released as this command's
            now = _read_raw(self.fs, self.job_json)
        if now != self.job_json_found:
            return False
        self._write_own(self.found)
        return True

    def abandon(self) -> None:
        """Give back a lease ``acquire`` was stopped while taking (a Ctrl-C): its file goes if it
        is there and this holder's (never another's, who took the generation first), and the
        folders taking it made, if that left them empty (they stayed, and the job folder with them)."""
        self._stop.set()
        with contextlib.suppress(Exception):
            mine = _read_holder(self.fs, self.path)
            if mine is not None and mine.id == self.holder.id:
                self.fs.rm_file(self.path)
            if is_local(self.fs):
                remove_empty(self.created)

    def _drop(self) -> None:
        """Remove this lease's own file (never another's), then the folders taking it created if
        that left them empty."""
        self.fs.rm_file(self.path)
        if is_local(self.fs):
            remove_empty(self.created)


def acquire(job_url: str, command: str) -> Lease:
    """Take the job folder's lease, or raise ``JobBusyError`` naming the live holder."""
    fs, folder = url_to_fs(join(job_url, LEASE_DIR))
    me = Holder.me(command)
    timeout = lease_timeout()
    # a job folder and --output root made here go again if the command leaves no job (Lease._drop)
    created = missing_folders(folder) if is_local(fs) else []
    for _attempt in range(8):
        try:
            gens = _generations(fs, folder)
        except OSError as exc:
            if is_local(fs) and exc.errno == errno.ENOTDIR and (in_the_way := file_in_the_way(folder)):
                raise StorageError(f"cannot take the lease on {redact_url(job_url)}: {in_the_way} is a file, "
                                   "not a folder") from None
            raise StorageError(f"cannot read the lease folder of {redact_url(job_url)}: {exc}") from None
        nxt = 1
        taking_over: str | None = None
        found: bytes | None = None
        if gens:
            found = _read_raw(fs, f"{folder}/lease-{gens[-1]:06d}.json")
            top = _parse_holder(found)
            if top is None:  # removed under us: look again
                continue
            reason = top.gone_reason(timeout)
            if reason is None:
                raise busy_error(job_url, top, timeout)
            if reason != "released":
                taking_over = reason
            nxt = gens[-1] + 1
        lease = Lease(job_url, me, fs, folder, nxt, created, found)
        try:
            _create_exclusive(fs, lease.path, me.to_json())
        except FileExistsError:
            continue  # another process took this generation first: judge it on the next look
        except OSError as exc:
            remove_empty(created)  # as ``Lease._drop``: no folder this command made is left (a full disk)
            # a folder that takes no file (EPERM too: an immutable one, ``chattr +i``; ENOENT: /proc) is
            # told apart from "no hard links" by making a file there (``_folders.not_writable``)
            if is_local(fs) and exc.errno in NOT_WRITABLE_ERRNOS and (why := not_writable(os.path.dirname(lease.path))):
                raise StorageError(f"cannot take the lease on {redact_url(job_url)}: {why}") from None
            if is_local(fs) and exc.errno in _NO_LINKS:  # a file can be made there: only the link failed
                raise StorageError(
                    f"cannot take the lease on {redact_url(job_url)}: its file system does not support hard links "
                    f"({exc.strerror}), which a job folder's lease needs (an atomic create); put the job on a local "
                    "disk or on s3://") from None
            why = write_failure(redact_url(lease.path), exc) if exc.errno in WRITE_ERRNOS else str(exc)  # in words
            raise StorageError(f"cannot take the lease on {redact_url(job_url)}: {why}") from None
        except BaseException:  # a Ctrl-C part way through: the file may be there, and ours
            lease.abandon()
            raise
        try:
            if not _atomic_exclusive(fs):
                time.sleep(0.5)
                back = _read_holder(fs, lease.path)
                if back is None or back.id != me.id or _generations(fs, folder)[-1] != nxt:
                    continue
            if taking_over:
                log.warning("taking over the lease on %s: %s", redact_url(job_url), taking_over)
            for old in gens:  # earlier generations are released or stale: tidy them away
                with contextlib.suppress(Exception):
                    fs.rm_file(f"{folder}/lease-{old:06d}.json")
            lease.note_job_json()  # what a refused command leaves as it was (``Lease.release``)
            lease.start_heartbeat()
        except BaseException:  # a Ctrl-C before the caller has the lease to give back
            lease.abandon()
            raise
        return lease
    raise JobBusyError(f"job {redact_url(job_url)}: could not take its lease (other processes keep taking it)")


#: leases this process holds, by job URL: a command that calls another (annotate -> resume) holds one
_HELD: dict[str, tuple[Lease, int]] = {}
_HELD_LOCK = threading.Lock()


def _key(job_url: str) -> str:
    url = local_file_url(job_url.rstrip("/"))  # a file:// URL: the path it names
    return url if "://" in url else os.path.abspath(url)


@contextlib.contextmanager
def hold(job_url: str, command: str) -> Iterator[Lease]:
    """Hold the job folder's lease for the block (re-entrant within one thread)."""
    key = _key(job_url)
    me = threading.get_ident()
    with _HELD_LOCK:
        held = _HELD.get(key)
    if held is not None and held[1] == me:
        held[0].depth += 1
        try:
            yield held[0]
        finally:
            held[0].depth -= 1
        return
    if held is not None:
        raise JobBusyError(f"job {redact_url(job_url)} is in use by another thread of this process "
                           f"({held[0].holder.command})")
    lease = acquire(job_url, command)
    failing: BaseException | None = None
    try:
        with _HELD_LOCK:
            _HELD[key] = (lease, me)
        yield lease
    except BaseException as exc:
        failing = exc
        raise
    finally:
        with _HELD_LOCK:
            _HELD.pop(key, None)
        if (why := lease.release(refused=failing is not None)) is not None:
            _say_unreleased(why, failing)


def _stale_after() -> str:
    """What an unreleased lease means for the next command on the job (``Holder.gone_reason``): a
    holder on this host is gone at once once its process has ended; while it lives (a library
    caller, a notebook, a worker holding the job again) and on any other host, only once its
    heartbeat, stopped by the release, is older than the timeout."""
    return (f"once this process has ended, the next command on this host takes it over at once; before that, "
            f"or on another host, after {lease_timeout():g} s without a heartbeat (TOTASK_LEASE_TIMEOUT)")


def _say_unreleased(why: str, failing: BaseException | None) -> None:
    """A lease left unreleased (``why``: its URL and the storage's refusal), said once: in the line
    of the error the command is failing with, whatever it is (``_errors.say_also``: an ``OSError``
    or a Ctrl-C too; a line of its own before it read as a second failure), else in a warning of
    its own, the command's work done."""
    if failing is not None:
        say_also(failing, f"; its lease could not be released either ({why}): {_stale_after()}")
    else:
        log.warning("could not release the lease on the job (%s): %s", why, _stale_after())


def held_lease(job_url: str) -> Lease | None:
    """The lease this process holds on ``job_url``, if any."""
    with _HELD_LOCK:
        held = _HELD.get(_key(job_url))
    return held[0] if held is not None else None
