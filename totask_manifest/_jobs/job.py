"""A job folder, owned by one class: where its files are, what its ``job.json`` says, and the
rules that read them.

``Job.open(url)`` reads ``job.json`` (refusing a folder that is not a job, or a damaged file, in
one line that names the file); ``.state`` is the parsed ``JobState``, ``.layout`` the folder's
files *where the caller found it*, ``.output_manifest`` the one output manifest the job has
(the moved-folder rule below), ``.require(status)`` refuses a job that is not in that status.
``api``, ``apply``, ``rollback``, the ToTask action, ``report`` and ``evaluate`` all go through
it, so what a job folder is and how a moved one is read is written here alone.

A job folder may be moved. ``job.json`` keeps the paths it was written with, so:

* a folder still named after its job is *where the caller found it*: its configuration's output
  root becomes the folder's parent, and every path of the job follows (``resume`` and ``chain``
  carry on there);
* the output manifest is the folder's own; only where the folder has none (a folder renamed,
  its ``job.json`` still pointing at the old place) is the path ``job.json`` records used;
* an input kept inside the job's folder (the ToTask action's export, the input combined with
  ``--append``) moved with it, whatever the folder's name: it is read there (``status`` of a ToTask
  run archived to ``.totask-archive/<name>-<time>`` checks the run's own export, not the one the
  next run wrote at the old place).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from typing import Any

import orjson

from .._errors import (
    JobError,
    JobFolderNameError,
    ManifestError,
    NotAJobError,
    StorageError,
    TotaskError,
    UsageError,
    agreeing,
)
from .._failure_rules import OPTION_FIXES, model_flag, way_on
from .._manifest.io import read_lines
from .._storage import exists, is_dir, join, read_bytes, redact_secret_url, redact_url
from .known_keys import newer_version_refusal, unknown_keys
from .layout import JobLayout, begun_not_started, names_in
from .lease import JobBusyError, busy_error, current_holder
from .state import JobState, counted_failures, damage, output_changed, output_stale
from .status import COMPLETED, FAILED, RUNNING


class Job:
    """One job folder. ``Job(url)`` reads nothing; ``Job.open(url)`` reads ``job.json`` at once.

    ``read_only``: the caller only shows the job (``status``, ``report``, ``evaluate``), so a
    ``job.json`` holding keys this version does not know (a newer version's: ``known_keys``) is
    read, the keys in ``unknown_keys``; any other caller acts on the job and is refused it."""

    def __init__(self, url: str, *, read_only: bool = False) -> None:
        self._given = url  # as the caller wrote it, for messages
        self._read_only = read_only
        #: the keys of ``job.json`` no version of this package wrote (read by a ``read_only`` Job)
        self.unknown_keys: list[str] = []
        self.url = url.rstrip("/")
        #: the folder's files where the caller found it (``state.layout`` is where ``job.json`` says)
        self.layout = JobLayout(self.url)
        self._state: JobState | None = None
        self._record: dict[str, Any] | None = None
        #: set by ``metrics`` for a RUNNING job with damaged checkpoint parts: one line saying what to do
        self.damaged: str | None = None

    @classmethod
    def open(cls, url: str, *, read_only: bool = False) -> Job:
        """The job at ``url``: ``NotAJobError`` when it has no ``job.json``, ``JobError`` when
        that file is not one of ours, is damaged or (unless ``read_only``) holds keys this version
        does not know, ``StorageError`` when it cannot be read."""
        job = cls(url, read_only=read_only)
        job._state = job._read_state()
        return job

    # -- what job.json says --------------------------------------------------------------------

    @property
    def exists(self) -> bool:
        """Whether the folder holds a ``job.json`` (a job, or one being started)."""
        return exists(self.layout.job_json)

    @property
    def state(self) -> JobState:
        """The parsed ``job.json`` (read on first use when the job was not opened)."""
        if self._state is None:
            self._state = self._read_state()
        return self._state

    def record(self) -> dict[str, Any]:
        """``job.json`` as written, read defensively, for a page that shows whatever is there:
        ``{}`` when it is missing or unreadable, ``{"error": ...}`` when it is not JSON."""
        if self._record is None:
            try:
                data = orjson.loads(read_bytes(self.layout.job_json))
            except StorageError:
                data = {}
            except orjson.JSONDecodeError as exc:
                data = {"error": f"job.json is not valid JSON: {exc}"}
            self._record = data if isinstance(data, dict) else {}
        return self._record

    def refuse_in_use(self) -> None:
        """Refuse (``JobBusyError``, exit 2) a RUNNING job whose lease a live process holds, in the
        line every writer is refused with: ``apply`` said "RUNNING, not COMPLETED" (exit 1) where
        ``resume``, ``chain`` and ``rollback`` said "in use" (exit 2) of the same job. A job the
        holder left (killed, interrupted) is no job in use: each command says its own way forward."""
        if self.state.status != RUNNING:
            return
        holder, gone = current_holder(self.url)
        if holder is not None and gone is None:
            raise busy_error(self.url, holder)

    def require(self, status: str) -> None:
        """Refuse (``JobError``) a job that is not in ``status``: apply sends only a COMPLETED job.
        A job a live process is running is refused as in use (``refuse_in_use``, exit 2)."""
        current = self.state.status
        if current == status:
            return
        self.refuse_in_use()
        url = redact_secret_url(self.url)  # an output root may carry user:password@ or a signed query
        hint = f": finish it first (totask-manifest resume {url})" if status == COMPLETED else ""
        error = self.state.error
        if status == COMPLETED and current == FAILED and isinstance(error, str) and error.strip():
            # a resume retries the same configuration: it mends a passing cause, not a wrong option
            own = _own_option_fix(self.record(), error, url)
            hint = (f" ({_quoted(error)}): {own}" if own is not None else
                    f" ({_quoted(error)}): resume it (totask-manifest resume {url}) once "
                    f"the cause is fixed; {_new_job_for(error, self.state, url)}")
        raise JobError(f"job {url} is {current}, not {status}{hint}")

    def metrics(self) -> dict[str, Any]:
        """``job.json``'s metrics; for a job still RUNNING (live, or killed: ``job.json``'s counters
        are saved every few seconds at most, ``execute.METRICS_SECONDS``) the counters the
        checkpoint parts hold now."""
        record = self.record()
        metrics = record.get("metrics") if isinstance(record.get("metrics"), dict) else {}
        if record.get("status") == COMPLETED:
            return metrics
        from .damaged_parts import damage_note, readable_summary  # on use: status and report read few jobs
        from .execute import job_metrics

        # the parts named absolute (a URL without its secrets), as report and resume name them: not
        # relative to where status was run
        layout = JobLayout(_folder(self.url))
        counts, damaged = readable_summary(layout)
        # a STOPPED or FAILED job's part damaged since (a disk, a hand): said, as resume refuses it
        self.damaged = damage_note(damaged, layout)
        return job_metrics(int(metrics.get("total") or 0), counts) if record.get("status") == RUNNING else metrics

    def input_changed(self, sha256: str, append: list[str]) -> str | None:
        """For a clone of this job whose input (combined with ``append``) has checksum ``sha256``:
        one line saying that the input changed since this job read it (the checksum in its
        ``job.json`` differs), or None (the same, or nothing recorded to compare with)."""
        try:
            state = self.state
        except TotaskError:  # gone or damaged since the clone read it
            return None
        if not state.input_sha256 or state.input_sha256 == sha256:
            return None
        also = " (with its --append manifests)" if append else ""
        return (f"the input manifest {redact_url(state.config.input)}{also} changed since job "
                f"{state.config.job_name!r} read it (its checksum differs from the one in "
                f"{redact_url(self.layout.job_json)}); the clone labels it as it is now")

    # -- what the folder holds -----------------------------------------------------------------

    @property
    def output_manifest(self) -> str:
        """The folder's own output manifest; where it has none, the one ``job.json`` records (a
        renamed folder's ``job.json`` still points at the old place). The folder's own path when
        neither is known, so a message can name where it was looked for."""
        own = self.layout.output_manifest
        if exists(own):
            return own
        return self._recorded_output() or own

    def output_changed(self, sha256: str | None = None) -> str | None:
        """Why the folder's output manifest is not the one the job wrote (``state.output_changed``:
        its size, or ``sha256`` where the caller read it whole), or None."""
        state = self.state
        return output_changed(state.runs, self.output_manifest, state.config.job_name, sha256)

    def failures_gone(self, record: dict[str, Any]) -> bool:
        """Whether the job counted failures whose ``failures.jsonl`` is not there (deleted or moved
        since: a report said "0 failures" beside failed=1); ``record``: its ``job.json``."""
        return counted_failures(record.get("metrics")) and not exists(self.layout.failures)

    def failure_records(self) -> Iterator[tuple[int, dict[str, Any] | None]]:
        """``(line number, record)`` for each non-blank line of ``failures.jsonl``; ``record`` is
        None for a line that is not a JSON object; none when the file is not there. A job still
        RUNNING (live, or killed) writes that file only when it ends, or holds an earlier run's:
        its failures are read from the checkpoint parts instead, numbered by failure, so none is
        hidden; so are those of a job whose last run could not write it (``output_stale``: an input
        changed while it ran, a full disk), where the file is missing or an earlier run's (its
        report said "no failures" beside counts of 1,201 failed)."""
        record = self.record()
        if self.failures_gone(record) or record.get("status") == RUNNING or output_stale(record.get("runs")):
            from .commit import failed_records, failure_entry  # on use: the commit layer is heavier

            for number, rec in enumerate(failed_records(self.layout), start=1):
                yield number, failure_entry(rec)
            return
        if not exists(self.layout.failures):
            return
        for line in read_lines(self.layout.failures):
            if line.is_blank:
                continue
            try:
                record: dict[str, Any] | None = line.record()
            except ManifestError:
                record = None
            yield line.number, record

    # -- reading ---------------------------------------------------------------------------------

    def _recorded_output(self) -> str | None:
        """The output manifest ``job.json`` names: its configuration's (after the move rule), or,
        for a file too damaged to parse, the ``output-manifest`` string it holds."""
        try:
            return self.state.layout.output_manifest
        except TotaskError:
            recorded = self.record().get("output-manifest")
            return recorded if isinstance(recorded, str) else None

    def not_a_job(self, missing: str | None = None) -> NotAJobError | JobBusyError:
        """The error for this path, which holds no ``job.json`` (``_not_a_job``)."""
        return _not_a_job(self._given, self.folder, self.layout.job_json, missing)

    @property
    def folder(self) -> str:
        """The folder as found: a local path made absolute (``.`` named), a URL as given."""
        return _folder(self.url)

    def _read_state(self) -> JobState:
        if not self._given.strip():  # to the file system the current folder: not what was meant
            raise UsageError("the job folder (JOB_DIR) is empty: give a path or URL")
        url = self.layout.job_json
        try:
            data = orjson.loads(read_bytes(url))
        except StorageError:
            if exists(url):
                raise  # there, but unreadable: the storage error says why
            raise self.not_a_job() from None
        except orjson.JSONDecodeError as exc:
            raise JobError(f"{url} is not valid JSON: {exc}") from None
        if not isinstance(data, dict) or "config" not in data:
            raise JobError(f"{url} is not a totask-manifest job.json (no 'config' key)")
        # before the damage check: a newer version's file is named as such, not as damaged
        if (unknown := unknown_keys(data)) and not self._read_only:
            raise JobError(newer_version_refusal(redact_secret_url(url), unknown))
        self.unknown_keys = unknown
        state, problem = damage(data)
        if state is None:
            raise JobError(f"{url} is damaged ({problem}); restore it or start a new job")
        # a folder still named after its job is where the caller found it (it may have been moved)
        folder = _folder(self.url)
        written_at = state.config.job_url
        parent, _, name = folder.rpartition("/")
        if name == state.config.job_name:
            root = parent or "."
            state.config.output_root = root if "://" in root else os.path.abspath(root)
        # an input the job keeps in its own folder (the ToTask action's export, the input combined with
        # --append) moved with the folder, named after its job or not (a run archived to
        # .totask-archive/<name>-<time>): read there, not at the old place, which may hold another
        # run's export by now (status said "input changed" of every archived run)
        inside = _within(state.effective_input, written_at)
        if inside is not None and folder.rstrip("/") != written_at.rstrip("/"):
            state.effective_input = join(folder, inside)
        return state

    def check_named(self) -> None:
        """Refuse (``JobFolderNameError``, exit 2) to write or chain a job through a folder not
        named after it.

        ``job.json``'s paths are followed only for a folder named after its job (above): a folder
        renamed or copied under another name would be resumed, chained or cloned through the path
        in its ``job.json``, into the original folder or a new one there, while the folder given
        stays as it was (and holds a lease that guards nothing). A symbolic link to the job's own
        folder is that folder.
        """
        if (misnamed := self.misnamed()) is not None:
            raise JobFolderNameError(misnamed)

    def misnamed(self) -> str | None:
        """For a folder not named after its job (renamed or copied), one line saying so and what
        to do; None for a job's own folder (moved or not, or reached through a symbolic link)."""
        folder, stored = self.folder, self.state.config.job_url
        name, named = self.state.config.job_name, folder.rpartition("/")[2]
        if named == name:
            return None
        if "://" not in folder and "://" not in stored and os.path.realpath(folder) == os.path.realpath(stored):
            return None
        rule, how = "", ""
        if named.casefold() == name.casefold():  # on a case-insensitive disk (macOS, Windows): the folder itself
            rule, how = ", letter case included", " (or give it so, where the file system ignores case)"
        return (f"{redact_secret_url(self._given)} holds job {name!r} (job.json), whose folder is "
                f"{redact_secret_url(stored)}; a job folder must be named after its job{rule}: rename it to {name!r}{how} "
                "(under any parent folder) to resume, chain or clone it")


