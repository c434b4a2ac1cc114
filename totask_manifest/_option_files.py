"""What the files a job's options name held when the job started: ``job.json``'s ``option-files``.

``job.json`` keeps an option's value, the path of ``--model`` or ``--class-names``, not what the
file held. A job stopped, its model replaced, then resumed, finished COMPLETED with two models (the
lines before the stop labeled by one, the rest by the other), and class names renamed between
runs failed every later line. So a job records, when it starts, each such file's identity:

* a local file: its ``sha256`` and ``size``;
* a ``file.py:factory`` model: its ``.py`` file (a ``package.module:factory`` one is imported,
  not read as a file: not recorded, nor an ``http(s)`` model endpoint, a service);
* a remote file (any other fsspec URL): what the store's ``info`` says changes with its content
  (an ETag, an MD5, a generation) and its size; its date is left out (the same content uploaded
  again is the same file). A store that gives none of them is compared by size alone.

``resume`` (and ``annotate`` run again on the job, which resumes it) refuses a file that is no
longer what the job recorded, before any line is labeled (``refuse_changed_files``); ``clone``
and ``chain``, which start a new job with the file as it is now, say so when it changed since the
job they start from recorded it (``option_files_for``). A job an older version wrote records
none and resumes as before.

Which options name files is ``option(path=...)``'s (``_options.path_options``), so a plugin's own
file options are recorded too. Not recorded: folders (``--allow-root``, the data options) and
``--params``, whose content ``job.json`` keeps itself (``params``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ._annotators.base import get_annotator_class
from ._api_checks import DATA_OPTIONS
from ._credentials import refuse_unsendable_params
from ._errors import JobExistsError, StorageError, TotaskError
from ._jobs.job import Job
from ._jobs.scan_ranges import sha256_of
from ._jobs.status import COMPLETED
from ._options import option_info, path_options
from ._storage import is_local, redact_secret_url, url_to_fs

if TYPE_CHECKING:
    from ._jobs.config import JobConfig
    from ._jobs.state import JobState

log = logging.getLogger("totask_manifest")

#: path options that are not files the labels are made with: folders where data may be read from
#: (``api_checks.DATA_OPTIONS``), and ``--params``, whose content the job keeps (``params``)
NOT_RECORDED = frozenset({*DATA_OPTIONS, "params_file"})
#: what a store's ``info`` gives that changes with a remote file's content (S3, HTTP, GCS, Azure)
_CONTENT_MARKS = ("ETag", "etag", "Content-MD5", "Digest", "md5Hash", "content_md5", "crc32c", "generation", "version_id",
                  "VersionId")


def option_files_for(config: JobConfig, started_from: str | None = None) -> dict[str, dict[str, Any]]:
    """The identity of each file ``config``'s options name, by option, for a new job's
    ``job.json``. ``started_from``: the job a clone or chain starts from; a file it used too (the
    same option, the same value) that changed since it recorded it is named in one warning line
    (the new job labels with the file as it is now, as a clone with a changed input does)."""
    files = _files(config)
    recorded = {key: _identity(url) for key, (_flag, url) in files.items()}
    if started_from is not None:
        for line in _changed_since(started_from, config, recorded):
            log.warning("%s", line)
    return {key: value for key, value in recorded.items() if value}  # a folder: {}; a file not there: None


def refuse_changed_files(state: JobState) -> None:
    """``JobExistsError`` (exit 2, as a job run again with another configuration) naming the
    first file the job recorded (``option-files``) that is gone or holds something else now: the
    lines still to label would be labeled with another model or other class names than the rest.
    A COMPLETED job has none left (a resume writes its lost output manifest again): not checked.
    The credentials its parameters name are checked here too, as what the lines are labeled with
    (``refuse_unsendable_params``: a masked one, or a variable unset now, exit 2 before it runs)."""
    if state.status == COMPLETED:
        return
    refuse_unsendable_params(state.config.options)
    if (changed := changed_files_text(state)) is not None:
        raise JobExistsError(changed)


def _new_file(flag: str, key: str, state: JobState) -> str:
    """``FLAG FILE`` for the advice, the model's as the job gave it (``FILE:factory``)."""
    if key == "model":
        from ._failure_rules import model_flag

        return model_flag(state.config.options.get("model"))
    return f"{flag} FILE"


