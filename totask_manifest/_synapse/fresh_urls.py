"""Fresh file URLs for exported lines: the backend's presigned URLs expire, a manifest does not.

An exported line keeps its task id and the data unit's files (``synapse.files``); the URLs in it
were presigned at export time. A job annotated, resumed or chained days later asks the backend
again, the SDK's way (``GET tasks/{id}/?fields=id,data,data_unit&expand=data_unit``, falling back
to ``data_units/{id}/?expand=files``), when a line's URL is missing, says it has expired, or
was answered 400, 401 or 403. Only such lines need Synapse credentials; the token goes only to
the Synapse host (the client's rule), never with the file request.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from .._errors import TotaskError, UsageError
from .taskdata import files_by_spec

TASK_DETAIL = {"fields": "id,data,data_unit", "expand": "data_unit"}
#: the answers of a storage host to a URL whose signature has lapsed
REFRESH_STATUSES = re.compile(r"^HTTP (400|401|403)\b")


def expires_at(url: str) -> float | None:
    """When a presigned URL stops working (epoch seconds), when the URL says so.

    S3 signature v4 (``X-Amz-Date`` + ``X-Amz-Expires``), Google (``X-Goog-Date`` +
    ``X-Goog-Expires``), S3 v2 / CloudFront (``Expires`` epoch) and ``expires`` (the contract
    server's). None when the URL carries no expiry.
    """
    try:
        query = {k.lower(): v for k, v in parse_qsl(urlsplit(url).query)}
    except ValueError:
        return None
    for date_key, ttl_key in (("x-amz-date", "x-amz-expires"), ("x-goog-date", "x-goog-expires")):
        if date_key in query and ttl_key in query:
            try:
                start = datetime.strptime(query[date_key], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC).timestamp()
                return start + float(query[ttl_key])
            except ValueError:
                return None
    for key in ("expires", "x-expires"):
        if key in query:
            try:
                return float(query[key])
            except ValueError:
                return None
    return None


def is_expired(url: str, now: float | None = None, *, margin: float = 30.0) -> bool:
    """True when the URL's own expiry has passed (or passes within ``margin`` seconds)."""
    end = expires_at(url)
    return end is not None and (time.time() if now is None else now) + margin >= end


def needs_refresh(error: Exception) -> bool:
    """A fetch error that a fresh URL may cure (the storage host refused the signature)."""
    return bool(REFRESH_STATUSES.match(str(error)))


async def fetch_task(aio: Any, task_id: int) -> dict:
    """``GET tasks/{id}/?fields=id,data,data_unit&expand=data_unit`` (the SDK's call right before it
    converts a task), as the backend answers it; when it carries no files, the data unit's
    (``data_units/{id}/?expand=files``) are put in. ``task_files`` reads them by specification."""
    task = await aio.get_task(task_id, TASK_DETAIL)
    out = dict(task) if isinstance(task, dict) else {"id": task_id}
    unit = out.get("data_unit")
    unit_id = unit.get("id") if isinstance(unit, dict) else unit
    if not files_by_spec(unit.get("files") if isinstance(unit, dict) else None) and unit_id is not None:
        files = (await aio.get_data_unit(unit_id, {"expand": "files"})).get("files")
        out["data_unit"] = {**(unit if isinstance(unit, dict) else {"id": unit_id}), "files": files}
    return out


def task_files(task: Any) -> dict[str, dict]:
    """A task's files keyed by specification name, whichever shape the backend sent."""
    unit = task.get("data_unit") if isinstance(task, dict) else None
    return files_by_spec(unit.get("files") if isinstance(unit, dict) else None)


def primary_file(files: dict) -> tuple[str | None, dict]:
    """``(specification name, file)`` of the first primary file with a URL (the SDK's choice)."""
    for name, f in files.items():
        if isinstance(f, dict) and f.get("is_primary") and f.get("url"):
            return name, f
    return None, {}


class FileUrls:
    """Asks the backend for a task's current files; one client, made on first use in the
    caller's event loop (``make_client`` lets tests pass short backoffs)."""

    def __init__(self, make_client: Callable[[], Any] | None = None) -> None:
        self._make_client = make_client
        self._aio: Any = None
        #: tasks asked for again (for reports and tests)
        self.refreshed = 0

    def _client(self) -> Any:
        if self._aio is None:
            if self._make_client is not None:
                self._aio = self._make_client()
            else:
                from .client import AsyncSynapseClient

                try:
                    self._aio = AsyncSynapseClient()
                except UsageError as exc:
                    raise TotaskError(f"the file URL must be fetched again from Synapse, but {exc}") from None
        return self._aio

    async def task(self, task_id: int) -> dict:
        """The task with its data unit's files (``files`` keyed by specification name)."""
        task = await fetch_task(self._client(), task_id)
        self.refreshed += 1
        return task

    async def url(self, task_id: int, spec: str) -> str:
        """A fresh URL of the task's file of specification ``spec``."""
        files = task_files(await self.task(task_id))
        entry = files.get(spec)
        url = entry.get("url") if isinstance(entry, dict) else None
        if not isinstance(url, str) or not url:
            have = ", ".join(sorted(files)) or "none"
            raise TotaskError(f"task {task_id} has no file of specification {spec!r} with a URL (it has: {have})")
        return url

    async def aclose(self) -> None:
        if self._aio is not None:
            aio, self._aio = self._aio, None
            await aio.aclose()