#: the rule a fail-fast stop names in a job's error (``SystematicFailure``: "... failed with 'RULE', ..."):
#: read only from a job.json an older version wrote, which has no ``stop-rule`` (``_stop_rule``)
_STOPPED_ON = re.compile(r"failed with '([a-z0-9-]+)', which points at the job's configuration")
#: the most of a FAILED job's error a refusal quotes (``_quoted``)
QUOTED_ERROR_CHARS = 300


def _quoted(error: str) -> str:
    """A FAILED job's error as a one-line refusal quotes it: its first line, whole where it is
    short, else up to its last sentence end within ``QUOTED_ERROR_CHARS`` where that keeps half of
    them at least (else its last clause's or word's), marked `` ...`` wherever it was cut. Cut at
    the count, it stopped mid-word, and the advice after it read as part of the error; cut at an
    early sentence end unmarked, the reader could not tell that most of it was left out."""
    line = error.strip().splitlines()[0]
    if len(line) <= QUOTED_ERROR_CHARS:
        return line
    head = line[:QUOTED_ERROR_CHARS + 1]  # a boundary right at the limit counts
    if (end := head.rfind(". ")) >= QUOTED_ERROR_CHARS // 2:
        return head[:end + 1] + " ..."
    for mark in ("; ", ": ", ", ", " "):
        if (cut := head.rfind(mark)) > 0:
            return head[:cut] + " ..."
    return line[:QUOTED_ERROR_CHARS] + " ..."


