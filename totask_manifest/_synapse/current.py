"""Tasks' current data, fetched a window at a time instead of one GET per task.

Apply must know each task's data just before writing it (idempotence, conflicts, the journal).
One ``GET tasks/{id}/`` per task doubles the requests of a run; the task listing can answer for
a hundred tasks at once: ``sdk/tasks/?project=P&id__in=1,2,...&fields=id,data,data_unit``. Backends differ
in what their listing honours, so it is trusted only as far as it proves itself:

* each task's ``data_unit`` comes with its data (``unit``): apply writes a label only to the task
  bound to the data unit the line was exported with (a colliding id on another backend is
  another image);
* only the tasks asked for are used, and only when the entry carries ``data``; any task it
  does not answer for is fetched on its own, as before;
* the first window is checked against one task's own GET: if the listing's ``data`` differs,
  or the listing fails, or it answers for under half of a window (the filter is ignored), the
  run goes back to one GET per task; but a listing that found no connection to the backend at
  all, after every retry, stops the run (``BackendUnavailable.unreachable``): each GET would
  have waited through the same retries, and the run stopped only after three of them, 36 s
  against a host where nothing listens instead of 12.

The data is at most one window old when written; one GET per task narrows that window, not
closes it (the backend has no conditional write), so the conflict check is the same in kind.
"""

from __future__ import annotations

import logging
from typing import Any

from .client import AsyncSynapseClient, BackendMoved, BackendUnavailable, SynapseHTTPError, TokenRejected
from .taskdata import data_hash

log = logging.getLogger(__name__)

MISSING: Any = object()
DETAIL = {"fields": "id,data,data_unit"}


class CurrentData:
    def __init__(self, aio: AsyncSynapseClient, *, bulk: bool = True) -> None:
        self.aio = aio
        self.bulk = bulk
        self._verified = False
        self._data: dict[int, tuple[Any, int | None]] = {}
        #: tasks answered by the listing and by their own GET (for reports and benchmarks)
        self.listed = 0
        self.fetched = 0

    async def load(self, project: int | None, task_ids: list[int]) -> None:
        """Fetch a window's current data through the listing (does nothing once bulk is off)."""
        if not self.bulk or project is None or len(task_ids) < 2:
            return
        wanted = set(task_ids)
        try:
            page = await self.aio.get("sdk/tasks/", {"project": project, "id__in": task_ids, "fields": DETAIL["fields"],
                                                     "page_size": len(task_ids)})
        except (TokenRejected, BackendMoved):
            raise
        except BackendUnavailable as exc:
            if exc.unreachable:  # no connection after every retry: a GET per task would wait as long, each
                raise
            self.off(f"the task listing failed ({exc.status})")
            return
        except SynapseHTTPError as exc:
            self.off(f"the task listing failed ({exc.status})")
            return
        results = page.get("results") if isinstance(page, dict) else page
        found = {r["id"]: (r["data"], unit_id(r)) for r in results or []
                 if isinstance(r, dict) and r.get("id") in wanted and "data" in r}
        if len(found) * 2 < len(task_ids):
            self.off(f"the task listing answered for {len(found)} of {len(task_ids)} tasks")
            return
        if not self._verified:
            probe = next(iter(found))
            try:
                own = await self.aio.get_task(probe, DETAIL)
            except (TokenRejected, BackendMoved):
                raise
            except SynapseHTTPError as exc:
                self.off(f"could not check the listing against task {probe} ({exc.status})")
                return
            if data_hash(own.get("data") if isinstance(own, dict) else None) != data_hash(found[probe][0]):
                self.off("the task listing's data differs from the task's own")
                return
            self._verified = True
        self._data.update(found)

    def off(self, why: str) -> None:
        log.debug("one GET per task from now on: %s", why)
        self.bulk = False  # windows already loaded passed the checks and stay usable

    async def get(self, task_id: int) -> tuple[Any, int | None]:
        """The task's data and its data unit's id (None when the backend does not say): from the
        loaded window if there, else its own GET (errors propagate)."""
        data = self._data.pop(task_id, MISSING)
        if data is not MISSING:
            self.listed += 1
            return data
        self.fetched += 1
        task = await self.aio.get_task(task_id, DETAIL)
        if "data" not in task:  # no data is not an empty task: taken for one, a forced write would lose it
            raise SynapseHTTPError(f"Synapse answered GET /tasks/{task_id}/ without the task's data",
                                   status=200, method="GET", path=f"/tasks/{task_id}/")
        return task["data"], unit_id(task)


def unit_id(task: dict) -> int | None:
    """The id of the data unit a task answer names: an id, or an expanded object's ``id``."""
    unit = task.get("data_unit")
    if isinstance(unit, dict):
        unit = unit.get("id")
    return unit if isinstance(unit, int) and not isinstance(unit, bool) else None