def changed_files_text(state: JobState) -> str | None:
    """What ``refuse_changed_files`` refuses the job with for its files, or None; ``status`` shows
    it as a ``changed:`` line (a stopped job's user learns it before the resume)."""
    if state.status == COMPLETED:
        return None
    files = _files(state.config)
    for key, recorded in state.option_files.items():
        if key not in files or not isinstance(recorded, dict):  # no longer a file option (a plugin's)
            continue
        flag, url = files[key]
        now = _identity(url)
        if now == recorded:
            continue
        shown, name, job = redact_secret_url(url), state.config.job_name, redact_secret_url(state.config.job_url)
        if now is None:
            # clone takes no option (it would look for the same file): a chain names another
            return (f"{flag} {shown} is gone since job {name!r} started (job.json records its "
                    f"{_what(recorded)}): a job labels every line with the same files; restore it at "
                    f"that path and resume again, or start a new job with another file (annotate with another "
                    f"--job-name, or totask-manifest chain {job} --job-name NEW {_new_file(flag, key, state)})")
        return (f"{flag} {shown} changed since job {name!r} started ({_differs(recorded)} from "
                "the one in job.json): a job labels every line with the same files; restore it, or "
                f"start a new job for it (totask-manifest clone {job} --job-name NEW, or annotate with another "
                "--job-name)")
    return None


def _changed_since(started_from: str, config: JobConfig, now: dict[str, dict[str, Any] | None]) -> list[str]:
    """One line for each file the job at ``started_from`` recorded, used again by ``config`` under
    the same option, that is no longer what it recorded (nothing for a job that recorded none)."""
    try:
        prev = Job(started_from).state
    except TotaskError:  # gone or damaged since the clone read it
        return []
    lines = []
    for key, recorded in prev.option_files.items():
        same = prev.config.options.get(key) == config.options.get(key)
        if same and key in now and now[key] != recorded and isinstance(recorded, dict):
            flag, url = _files(config)[key]
            lines.append(f"{flag} {redact_secret_url(url)} changed since job {prev.config.job_name!r} started "
                         f"({_differs(recorded)} from the one in its job.json); the new job labels with it "
                         "as it is now")
    return lines


def _files(config: JobConfig) -> dict[str, tuple[str, str]]:
    """``{option: (flag, file URL)}`` for each of the method's path options that names a file
    (``NOT_RECORDED`` aside; a model's file as ``model_file`` finds it)."""
    cls = get_annotator_class(config.method).Options
    flags = {f.name: option_info(f).flag or "--" + f.name.replace("_", "-") for f, _groups in cls.leaves()}
    found = {}
    for key, value, absolute in path_options(cls, config.options):
        url = model_file(value) if _is_model_rule(absolute) else value
        if key not in NOT_RECORDED and url is not None:
            found[key] = (flags[key], url)
    return found


def model_file(ref: str) -> str | None:
    """The file a ``--model`` value is read from (``_models.sources.model_file``)."""
    from ._models.sources import model_file as of_source

    return of_source(ref)


def _is_model_rule(absolute: Callable[[str], str] | None) -> bool:
    from ._models.sources import absolute_model_ref

    return absolute is absolute_model_ref




def _identity(url: str) -> dict[str, Any] | None:
    """``{"sha256", "size"}`` of a local file, ``{"size", ETag...}`` of a remote one; ``{}`` for a
    folder (not recorded); None when it is not there."""
    fs, path = url_to_fs(url)
    try:
        if is_local(fs):
            if not os.path.exists(path):
                return None
            if os.path.isdir(path):
                return {}
            return {"sha256": sha256_of(url), "size": os.path.getsize(path)}
        fs.invalidate_cache(path)  # a listing cached by this process (the Python API) is no answer
        info = fs.info(path)
    except FileNotFoundError:
        return None
    except StorageError as exc:
        if isinstance(exc.__cause__, FileNotFoundError) or not fs.exists(path):
            return None
        raise
    if info.get("type") == "directory":
        return {}
    return {"size": int(info.get("size") or 0), **{k: str(info[k]) for k in _CONTENT_MARKS if info.get(k)}}


def _what(recorded: dict[str, Any]) -> str:
    """What a recorded identity compares, in a message: ``sha256``, ``ETag and size``..."""
    if "sha256" in recorded:
        return "sha256"
    marks = [k for k in recorded if k != "size"]
    return " and ".join([*marks, "size"]) if marks else "size"


def _differs(recorded: dict[str, Any]) -> str:
    """``sha256 differs``, ``ETag and size differ``: what a message says was compared."""
    what = _what(recorded)
    return f"{what} {'differ' if ' and ' in what else 'differs'}"
