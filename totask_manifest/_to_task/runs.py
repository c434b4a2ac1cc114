"""``<job>/totask-run.json``: which run of the ToTask action a job folder belongs to.

Running the same action again after a crash must continue where it stopped, while anything else
found under the name must not be mixed into the new run. So each run is recorded (parameters,
Synapse host, status, result): an unfinished run of the same action (same parameters but
``description``/``batch_size``, same host) is resumed; a run that succeeded, or one with other
parameters or another host, is moved to ``<output root>/.totask-archive/`` with its journal, so
``rollback`` still works on it, and a fresh run starts.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from typing import Any

import orjson

from .._errors import TotaskError
from .._jobs.layout import RUN_FILE
from .._jobs.lease import busy_error, current_holder
from .._storage import exists, is_local, join, read_bytes, url_to_fs, write_bytes_atomic

log = logging.getLogger(__name__)

ARCHIVE_DIR = ".totask-archive"
#: the action's result statuses (the SDK's): only a run that did not succeed is resumed
SUCCEEDED, FAILED_STATUS = "SUCCEEDED", "FAILED"
#: parameters that may change between a run and its resumption
_NOT_IDENTITY = frozenset({"description", "batch_size"})


def claim(job_url: str, params: dict[str, Any], host: str) -> str:
    """Decide between resuming and starting over, record this run, and return the record's URL.

    The same action whose last run did not succeed is resumed. Anything else found under the
    name is moved to ``.totask-archive/`` beside it, journal included, and a fresh run starts.
    """
    url = join(job_url, RUN_FILE)
    identity = {"host": host, "params": {k: v for k, v in params.items() if k not in _NOT_IDENTITY}}
    state = _read_json(url) if exists(url) else None
    resumable = (
        isinstance(state, dict) and _canonical(state.get("identity")) == _canonical(identity)
        and state.get("status") != SUCCEEDED
    )
    if resumable or exists(job_url):
        holder, gone = current_holder(job_url)
        # a live run of it: moving the folder would pull it from under it, and its record is its own
        # (a resumable one's too: ``runs`` and ``params`` rewritten for a run the lease then refuses)
        if holder is not None and gone is None:
            raise busy_error(job_url, holder)
    if not resumable and exists(job_url):
        moved = archive(job_url)
        log.warning("an earlier to_task run named %r was moved to %s; starting a fresh run", params.get("name"), moved)
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


def archive(job_url: str) -> str:
    """Move a job folder to ``<root>/.totask-archive/<name>-<UTC time>`` (any fsspec URL)."""
    root, _, name = job_url.rstrip("/").rpartition("/")
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%f")
    target = join(root or ".", ARCHIVE_DIR, f"{name}-{stamp}")
    fs, src = url_to_fs(job_url)
    _, dst = url_to_fs(target)
    if is_local(fs):
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        os.replace(src, dst)
    else:
        fs.mv(src, dst, recursive=True)
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