def _own_option_fix(record: dict[str, Any], error: str, url: str) -> str | None:
    """The way on of a job stopped on a rule one of its own options fixes (``OPTION_FIXES``:
    ``allow-root-missing``...), or None. A resume keeps the option and stops the same way;
    ``apply`` advised one, its quote of the error cut before the error's own advice."""
    rule = _stop_rule(record, error)
    if rule not in OPTION_FIXES:
        return None
    return way_on(rule).replace("JOB_DIR", url)


def _stop_rule(record: dict[str, Any], error: str) -> str | None:
    """The configuration rule the job stopped on: job.json's ``stop-rule``, written where the run
    stopped (``SystematicFailure.stopped_on``), so that no other words in the error can pass for a
    stop; a job.json an older version wrote has no such key, and its error's words name the rule."""
    if "stop-rule" in record:
        rule = record["stop-rule"]
        return rule if isinstance(rule, str) else None
    stopped = _STOPPED_ON.search(error)
    return None if stopped is None else stopped.group(1)


def _new_job_for(error: str, state: JobState, url: str) -> str:
    """What a FAILED job's fix needs besides a resume, said by ``apply``: a new job for a wrong
    option; for a stop on its model's errors where the job recorded the ``--model`` file, a job
    chained with the fixed file, since a resume refuses that file changed (``_option_files``)."""
    if "failed with 'model-error'" in error and "model" in state.option_files:
        return (f"a model fixed in its --model file needs a job chained from it (totask-manifest chain {url} "
                f"--job-name NEW {model_flag(state.config.options.get('model'))}), a wrong option a new job (annotate)")
    return "a wrong option needs a new job (annotate)"


