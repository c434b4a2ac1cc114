"""Where the ToTask action's ``run`` moves a job folder's earlier run (``<root>/.totask-archive/
<name>-<UTC time>``, with its journal), and the runs of a job found there. Kept below ``_synapse``
so that ``rollback``, which names a job's archived runs where the folder has nothing left to undo,
reads the same layout the action writes without importing the action (docs/architecture.md's floors).
"""

from __future__ import annotations

import datetime as dt
import logging
import re

from .._redaction import redact_url
from .._storage import join, url_to_fs

log = logging.getLogger(__name__)

ARCHIVE_DIR = ".totask-archive"
#: an archived run's time stamp (UTC, to the microsecond): its folder is ``<name>-<stamp>``
STAMP = "%Y%m%dT%H%M%S%f"


def archive_target(job_url: str) -> str:
    """The folder a run of the job at ``job_url`` is archived to now."""
    root, _, name = job_url.rstrip("/").rpartition("/")
    return join(root or ".", ARCHIVE_DIR, f"{name}-{dt.datetime.now(dt.UTC).strftime(STAMP)}")


def archived_runs(job_url: str) -> list[str]:
    """The job's runs the action's ``archive`` (``_to_task.runs``) moved aside (``<root>/.totask-archive/<name>-<UTC time>``),
    newest first: the order to roll them back in (each run's journal holds what the tasks held
    before it wrote). Another job's (``<name>-1-<time>``) is told apart by the stamp's form.
    A folder that cannot be listed (a symbolic link loop, no permission) holds none that can be
    named: said in one line, for ``rollback`` of the job itself has done its work by then."""
    root, _, name = job_url.rstrip("/").rpartition("/")
    folder = join(root or ".", ARCHIVE_DIR)
    fs, path = url_to_fs(folder)
    try:
        listed = fs.ls(path, detail=False)
    except (FileNotFoundError, NotADirectoryError):
        return []
    except OSError as exc:
        log.warning("%s cannot be read (%s): runs of job %r archived there, if any, are not named; roll each "
                    "one back by its folder", redact_url(folder), exc.strerror or type(exc).__name__, name)
        return []
    own = re.compile(re.escape(name) + r"-\d{8}T\d{12}\Z")  # ``archive``'s stamp: %Y%m%dT%H%M%S%f
    names = (str(entry).rstrip("/").rsplit("/", 1)[-1] for entry in listed)
    return [join(folder, n) for n in sorted(names, reverse=True) if own.match(n)]
