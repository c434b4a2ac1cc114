"""``<job>/totask-run.json``: which run of the ToTask action a job folder belongs to.

Running the same action again after a crash must continue where it stopped, while anything else
found under the name must not be mixed into the new run. So each run is recorded (parameters,
Synapse host, status, result): an unfinished run of the same action (same parameters but
``description``/``batch_size``, same host) is resumed; a run that succeeded, or one with other
parameters or another host, is moved to ``<output root>/.totask-archive/`` with its journal, so
``rollback`` still works on it, and a fresh run starts.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
from typing import Any

import orjson

from .._credentials import stored_params
from .._errors import TotaskError
from .._jobs.archives import archive_target
from .._jobs.layout import LEASE_DIR, RUN_FILE
from .._jobs.lease import hold
from .._storage import exists, is_local, join, read_bytes, url_to_fs, write_bytes_atomic

log = logging.getLogger(__name__)

#: the action's result statuses (the SDK's): only a run that did not succeed is resumed
SUCCEEDED, FAILED_STATUS = "SUCCEEDED", "FAILED"
#: parameters that may change between a run and its resumption
_NOT_IDENTITY = frozenset({"description", "batch_size"})


def claim(job_url: str, params: dict[str, Any], host: str) -> str:
    """Decide between resuming and starting over, record this run, and return the record's URL.

    The same action whose last run did not succeed is resumed. Anything else found under the
    name is moved to ``.totask-archive/`` beside it, journal included, and a fresh run starts.

    Made under the job folder's lease (taken here unless this thread holds it: ``JobBusyError``
    while a live process does): deciding first and taking the lease after let two runs started
    together both claim, the second rewriting the first's record or archiving its folder.
    """
    params = stored_params(params)  # a credential among them is kept as ``${VARIABLE}`` or ``***``
    with hold(job_url, "run"):
        url = join(job_url, RUN_FILE)
        identity = {"host": host, "params": {k: v for k, v in params.items() if k not in _NOT_IDENTITY}}
        state = _read_json(url) if exists(url) else None
        if (masked := stored_params(state)) != state:  # an older version's record, the credential in plain text
            write_bytes_atomic(url, orjson.dumps(masked, option=orjson.OPT_INDENT_2) + b"\n")  # archived, too, without it
            state = masked
        resumable = (
            isinstance(state, dict) and _canonical(state.get("identity")) == _canonical(identity)
            and state.get("status") != SUCCEEDED
        )
        if not resumable and _holds_files(job_url):
            moved = archive(job_url)
            log.warning("an earlier to_task run named %r was moved to %s; starting a fresh run",
                        params.get("name"), moved)
        record = dict(state) if resumable and isinstance(state, dict) else {"identity": identity, "started": iso_now()}
        record.update(params=params, status="RUNNING", runs=int(record.get("runs", 0)) + 1)
        write_bytes_atomic(url, orjson.dumps(record, option=orjson.OPT_INDENT_2) + b"\n")
        return url


def record_end(url: str, result: dict[str, Any]) -> None:
    """Write the run's status and result into its record; a failure to do so is only logged
    (the result still goes back to the caller)."""
    try:
        record = _read_json(url) or {}
        record.update(status=result["status"], ended=iso_now(), result=result)
        write_bytes_atomic(url, orjson.dumps(record, option=orjson.OPT_INDENT_2) + b"\n")
    except TotaskError as exc:
        log.warning("could not record the run's end in %s: %s", url, exc)


def note(url: str, **fields: Any) -> None:
    """Add ``fields`` to the run's record (kept when the run is resumed; a fresh run starts a new
    record). Unlike ``record_end``, a failure raises: what is noted is needed by a resumed run."""
    record = _read_json(url) or {}
    record.update(fields)
    write_bytes_atomic(url, orjson.dumps(record, option=orjson.OPT_INDENT_2) + b"\n")


def noted(url: str | None, key: str, default: Any = None) -> Any:
    """A field ``note`` added to the run's record (``default`` when absent or unreadable)."""
    record = _read_json(url) if url is not None else None
    return record.get(key, default) if isinstance(record, dict) else default


def _entries(job_url: str) -> list[str]:
    """The job folder's entries but its lease folder (which stays with the folder's name: the
    lease held on it guards the run starting there)."""
    fs, folder = url_to_fs(job_url)
    with contextlib.suppress(Exception):
        fs.invalidate_cache(folder)
    try:
        listed = fs.ls(folder, detail=False)
    except (FileNotFoundError, NotADirectoryError):
        return []
    return [e for e in (str(x).rstrip("/") for x in listed)
            if e.rsplit("/", 1)[-1] not in (LEASE_DIR, "") and e.rstrip("/") != folder.rstrip("/")]


def _holds_files(job_url: str) -> bool:
    """Whether the job folder holds anything besides its lease (an earlier run's files)."""
    return bool(_entries(job_url))


def archive(job_url: str) -> str:
    """Move a job folder's files to ``<root>/.totask-archive/<name>-<UTC time>`` (any fsspec URL).
    Its lease folder stays: the caller holds the lease, for the fresh run about to start there."""
    target = archive_target(job_url)
    fs, _src = url_to_fs(job_url)
    _, dst = url_to_fs(target)
    if is_local(fs):
        os.makedirs(dst)
    for entry in _entries(job_url):
        name = entry.rsplit("/", 1)[-1]
        if is_local(fs):
            os.replace(entry, f"{dst}/{name}")
            continue
        # file by file: s3fs's recursive ``mv`` of a prefix fails on the folder itself ("The
        # specified key does not exist"), so a job folder (it holds manifests/...) was never archived
        for file in fs.find(entry) or [entry]:
            fs.mv(file, f"{dst}/{name}{file[len(entry):]}")
    return target


def iso_now() -> str:
    return dt.datetime.now(dt.UTC).isoformat()


def _read_json(url: str) -> Any:
    try:
        return orjson.loads(read_bytes(url))
    except (TotaskError, orjson.JSONDecodeError):
        return None


def _canonical(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