def _within(url: str, folder: str) -> str | None:
    """``url``'s path relative to ``folder`` when it lies inside it (``manifests/input/x``), else None."""
    prefix = folder.rstrip("/") + "/"
    return url[len(prefix):] if folder and url.startswith(prefix) and len(url) > len(prefix) else None


def _not_a_job(given: str, folder: str, job_json: str, missing: str | None = None) -> NotAJobError | JobBusyError:
    """What a path without ``job.json`` is told (exit 2). A folder whose lease a live process holds
    (a job still reading its input, a ``run`` exporting its tasks) is in use, in the line every
    writer is refused with (``busy_error``), whatever the command. A file or folder *inside* a job folder
    (its ``job.json``, its output manifest, ``manifests/``: one level above a part at most three)
    names that folder to give instead: the job is not guessed from it (``failures.jsonl`` or a
    manifest copied elsewhere belongs to no job), only pointed at. ``missing``: what a folder
    lacks, said otherwise (default: ``job.json`` not found)."""
    shown, what = redact_secret_url(given), "folder"
    try:
        there = exists(folder)
        if there and not is_dir(folder):
            what = "file"
        parent = folder
        for _level in range(3 if there else 0):
            up = parent.rpartition("/")[0] if "://" in parent else os.path.dirname(parent)
            if up == parent or not up or up.endswith(":/"):
                break
            parent = up
            if exists(join(parent, "job.json")):
                named = parent if "://" in given or os.path.isabs(given) else os.path.relpath(parent)
                return NotAJobError(f"{shown} is not a job folder: it is a {what} inside job folder "
                                    f"{redact_secret_url(named)}; give that folder")
    except StorageError:  # the folders above cannot be read: say what was looked for
        pass
    if what == "file":
        return NotAJobError(f"{shown} is a file, not a job folder (a folder holding job.json)")
    if (live := live_holder(folder)) is not None:
        # a job reading its input, a run exporting: each command said its own "not a job folder"
        return busy_error(given, live)
    said = missing or redact_url(job_json) + " not found"
    if missing is None and _begun(folder):
        said += ("; it holds only what a job's start writes: a job killed before it began (while it read its "
                 "input); run the command that made it again (annotate, chain or run) to start it")
    elif jobs := _jobs_in(folder):  # an output root given for one of its jobs
        shown_jobs = ", ".join(jobs[:3]) + (f" and {len(jobs) - 3} more" if len(jobs) > 3 else "")
        said += f"; it holds {agreeing(len(jobs), 'job folder', 'job folders')} {shown_jobs}: give one ({redact_secret_url(join(given, jobs[0]))})"
    return NotAJobError(f"{shown} is not a job folder: {said}")


