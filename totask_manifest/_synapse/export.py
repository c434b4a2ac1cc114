"""Export a Synapse project's tasks as an input manifest: one line per task.

Each line is ``{"source-ref": <primary file URL>, "synapse": {...}}``. The reserved ``synapse``
key carries what the rest of the pipeline needs and nothing secret: the task id, project, data
unit id, the data unit's files keyed by specification name (``url``, ``is_primary``,
``file_name_original``) and ``data_hash``, the fingerprint of the task's data at export time,
which lets ``apply`` notice a task someone changed in the meantime.

Tasks are listed like the SDK does (``sdk/tasks/?project=&fields=id`` plus the filters, AND-ed by
the backend, encoded by ``client.encode_query``), then their details are fetched concurrently a
window at a time and written as they arrive, so memory stays flat (but for the ids, a few bytes
each); the manifest appears atomically only once complete. A listing that changed while it was
read (its pages shift: tasks missed) is listed again, and only the tasks not yet exported are
added (``listing``): no task is written twice.

Filters mean what the guide says (``assignee: None``: unassigned only; a list: any of its
values), and the backend is not simply trusted to have applied them: the listing also asks for
the filtered fields, each listed task is checked against every filter whose field it carries
(``task_matches``), and a task that does not match is not exported. A backend that ignored a
filter is reported, naming the filter and how many listed tasks did not match it. The filters'
rules are in ``filters``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from .._errors import FatalSynapseError, StorageError, UsageError, counted
from .._folders import not_writable
from .._stale_temporaries import remove_stale_temporaries
from .._storage import AtomicWriter, is_local, redact_url, refuse_file_output, url_to_fs
from .client import (
    AsyncSynapseClient,
    BackendMoved,
    BackendUnavailable,
    NotFound,
    SynapseHTTPError,
    TokenRejected,
    retrieved,
)
from .filters import (
    KNOWN_FILTERS,
    RESERVED_FILTERS,
    check_filters,
    filter_fields,
    parse_filters,
    shown_value,
    task_matches,
)
from .listing import Listing
from .query import split_lookup
from .sync_client import SynapseClient
from .taskdata import data_hash, file_name, files_by_spec, primary_spec
from .workers import Breaker, HungCheck, TokenCheck, refused_alone

log = logging.getLogger(__name__)

TASK_DETAIL = {"fields": "id,data,data_unit", "expand": "data_unit"}
WINDOW = 256

#: what callers import from here; the filters themselves live in ``filters``
__all__ = ["KNOWN_FILTERS", "RESERVED_FILTERS", "ExportResult", "check_filters", "check_project", "export_tasks",
           "parse_filters", "task_matches"]


@dataclass
class ExportResult:
    output: str
    project: int
    exported: int = 0
    #: ``{"task_id", "reason", "line"}`` for tasks listed but not exported, in listing order;
    #: ``line``: the manifest line the next exported task got (where the task would have been)
    skipped: list[dict] = field(default_factory=list)
    filters: dict[str, Any] = field(default_factory=dict)
    #: ``{filter: count}`` of listed tasks the backend returned although they do not match that
    #: filter (the backend ignored it); they are not exported
    unmatched: dict[str, int] = field(default_factory=dict)
    #: filters the guide does not document whose field no listed task carried: whether the backend
    #: applied them cannot be told (it ignores a filter it does not know, and lists every task)
    unchecked: list[str] = field(default_factory=list)
    #: how many times the tasks were listed: again while the listing changed under its reader
    #: (``listing.Listing``), at most ``listing.PASSES``
    listings: int = 1
    #: the listing's ``count`` at first and at the end when it was still changing after the last
    #: listing (tasks created, deleted or leaving the filters meanwhile: some may not be listed)
    listing_changed: tuple[int, int] | None = None

    @property
    def listed(self) -> int:
        """The tasks listed that match the filters: those exported and those skipped (the SDK's
        ``fetch_tasks`` count, and the ToTask result's ``total_tasks``)."""
        return self.exported + len(self.skipped)

    def unmatched_warnings(self) -> list[str]:
        """One line per filter the backend did not apply, and one when the listing changed."""
        lines = [f"the backend did not apply filter {name}: {counted(count, 'listed task')} "
                 f"{'does' if count == 1 else 'do'} not match it and {'was' if count == 1 else 'were'} "
                 f"not exported" for name, count in self.unmatched.items()]
        lines += [f"filter {key}={shown_value(self.filters[key])} could not be checked: no listed task holds "
                  f"{split_lookup(key)[0]!r}, and Synapse ignores a filter it does not know (listing every task): "
                  "check its name" for key in self.unchecked]
        if self.listing_changed:
            first, then = self.listing_changed
            lines.append(f"the task listing was still changing after {self.listings} listings (the backend counted "
                         f"{first} tasks at first, {then} at the end): tasks may have been left out; export again "
                         f"to pick them up")
        return lines


def _check_writable(output: str) -> None:
    """Refuse an output folder that cannot be written before spending the fetch on it (local paths;
    an object store's permissions only show on the write itself, which fails just as clearly),
    and a name the write would refuse (a folder's, a device's or a FIFO's)."""
    refuse_file_output(output)
    fs, path = url_to_fs(output)
    if not is_local(fs):
        return
    if why := not_writable(os.path.dirname(os.path.abspath(path))):
        raise StorageError(f"cannot write {output}: {why}")


def export_tasks(
    project: int,
    output: str,
    *,
    filters: dict[str, Any] | None = None,
    limit: int | None = None,
    target_specification_name: str | None = None,
    client: SynapseClient | None = None,
    on_progress: Callable[[int], None] | None = None,
    project_checked: bool = False,
    before_commit: Callable[[ExportResult], None] | None = None,
    again: str = "export again",
) -> ExportResult:
    """Write the manifest of ``project``'s tasks matching ``filters`` to ``output`` (any fsspec URL).

    Raises ``FatalSynapseError`` with the ToTask guide's messages when the project is missing,
    has no data collection, lacks the target specification, or no task matches.
    ``project_checked``: the caller already ran ``check_project`` (the ToTask action does, in its
    ``initialize`` step), so it is not asked again. ``before_commit`` is given the result before
    the manifest is put in place (the action notes the tasks it skipped there: a kill between the
    two would have left a manifest a resumed run does not export again, and skipped tasks it never
    counted). ``again``: the user's way to list the tasks again, in the stop of a listing that came
    back short (``listing.Listing``): the ToTask action's is running it again, not an export.
    """
    output = os.fspath(output)  # a pathlib.Path too, as write_lines takes
    _check_writable(output)
    # what an export to the same place killed before left (kill -9): a hidden partial manifest,
    # as large as the tasks it had listed, that no later export would ever remove
    for url in remove_stale_temporaries(output):
        log.info("removed %s, left by an interrupted export", redact_url(url))
    filters = check_filters(filters)
    filter_limit = filters.pop("limit", None)  # a 'limit' filter is the export limit, not a query
    limit = limit if limit is not None else filter_limit
    if limit is not None and limit < 1:
        raise UsageError(f"--limit must be at least 1, got {limit}")
    own = client is None
    client = client or SynapseClient()
    try:
        return client.run(
            _export(client.aio, int(project), output, filters, limit, target_specification_name, on_progress,
                    project_checked, before_commit, again)
        )
    finally:
        if own:
            client.close()


async def check_project(aio: AsyncSynapseClient, project: int, target_specification_name: str | None) -> dict:
    """The project's data collection, after the guide's fatal checks."""
    try:
        proj = await aio.get_project(project)
    except NotFound:
        # a host whose path the backend does not serve (https://host/api) answers 404 to everything
        raise FatalSynapseError(f"Project not found: project {project} does not exist or is not visible; if it "
                                f"exists, {aio.settings.check_host()}") from None
    if not isinstance(proj, dict):
        raise FatalSynapseError(f"Project not found: project {project} answered no project object")
    collection = proj.get("data_collection")
    if isinstance(collection, dict):
        collection = collection.get("id")
    if not collection:
        raise FatalSynapseError(f"Project has no data collection: connect one to project {project} first")
    try:
        dc = await aio.get_data_collection(collection)
    except NotFound:
        raise FatalSynapseError(
            f"Project has no data collection: data collection {collection} of project {project} not found"
        ) from None
    if target_specification_name:
        names = [s.get("name") if isinstance(s, dict) else s for s in dc.get("file_specifications") or []]
        if target_specification_name not in names:
            raise FatalSynapseError(
                f"Target specification not found: {target_specification_name!r} is not among the data "
                f"collection's file specifications ({', '.join(map(str, names)) or 'none'})"
            )
    return dc


async def _export(
    aio: AsyncSynapseClient,
    project: int,
    output: str,
    filters: dict[str, Any],
    limit: int | None,
    target_spec: str | None,
    on_progress: Callable[[int], None] | None,
    project_checked: bool = False,
    before_commit: Callable[[ExportResult], None] | None = None,
    again: str = "export again",
) -> ExportResult:
    if not project_checked:
        await check_project(aio, project, target_spec)
    result = ExportResult(output=output, project=project, filters=filters)
    # ``fields`` and ``project`` after the filters, as the SDK's fetch_tasks step sets them; the
    # filtered fields are asked for too, to check each task against the filters
    params = {**filters, "project": project, "fields": ",".join(["id", *filter_fields(filters)])}
    listed = 0
    listing = Listing(aio, params, filters, again=again)
    with _TaskReads(aio, project) as reads, AtomicWriter(output) as out:
        window: list[int] = []
        async with contextlib.aclosing(listing.ids()) as ids:
            async for tid in ids:
                window.append(tid)
                listed += 1
                if len(window) >= WINDOW:
                    await _write_window(reads, window, out, result)
                    window = []
                    if on_progress:
                        on_progress(listed)
                if limit is not None and listed >= limit:
                    listing.changed = None  # as many tasks as asked for: none was left out
                    break
        if window:
            await _write_window(reads, window, out, result)
            if on_progress:
                on_progress(listed)
        result.unmatched, result.listings, result.listing_changed = listing.unmatched, listing.listings, listing.changed
        result.unchecked = sorted(listing.unchecked) if listing.returned else []
        for warning in result.unmatched_warnings():  # said here once: the action only tells its job's log
            log.warning("warning: %s", warning)
        if listed == 0:
            shown = ", ".join(f"{k}={shown_value(v)}" for k, v in filters.items()) or "none"
            ignored = (f"; the backend listed {counted(listing.returned, 'task')}, none matching "
                       f"({'; '.join(result.unmatched_warnings())})" if listing.returned else "")
            raise FatalSynapseError(f"No tasks found matching filters ({shown}) in project {project}{ignored}")
        if result.exported == 0:
            raise FatalSynapseError(
                f"No tasks could be exported: all {listed} listed tasks were skipped "
                f"(first: task {result.skipped[0]['task_id']}: {result.skipped[0]['reason']})"
            )
        if before_commit is not None:
            before_commit(result)
    # debug: the command prints this summary itself (once), the action says it in its own words
    log.debug("exported %s of project %d to %s (%d skipped)", counted(result.exported, "task"), project, output,
              len(result.skipped))
    return result


class _TaskReads:
    """Reads each listed task, and decides when a failed read stops the export rather than the task.

    A task whose read the backend refuses (403, 404) or fails (a 5xx after the retries: a serializer
    bug on one task's data is typical) is skipped, a failed task of the run as in the SDK; but 5xx or
    no connection for ``Breaker``'s tasks in a row is the backend down, and a 401 the token's own
    check is refused too is a revoked token: either stops the export with one line."""

    def __init__(self, aio: AsyncSynapseClient, project: int) -> None:
        self.aio = aio
        self.project = project
        self.token = TokenCheck(aio)
        self.breaker = Breaker(token=self.token)
        #: a read's try timed out with no read answered since it went out: the check, asked now (the client
        #: goes on after the export, ``run``'s apply: its timeouts are not the export's)
        self._hung = HungCheck(aio, self.breaker, lambda: project)

    def __enter__(self) -> _TaskReads:
        self._hung.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._hung.__exit__(*exc)

    def stop(self) -> BackendUnavailable:
        """The stop of a breaker that tripped while reads were out (``Breaker.timed_out``)."""
        return BackendUnavailable(self.breaker.fatal or "", status=None, method="GET", path=f"/projects/{self.project}/")

    async def line(self, task_id: int) -> tuple[bytes | None, str]:
        try:
            answer = await _task_line(self.aio, self.project, task_id)
        except TokenRejected as exc:
            reason = await refused_alone(self.token, exc, self.project)
            if reason is None:
                raise
            answer = None, reason
        except BackendUnavailable as exc:
            await self.breaker.unavailable(str(exc), project=self.project, error=exc)
            if self.breaker.tripped:
                raise BackendUnavailable(self.breaker.fatal, status=exc.status, method=exc.method,
                                         path=exc.path, unreachable=exc.unreachable) from None
            return None, str(exc)
        self.breaker.success()
        return answer


async def _write_window(reads: _TaskReads, ids: list[int], out: Any, result: ExportResult) -> None:
    pending = [asyncio.ensure_future(reads.line(tid)) for tid in ids]
    every = asyncio.gather(*pending)
    # a stop cancels the reads and leaves their gather unawaited, ended by the cancellation: taken here, or
    # asyncio logs "exception was never retrieved" with a traceback when it is collected (noise on stderr; on
    # CPython 3.11.7 that traceback's ``ast.parse`` inside another broke the next compile from source)
    every.add_done_callback(retrieved)
    stopped = asyncio.ensure_future(reads.breaker.stopped.wait())
    try:  # a breaker tripped by a timeout's check (a hung backend) stops the reads still waiting
        await asyncio.wait([every, stopped], return_when=asyncio.FIRST_COMPLETED)
        if not every.done():
            raise reads.stop()
        lines = every.result()
    finally:  # the export stopped: no read goes on behind it
        stopped.cancel()
        for task in pending:
            task.cancel()
    for tid, (line, reason) in zip(ids, lines, strict=True):
        if line is None:
            result.skipped.append({"task_id": tid, "reason": reason, "line": result.exported + 1})
            log.warning("task %s not exported: %s", tid, reason)
            continue
        out.write(line)
        result.exported += 1


async def _task_line(aio: AsyncSynapseClient, project: int, task_id: int) -> tuple[bytes | None, str]:
    """The task's manifest line, or None and why it cannot be exported (its read refused: 403, 404,
    another 4xx); a 5xx, a 401 and a redirect are raised, for ``_TaskReads`` to judge."""
    try:
        task = await aio.get_task(task_id, TASK_DETAIL)
        unit = task.get("data_unit")
        unit_id = unit.get("id") if isinstance(unit, dict) else unit
        files = files_by_spec(unit.get("files") if isinstance(unit, dict) else None)
        if not files and unit_id is not None:
            files = files_by_spec((await aio.get_data_unit(unit_id)).get("files"))
    except (TokenRejected, BackendMoved, BackendUnavailable):
        raise
    except SynapseHTTPError as exc:
        return None, str(exc)
    if not files:
        return None, "Data unit does not have files"
    primary = primary_spec(files)
    if primary is None:
        return None, "Primary file URL not found for task"  # the SDK's words
    record = {
        "source-ref": files[primary]["url"],
        "synapse": {
            "task_id": task.get("id", task_id),
            "project": project,
            "data_unit_id": unit_id,
            "files": {
                name: {"url": f.get("url"), "is_primary": bool(f.get("is_primary")), "file_name_original": file_name(f)}
                for name, f in files.items()
            },
            "data_hash": data_hash(task.get("data")),
        },
    }
    return orjson.dumps(record) + b"\n", ""
