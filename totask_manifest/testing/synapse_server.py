"""A Synapse backend contract server for tests and benchmarks (synapse-api.md §2).

It serves the endpoints ToTask uses with the documented shapes from an in-memory store, checks
tokens (and the tenant, when given one), paginates with absolute ``next`` links (optionally on
another origin, ``next_base``), reads repeated query keys as Django does (the last wins), refuses
an empty submit with 400 as the real backend does, and lets a test inject what goes wrong in real
deployments: 401 after a token is revoked, 404s, 429 with ``Retry-After``, 5xx, slow replies,
dropped connections, the whole backend going down mid-run. Every request is recorded (method,
path, query, headers, JSON body) so tests assert what was sent, and how often.

The store and the backend's data rules are in ``synapse_store``, the plugin endpoints (releases,
serve applications, plugin runs, jobs, agents, logs) in ``synapse_plugins``; this module holds the
server itself and the task endpoints.

Run alone for a benchmark: ``python -m totask_manifest.testing.synapse_server --tasks 10000
--latency 0.02`` prints ``URL <url>`` and ``TOKEN <token>`` and serves until killed.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import sys
import time
from typing import Any

from aiohttp import web

from .background import BackgroundApp
from .recording import RECORDED, Recorded, RequestLog, json_response
from .synapse_plugins import PluginRoutes
from .synapse_store import SynapseStore, dm_v1_problem, is_empty_submit, presign, validation_error


class SynapseServer(SynapseStore, PluginRoutes, RequestLog, BackgroundApp):
    """In-memory Synapse. Add objects with the ``add_*`` helpers (or ``seed``), then ``start()``."""

    def __init__(self, *, tokens: tuple[str, ...] = ("test-token",), default_page_size: int = 100,
                 max_page_size: int = 1000, tenant: str | None = None, next_base: str | None = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._init_log()
        self._init_store()
        self._init_plugins()
        self.tokens: set[str] = set(tokens)
        #: when set, every request must carry ``Synapse-Tenant: Token <tenant>`` (403 otherwise)
        self.tenant = tenant
        self.revoked: set[str] = set()
        self.default_page_size = default_page_size
        self.max_page_size = max_page_size
        #: ``None``, ``"503"`` (every request answered 503) or ``"reset"`` (connections dropped)
        self.down: str | None = None
        #: when set, ``next`` links point at this base URL (another origin: ``http://`` behind a TLS
        #: proxy, an internal host name) instead of the server itself
        self.next_base: str | None = next_base
        #: task detail with ``expand=data_unit`` includes the files (False: the client must
        #: fetch ``data_units/{id}/?expand=files``)
        self.expand_files_in_task = True
        #: serve a data unit's files as a list with ``specification_name`` instead of a dict
        self.files_as_list = False
        #: ``normalise(data) -> data`` applied to written task data (a backend that adds defaults)
        self.normalise: Any = None
        #: the listing filters on ``id__in`` (False: ignored, like a backend without that filter)
        self.honour_id_in = True
        #: task listing query keys this backend ignores (a backend without that filter)
        self.ignored_filters: set[str] = set()
        #: file URLs are presigned: each rendering carries ``expires=<clock() + url_ttl>`` (a
        #: ``FileServer`` answers 403 once its own clock passes it); None: URLs as stored
        self.url_ttl: float | None = None
        self.clock: Any = time.time
        #: requests being answered now, and the most at once (to check a client's concurrency cap)
        self.in_flight = 0
        self.max_in_flight = 0

    def revoke(self, token: str) -> None:
        self.revoked.add(token)

    # -- the application ----------------------------------------------------------------------------

    def make_app(self) -> web.Application:
        app = web.Application(client_max_size=64 << 20, middlewares=[self._middleware])
        r = app.router
        r.add_get("/projects/{id}/", self._get_project)
        r.add_get("/data_collections/{id}/", self._get_data_collection)
        r.add_get("/sdk/tasks/", self._list_tasks)
        r.add_get("/tasks/{id}/", self._get_task)
        r.add_put("/tasks/{id}/annotate_task_data/", self._annotate_task_data)
        r.add_get("/data_units/{id}/", self._get_data_unit)
        self._add_plugin_routes(r)
        return app

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            return await self._serve(request, handler)
        finally:
            self.in_flight -= 1

    async def _serve(self, request: web.Request, handler: Any) -> web.StreamResponse:
        rec = await self._record(request)
        if self.latency:
            await asyncio.sleep(self.latency)
        while self.held:  # a run held mid-request for as long as the test needs (``RequestLog.held``)
            await asyncio.sleep(0.01)
        if self.down == "reset":
            if request.transport is not None:
                request.transport.abort()
            raise asyncio.CancelledError
        if self.down:
            rec.status = 503
            return json_response({"detail": "Service Unavailable"}, 503)
        faulted = await self._apply_faults(request, rec)
        if faulted is not None:
            return faulted
        if not self._authorized(rec):
            rec.status = 401
            return json_response({"detail": "Invalid token."}, 401, {"WWW-Authenticate": "Token"})
        if self.tenant is not None and rec.header("Synapse-Tenant") != f"Token {self.tenant}":
            rec.status = 403
            return json_response({"detail": "Invalid tenant."}, 403)
        request = _last_wins(request)
        request[RECORDED] = rec
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            rec.status = exc.status
            raise
        rec.status = response.status
        return response

    def _authorized(self, rec: Recorded) -> bool:
        for header in ("authorization", "synapse-access-token"):
            value = rec.headers.get(header, "")
            if value.startswith("Token "):
                token = value[6:]
                if token in self.tokens and token not in self.revoked:
                    return True
        return False

    @staticmethod
    def _id(request: web.Request) -> int:
        try:
            return int(request.match_info["id"])
        except ValueError:
            raise web.HTTPNotFound() from None

    @staticmethod
    def _not_found() -> web.Response:
        return json_response({"detail": "Not found."}, 404)

    @staticmethod
    def _fields(obj: dict, request: web.Request) -> dict:
        fields = request.query.get("fields")
        if not fields:
            return obj
        wanted = {f.strip() for f in fields.split(",") if f.strip()}
        return {k: v for k, v in obj.items() if k in wanted}

    def _paginate(self, request: web.Request, items: list[dict], render: Any = None) -> web.Response:
        try:
            page = max(1, int(request.query.get("page", "1")))
            size = min(max(1, int(request.query.get("page_size", str(self.default_page_size)))), self.max_page_size)
        except ValueError:
            return json_response({"detail": "Invalid page."}, 404)
        start = (page - 1) * size
        if start and start >= len(items):
            return json_response({"detail": "Invalid page."}, 404)
        chunk = items[start : start + size]
        if render is not None:  # only the page's objects are rendered
            chunk = [render(item) for item in chunk]
        nxt = None
        if start + size < len(items):
            query = dict(request.query)
            query["page"] = str(page + 1)
            url = request.url.with_query(query)
            nxt = str(url) if not self.next_base else self.next_base.rstrip("/") + url.path_qs
        prev = None
        if page > 1:
            query = dict(request.query)
            query["page"] = str(page - 1)
            prev = str(request.url.with_query(query))
        return json_response({"count": len(items), "next": nxt, "previous": prev, "results": chunk})

    async def _get_project(self, request: web.Request) -> web.Response:
        project = self.projects.get(self._id(request))
        return json_response(project) if project else self._not_found()

    async def _get_data_collection(self, request: web.Request) -> web.Response:
        dc = self.data_collections.get(self._id(request))
        if not dc:
            return self._not_found()
        out = dict(dc)
        if "file_specifications" not in request.query.get("expand", ""):
            out["file_specifications"] = [s["name"] for s in dc["file_specifications"]]
        return json_response(out)

    def _render_files(self, files: dict[str, dict]) -> Any:
        if self.url_ttl is not None:
            files = {name: {**f, "url": presign(f["url"], self.clock() + self.url_ttl)} if f.get("url") else f
                     for name, f in files.items()}
        if self.files_as_list:
            return [{"specification_name": name, **copy.deepcopy(f)} for name, f in files.items()]
        return copy.deepcopy(files)

    def _render_task(self, task: dict, request: web.Request) -> dict:
        out = {k: v for k, v in task.items() if k != "data_collection"}
        out["data"] = copy.deepcopy(task["data"])
        if "data_unit" in request.query.get("expand", ""):
            unit = self.data_units.get(task["data_unit"], {"id": task["data_unit"], "files": {}})
            files = self._render_files(unit["files"]) if self.expand_files_in_task else {}
            out["data_unit"] = {"id": unit["id"], "files": files}
        return self._fields(out, request)

    async def _list_tasks(self, request: web.Request) -> web.Response:
        q = {k: v for k, v in request.query.items() if k not in self.ignored_filters}
        tasks = list(self.tasks.values())
        if "project" in q:
            tasks = [t for t in tasks if str(t["project"]) == q["project"]]
        if "id__in" in q and self.honour_id_in:
            wanted = {int(i) for i in q["id__in"].split(",") if i.strip().isdigit()}
            tasks = [t for t in tasks if t["id"] in wanted]
        if "status" in q:
            tasks = [t for t in tasks if t["status"] == q["status"]]
        if "status__in" in q:
            wanted = set(q["status__in"].split(","))
            tasks = [t for t in tasks if t["status"] in wanted]
        if "data_collection" in q:
            tasks = [t for t in tasks if str(t["data_collection"]) == q["data_collection"]]
        if "assignee" in q:
            if q["assignee"] in ("null", "None", ""):
                tasks = [t for t in tasks if t["assignee"] is None]
            else:
                tasks = [t for t in tasks if str(t["assignee"]) == q["assignee"]]
        if "assignee__isnull" in q:
            isnull = q["assignee__isnull"].lower() in ("true", "1")
            tasks = [t for t in tasks if (t["assignee"] is None) == isnull]
        if "created_at__gte" in q:
            tasks = [t for t in tasks if t["created_at"][: len(q["created_at__gte"])] >= q["created_at__gte"]]
        if "created_at__lte" in q:
            tasks = [t for t in tasks if t["created_at"][: len(q["created_at__lte"])] <= q["created_at__lte"]]
        tasks.sort(key=lambda t: t["id"])
        return self._paginate(request, tasks, lambda t: self._render_task(t, request))

    async def _get_task(self, request: web.Request) -> web.Response:
        task = self.tasks.get(self._id(request))
        if not task or task["project"] not in self.projects:
            return self._not_found()
        return json_response(self._render_task(task, request))

    async def _annotate_task_data(self, request: web.Request) -> web.Response:
        task = self.tasks.get(self._id(request))
        if not task or task["project"] not in self.projects:
            return self._not_found()
        body = request[RECORDED].body
        if not isinstance(body, dict) or body.get("action") not in ("submit", "save") or "data" not in body:
            return validation_error("body must be {'action': 'submit'|'save', 'data': ...}")
        data = body["data"]
        if request.query.get("schema", "dm_schema_v1") != "any":
            problem = dm_v1_problem(data)
            if problem:
                return validation_error(problem)
            if body["action"] == "submit" and is_empty_submit(data):
                # SYN-7201: the backend refuses a submit without annotations
                return validation_error("data holds no annotations: an empty submit is refused")
        task["data"] = copy.deepcopy(data) if self.normalise is None else self.normalise(copy.deepcopy(data))
        task.setdefault("writes", 0)
        task["writes"] += 1
        return json_response({"id": task["id"], "data": task["data"]})

    async def _get_data_unit(self, request: web.Request) -> web.Response:
        unit = self.data_units.get(self._id(request))
        if not unit:
            return self._not_found()
        out = {"id": unit["id"], "data_collection": unit["data_collection"]}
        if "files" in request.query.get("expand", ""):
            out["files"] = self._render_files(unit["files"])
        return json_response(out)


def _last_wins(request: web.Request) -> web.Request:
    """The request with its query as Django's ``QueryDict.get`` reads it: of repeated keys, the
    last value wins (aiohttp's ``request.query.get`` would give the first)."""
    query = request.query
    if len(set(query.keys())) == len(query):
        return request
    return request.clone(rel_url=request.rel_url.with_query({k: v for k, v in query.items()}))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Serve an in-memory Synapse backend (for benchmarks).")
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every answer")
    parser.add_argument("--project", type=int, default=1)
    parser.add_argument("--token", default="bench-token")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--no-record", action="store_true", help="keep no request log (long runs)")
    args = parser.parse_args(argv)
    server = SynapseServer(tokens=(args.token,), port=args.port, max_page_size=10_000)
    server.seed(args.tasks, project_id=args.project)
    server.latency = args.latency
    if args.no_record:
        server.requests = _Discard()
    server.start()
    print(f"URL {server.url}", flush=True)
    print(f"TOKEN {args.token}", flush=True)
    try:
        sys.stdin.read()  # serve until the parent closes our stdin or kills us
    except KeyboardInterrupt:
        pass
    server.stop()
    return 0


class _Discard(list):
    def append(self, item: Any) -> None:
        pass


if __name__ == "__main__":
    sys.exit(main())