def live_holder(folder: str) -> Any:
    """The live holder of a job folder's lease (a run under way, a job still reading its input),
    or None: none, a gone one, or a lease folder that cannot be read."""
    try:
        holder, gone = current_holder(folder)
    except (TotaskError, OSError):
        return None
    return holder if gone is None else None


def _jobs_in(folder: str, most: int = 50) -> list[str]:
    """The names of the job folders (holding ``job.json``) right inside ``folder``, of its first
    ``most`` entries (one request each on a store): ``status out/`` was told only "job.json not
    found", of the folder that holds the jobs."""
    try:
        names = sorted(names_in(folder) or ())[:most]
        return [n for n in names if exists(join(folder, n, "job.json"))]
    except (StorageError, OSError):
        return []


def _begun(folder: str) -> bool:
    try:
        return begun_not_started(folder)
    except (StorageError, OSError):  # the folder cannot be listed: said as before
        return False




def _folder(url: str) -> str:
    """``url`` without a trailing slash; a local path made absolute, so that ``.`` or ``../j`` name
    their folder."""
    folder = url.rstrip("/") or "/"
    return folder if "://" in folder else os.path.abspath(folder)


#: jobs a lineage is followed through at most (a chain of chains); a loop of folders stops too
MAX_LINEAGE = 64


def lineage_mask_folders(job_url: str) -> list[str]:
    """The local folders where the job at ``job_url`` and the jobs it was chained or cloned from
    wrote their masks (``<job>/annotations``, ``layout.MASKS_DIR``): what ``report`` and
    ``evaluate`` read besides the job's ``allow_root`` (``FetchPolicy.own_roots``). A chained
    segmentation job's output names its predecessor's masks. Folders on object stores are left out
    (the policy's roots are local), as is a job whose ``job.json`` cannot be read."""
    from .layout import MASKS_DIR

    found: list[str] = []
    queue, seen = [job_url], set()
    while queue and len(seen) < MAX_LINEAGE:
        url = queue.pop(0)
        if not url or "://" in url or url in seen:
            continue
        seen.add(url)
        found.append(os.path.join(url, MASKS_DIR))
        try:
            state = Job(url).state
        except TotaskError:
            continue
        queue += [u for u in (state.chained_from, state.cloned_from) if isinstance(u, str)]
    return found
