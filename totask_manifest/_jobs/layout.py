"""Where a job keeps its files, following Ground Truth's output layout.

``<root>/<job>/manifests/output/output.manifest`` is what Ground Truth users already look for;
checkpoints live under ``manifests/intermediate/`` like Ground Truth's intermediate outputs.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any

from .._errors import JobExistsError, UsageError
from .._stale_temporaries import abort_uploads
from .._storage import backend_errors, exists, is_local, join, redact_url, url_to_fs

_PART = re.compile(r"part-\d{6,}\.(ckpt|jsonl)")
JOB_NAME_PATTERN = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}")


def check_job_name(name: str) -> None:
    """Ground Truth's ``LabelingJobName`` rule: 1 to 63 letters, digits and inner hyphens. Nor is a
    name case sensitive (Ground Truth's are not): that is a rule of the output root, where the
    other jobs are (``refuse_case_twin``), not of the name alone."""
    if not JOB_NAME_PATTERN.fullmatch(name or ""):
        raise UsageError(
            f"job name {name!r} must be 1 to 63 ASCII letters, digits and hyphens, starting and ending "
            "with a letter or digit (Ground Truth's LabelingJobName rule)"
        )


@dataclass(frozen=True)
class JobLayout:
    job_url: str

    @property
    def job_json(self) -> str:
        return join(self.job_url, "job.json")

    @property
    def output_manifest(self) -> str:
        return join(self.job_url, "manifests", "output", "output.manifest")

    @property
    def input_manifest(self) -> str:
        """Where a job whose input was extended with ``--append`` keeps its combined input."""
        return join(self.job_url, "manifests", "input", "input.manifest")

    @property
    def intermediate(self) -> str:
        return join(self.job_url, "manifests", "intermediate")

    @property
    def failures(self) -> str:
        return join(self.job_url, "failures.jsonl")

    @property
    def selection(self) -> str:
        """The input's fingerprint and the lines the job labels, with their byte offsets."""
        return join(self.intermediate, "selection.bin")

    def part(self, seq: int) -> str:
        return join(self.intermediate, f"part-{seq:06d}.ckpt")

    def parts(self) -> list[str]:
        """Committed checkpoint parts in order (temporary files are ignored): ``.ckpt`` parts,
        and ``.jsonl`` parts written before that format."""
        fs, path = url_to_fs(self.intermediate)
        if is_local(fs):  # a plain listing: a large job has thousands of parts
            try:
                found = os.listdir(path)
            except (FileNotFoundError, NotADirectoryError):
                return []
        else:  # S3's refusal (a key deleted mid-job) named with the folder, not a bare ``Forbidden``
            with backend_errors(self.intermediate):
                if not fs.exists(path):
                    return []
                found = [str(entry).rstrip("/").rsplit("/", 1)[-1] for entry in fs.ls(path, detail=False)]
        names = [name for name in found if _PART.fullmatch(name)]
        # by number: past part-999999 the names grow a digit and no longer sort as text
        return [join(self.intermediate, n) for n in sorted(names, key=part_number)]


def part_number(name_or_url: str) -> int:
    return int(name_or_url.rsplit("part-", 1)[-1].split(".", 1)[0])


def job_url_for(output_root: str, job_name: str) -> str:
    return join(output_root, job_name)


#: the lease folder (``lease``): one writer per job
LEASE_DIR = ".lease"
#: the ToTask action's record of its runs, and its export of the project's tasks (``_to_task``),
#: both written into the job folder before the job starts
RUN_FILE = "totask-run.json"
EXPORT_FILE = "synapse-export.manifest"
#: what may lie at the top of a job folder before its ``job.json`` exists (``.tmp-*`` aside)
JOB_ENTRIES = frozenset({"job.json", "manifests", "failures.jsonl", LEASE_DIR, RUN_FILE, EXPORT_FILE})
#: Synapse's undo record of a job's writes (``_synapse.journal``): the journal, and the folder of
#: its segments
JOURNAL_NAME = "synapse-journal.jsonl"
JOURNAL_SEGMENTS_DIR = "synapse-journal"
#: where a segmentation model's masks are written (``_models.labeler``)
MASKS_DIR = "annotations"
#: every name a job, the ToTask action or Synapse's journal keeps at the top of a job folder: a
#: report's page there must take another name, or it replaces one (``rollback`` then reads HTML)
JOB_OWN_NAMES = JOB_ENTRIES | {JOURNAL_NAME, JOURNAL_SEGMENTS_DIR, MASKS_DIR}


#: files an operating system's file browser leaves in any folder it shows (macOS, Windows): not a
#: user's data, so a folder holding only these is as free as an empty one
_OS_LITTER = frozenset({".DS_Store", "Thumbs.db", "desktop.ini"})


def refuse_foreign_folder(job_url: str) -> None:
    """Refuse to start a job in a folder that holds someone else's files: the job's own files
    would land among them (and ``rollback``, a re-run or a cleanup could not tell them apart).

    A folder holding only what a job writes (a start killed before ``job.json`` was written
    leaves ``.lease`` and ``manifests``) is a job's, and an empty or missing one is free.
    Called only where no ``job.json`` exists: a job folder may hold the user's files (a report).
    Nor inside another job's folder (``--output`` naming a job): that job's ``resume`` would
    clean this one's temporaries while it runs, and ``rollback`` or a cleanup take its files.
    """
    refuse_root_in_job(job_url.rstrip("/").rpartition("/")[0])
    found = names_in(job_url)
    if found is None:
        return
    foreign = _foreign(found)
    if foreign:
        shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
        raise UsageError(f"{job_url} exists and is not a job folder (it holds {shown}); a job is not written "
                         "among other files: choose another --job-name or --output")


def refuse_case_twin(job_url: str, choose: str = "choose another --job-name", *, held: bool = False) -> bool:
    """Refuse (``JobExistsError``, exit 2) to start a job whose name is that of a job in the same
    output root but for letter case (``a1`` beside ``A1``), naming that job's folder; ``choose``:
    the way on, in the words of the command (``run`` names no ``--job-name``).

    Job names are not case sensitive (Ground Truth's, which writes them lower-cased into every
    label's ``job-name``: both jobs' labels would say ``labeling-job/a1``), so lineage, ``stats``'
    job counts and chaining could not tell the two apart; and on a case-insensitive file system
    (macOS, Windows) their folders are one. A job folder of the very name given is the job itself
    (resumed, or refused with another configuration, as before): not refused here. Asked before
    the lease, so nothing is written, and again under it, where a job of the other name being
    started at the same time holds its lease folder (``begun_not_started``): one of two racers
    is refused, or both, never neither. An output root that cannot be listed is not checked.

    Returns whether the folder of the very name is a job already (``_is_job_folder``: its
    ``job.json``, a start's lease, or a ``run`` stopped before its job started), the job itself,
    which carries on. ``held``: asked again under the job's own lease, by a caller whose first
    asking returned False: that lease is then this command's own, no sign of a job found there.
    """
    root, _, name = job_url.rstrip("/").rpartition("/")
    root = root or "."
    try:
        names = _fresh_names(root)
        if not held and name in names and _is_job_folder(join(root, name)):
            return True
        folded = name.casefold()
        alike = sorted(n for n in names if n != name and n.casefold() == folded)  # a few at most: then asked of the store
        twins = [n for n in alike if _is_job_folder(join(root, n))]
    except OSError:  # a root the credentials may write but not list (s3:PutObject without s3:ListBucket)
        return False
    if twins:
        raise JobExistsError(
            f"job {name!r} differs only in letter case from job {twins[0]!r} at {redact_url(join(root, twins[0]))}: "
            f"job names are not case sensitive (as Ground Truth's: the labels of both would name job {name.lower()!r}, "
            f"lower-cased), and a case-insensitive file system holds both in one folder; {choose}")
    return False


def _fresh_names(root: str) -> list[str]:
    """The names in ``root`` as they are now: a store's cached listing (s3fs keeps one) may predate
    a job started since by another process."""
    fs, path = url_to_fs(root)
    if not is_local(fs):
        fs.invalidate_cache(path)
    return names_in(root) or []


def _is_job_folder(folder: str) -> bool:
    """Whether ``folder`` holds a job, a job's start (its lease: ``begun_not_started``), or a
    ``run``'s (``holds_a_run``): a run stopped before its job started is resumed by running the
    same action again, so its name is taken as much as a job's."""
    return exists(join(folder, "job.json")) or begun_not_started(folder) or holds_a_run(folder)


def names_in(folder: str) -> list[str] | None:
    """The names in ``folder`` (None: no such folder)."""
    fs, root = url_to_fs(folder)
    try:
        return os.listdir(root) if is_local(fs) else [
            str(e).rstrip("/").rsplit("/", 1)[-1] for e in fs.ls(root, detail=False)]
    except (FileNotFoundError, NotADirectoryError):
        return None


def _foreign(names: list[str]) -> list[str]:
    return sorted(n for n in names if n not in JOB_ENTRIES and n not in _OS_LITTER and not n.startswith(".tmp-"))


def begun_not_started(folder: str) -> bool:
    """Whether ``folder`` holds a lease and nothing but what a job writes, and no ``job.json``:
    what a job killed while it scanned its input leaves (``status`` and ``resume`` of it said
    only that ``job.json`` was not found; the same command again starts it)."""
    names = names_in(folder)
    return names is not None and LEASE_DIR in names and "job.json" not in names and not _foreign(names)


def holds_a_run(folder: str) -> bool:
    """Whether ``folder`` holds the ToTask action's own files (``RUN_FILE``, ``EXPORT_FILE``) and
    nothing but what a job writes: what a ``run`` stopped before ``job.json`` was written leaves,
    with no lease (given back as it stopped)."""
    names = names_in(folder)
    return names is not None and not {RUN_FILE, EXPORT_FILE}.isdisjoint(names) and not _foreign(names)


def refuse_root_in_job(root_url: str) -> None:
    """Refuse an output root at or inside a job folder (``--output``, ``TOTASK_OUTPUT_ROOT``): that
    job's ``resume`` would clean the new job's temporaries while it runs, and ``rollback`` or a
    cleanup take its files. ``run`` asks this before Synapse is asked anything or a file written."""
    if root_url and (outer := job_folder_holding(root_url)) is not None:
        where = "is" if outer == root_url else "is inside"
        raise UsageError(f"the output root {redact_url(root_url)} {where} job folder {redact_url(outer)} (a folder "
                         "holding job.json), whose files only its job writes; choose another --output")


def clean_temporaries(job_url: str) -> list[str]:
    """Remove what a killed writer left: atomic-write temporaries (``.tmp-*``) anywhere in the job
    folder, except in the lease folder, whose temporaries belong to whoever is taking the lease.

    Only called while holding the job's lease, so no live writer of this folder owns them, nor
    their unfinished multipart uploads on S3 (a run killed while it uploaded a checkpoint part or
    the output manifest over s3fs's block size), which are aborted, whatever their age.
    Returns the URLs removed, under ``job_url`` as given (``s3://jobs/root/...``, not the
    ``jobs/root/...`` the file system holds: a user with a local ``jobs/`` folder looked there).
    """
    fs, root = url_to_fs(job_url)
    top = root.rstrip("/") + "/"
    aborted = abort_uploads(fs, top, lambda path: _is_temporary(path[len(top):]), 0.0)
    removed = [_under_job_url(job_url, top, path) for path in aborted]
    try:
        found = _local_files(root) if is_local(fs) else fs.find(root)
    except (FileNotFoundError, NotADirectoryError):
        return removed
    for path in found:
        path = str(path)
        if not _is_temporary(path[len(top):] if path.startswith(top) else path):
            continue
        try:
            fs.rm_file(path)
        except FileNotFoundError:
            continue
        removed.append(_under_job_url(job_url, top, path))
    return removed


def _under_job_url(job_url: str, top: str, path: str) -> str:
    """``path``, as the job folder's file system lists it (``top``: the folder's own path, with a
    trailing ``/``), named under ``job_url``, the folder as the user gave it."""
    return join(job_url, path[len(top):]) if path.startswith(top) else path


def _is_temporary(rel: str) -> bool:
    """Whether the file at ``rel`` (in a job folder) is an atomic write's temporary, not the lease's."""
    return rel.rsplit("/", 1)[-1].startswith(".tmp-") and not (rel.startswith(LEASE_DIR + "/") or f"/{LEASE_DIR}/" in rel)


def _local_files(root: str) -> list[str]:
    """Every file under a local folder, as ``fs.find`` lists them (``os.walk``: a job folder of
    thousands of parts is listed without a ``stat`` per file)."""
    if not os.path.isdir(root):
        raise FileNotFoundError(root)
    return [os.path.join(folder, name) for folder, _dirs, names in os.walk(root) for name in names]


def file_in_the_way(directory: str) -> str | None:
    """The file standing where the local folder ``directory`` or one of its parents should be
    (``--output`` given a file), or None."""
    while directory and not os.path.lexists(directory):
        parent = os.path.dirname(directory)
        if parent == directory:
            return None
        directory = parent
    return directory if directory and not os.path.isdir(directory) else None


def job_folder_holding(url: str, levels: int = 4096) -> str | None:
    """The nearest folder at or above ``url`` (the path itself, then each folder up to the root or
    bucket; ``levels`` of them at most) that holds a ``job.json``, or None. Local paths are resolved first (links, ``..``), so
    a link into a job folder is found in it. A folder that cannot be read ends the search. A
    ``job.json`` that is JSON without ``config`` is another tool's (``/tmp/job.json`` would
    otherwise refuse every output under ``/tmp``); a damaged one is taken for a job's."""
    fs, path = url_to_fs(url)
    local = is_local(fs)
    path = os.path.realpath(path) if local else path.rstrip("/")
    for _level in range(levels):
        try:
            found = os.path.join(path, "job.json") if local else join(path, "job.json")
            if (os.path.isfile(found) if local else fs.isfile(found)) and _a_jobs(fs, found):
                return path if local or "://" not in url else f"{url.split('://', 1)[0]}://{path.lstrip('/')}"
        except Exception:  # a storage that refuses the look (no credentials, read-only http): not known
            return None
        parent = os.path.dirname(path) if local else path.rpartition("/")[0]
        if not parent or parent == path:
            return None
        path = parent
    return None


def refuse_output_in_job(output: str, *, own_job: str | None = None) -> None:
    """Refuse a command's output inside a job folder (``convert``, ``labeled``, ``report``,
    ``export``): the file would replace the job's output manifest, ``job.json`` or a checkpoint
    part, or lie among them where the job's next run, ``chain`` or ``apply`` reads it as the job's.
    Only ``report`` of ``own_job`` may put its page at the top of that job's folder, as the README
    does (``JOB/report.html``), under a name that is none of the job's own (``JOB_OWN_NAMES``,
    an atomic write's ``.tmp-*``, which the job's next run removes): not in a sub-folder."""
    folder = job_folder_holding(output)
    if folder is None:
        return
    if own_job is not None and folder == job_folder_holding(own_job, 1):
        local = "://" not in output
        above = os.path.dirname(os.path.abspath(output)) if local else output.rpartition("/")[0]
        if folder == job_folder_holding(above, 1):
            name = os.path.basename(os.path.abspath(output)) if local else output.rstrip("/").rpartition("/")[2]
            if name in JOB_OWN_NAMES or name.startswith(".tmp-"):
                raise UsageError(f"the output {redact_url(output)} is the job's own {name} in job folder "
                                 f"{redact_url(folder)}, which only the job writes; give another name "
                                 "(JOB/report.html, say)")
            return  # at the top of its own job's folder
    raise UsageError(f"the output {redact_url(output)} is inside job folder {redact_url(folder)} (a folder holding "
                     "job.json), whose files only its job writes; give a path outside it")


def _a_jobs(fs: Any, path: str) -> bool:
    """Whether the ``job.json`` at ``path`` may be a job's: not JSON (damaged), or an object
    holding ``config``; JSON of another shape is another tool's file."""
    import orjson

    try:
        with fs.open(path, "rb") as f:
            data = orjson.loads(f.read())
    except (OSError, ValueError):
        return True
    return isinstance(data, dict) and "config" in data
