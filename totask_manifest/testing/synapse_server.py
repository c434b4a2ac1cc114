"""A Synapse backend contract server for tests and benchmarks (synapse-api.md §2).

It serves the endpoints ToTask uses with the documented shapes from an in-memory store, checks
tokens (and the tenant, when given one), paginates with absolute ``next`` links (optionally on
another origin, ``next_base``), reads repeated query keys as Django does (the last wins), refuses
an empty submit with 400 as the real backend does, and lets a test inject what goes wrong in real
deployments: 401 after a token is revoked, 404s, 429 with ``Retry-After``, 5xx, slow replies,
dropped connections, the whole backend going down mid-run. Every request is recorded (method,
path, query, headers, JSON body) so tests assert what was sent, and how often.

Run alone for a benchmark: ``python -m totask_manifest.testing.synapse_server --tasks 10000
--latency 0.02`` prints ``URL <url>`` and ``TOKEN <token>`` and serves until killed.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import itertools
import sys
import time
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from aiohttp import web

from .background import BackgroundApp
from .recording import Recorded, RequestLog, json_response

RECORDED = web.RequestKey("recorded", Recorded)
DM_V1_KEYS = frozenset({"assignmentId", "extra", "annotations", "relations", "annotationGroups", "annotationsData"})


class SynapseServer(RequestLog, BackgroundApp):
    """In-memory Synapse. Add objects with the ``add_*`` helpers (or ``seed``), then ``start()``."""

    def __init__(self, *, tokens: tuple[str, ...] = ("test-token",), default_page_size: int = 100,
                 max_page_size: int = 1000, tenant: str | None = None, next_base: str | None = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._init_log()
        self.tokens: set[str] = set(tokens)
        #: when set, every request must carry ``Synapse-Tenant: Token <tenant>`` (403 otherwise)
        self.tenant = tenant
        #: agents listed by ``GET agents/`` (``add_agent``)
        self.agents: dict[int, dict] = {}
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
        self.projects: dict[int, dict] = {}
        self.data_collections: dict[int, dict] = {}
        self.tasks: dict[int, dict] = {}
        self.data_units: dict[int, dict] = {}
        self.releases: dict[int, dict] = {}
        self.serve_apps: dict[int, dict] = {}
        self.jobs: dict[int, dict] = {}
        self.job_patches: dict[int, list[dict]] = {}
        self.logs: list[dict] = []
        #: statuses a newly deployed serve application goes through, one per listing
        self.deploy_statuses: list[str] = ["DEPLOYING", "RUNNING"]
        #: ``inference(payload) -> result``; default: ``inference_results[image_path]`` or ``{}``
        self.inference: Any = None
        self.inference_results: dict[str, Any] = {}
        #: answer inference with a deferred ticket that stays pending for this many polls
        self.defer_polls = 0
        self._tickets: dict[str, dict] = {}
        #: requests being answered now, and the most at once (to check a client's concurrency cap)
        self.in_flight = 0
        self.max_in_flight = 0
        self._ids = itertools.count(1000)

    # -- the store -------------------------------------------------------------------------------

    def _next_id(self) -> int:
        return next(self._ids)

    def add_data_collection(self, specs: list[str] | list[dict], *, id: int | None = None, name: str = "dc") -> int:
        cid = id or self._next_id()
        file_specs = [s if isinstance(s, dict) else {"name": s, "is_required": False} for s in specs]
        self.data_collections[cid] = {"id": cid, "name": name, "file_specifications": file_specs}
        return cid

    def add_project(self, *, id: int | None = None, data_collection: int | None = None, title: str = "p") -> int:
        pid = id or self._next_id()
        self.projects[pid] = {"id": pid, "title": title, "data_collection": data_collection}
        return pid

    def add_data_unit(self, files: dict[str, dict], *, id: int | None = None, data_collection: int | None = None) -> int:
        uid = id or self._next_id()
        self.data_units[uid] = {"id": uid, "data_collection": data_collection, "files": copy.deepcopy(files)}
        return uid

    def add_task(self, project: int, data_unit: int, *, id: int | None = None, status: str = "pending",
                 assignee: int | None = None, created_at: str = "2025-01-15T00:00:00Z", data: Any = None,
                 data_collection: int | None = None) -> int:
        tid = id or self._next_id()
        if data_collection is None:
            data_collection = self.data_units.get(data_unit, {}).get("data_collection")
        self.tasks[tid] = {
            "id": tid, "project": project, "status": status, "assignee": assignee, "created_at": created_at,
            "data": {} if data is None else copy.deepcopy(data), "data_unit": data_unit,
            "data_collection": data_collection,
        }
        return tid

    def add_release(self, code: str, *, id: int | None = None, version: str = "1.0.0",
                    max_batch_size: int | None = None, required_resources: dict | None = None) -> int:
        rid = id or self._next_id()
        config: dict[str, Any] = {"code": code, "actions": {
            "inference": {"required_resources": required_resources or {"required_cpu_count": 1, "required_gpu_count": 0}},
        }}
        if max_batch_size is not None:
            config["actions"]["deployment"] = {"serve_options": {"batch": {"max_batch_size": max_batch_size}}}
        self.releases[rid] = {"id": rid, "version": version, "config": config}
        return rid

    def add_serve_app(self, code: str, agent: int, status: str | list[str] = "RUNNING") -> int:
        aid = self._next_id()
        statuses = [status] if isinstance(status, str) else list(status)
        self.serve_apps[aid] = {"id": aid, "plugin_code": code, "agent": agent, "statuses": statuses}
        return aid

    def add_job(self, *, id: int | None = None) -> int:
        jid = id or self._next_id()
        self.jobs[jid] = {"id": jid, "status": "PENDING"}
        self.job_patches[jid] = []
        return jid

    def seed(self, n_tasks: int, *, file_url: Any = None, specs: tuple[str, ...] = ("image_1", "annotation_data"),
             project_id: int | None = None, **task_fields: Any) -> int:
        """A project with a data collection and ``n_tasks`` tasks; ``file_url(i, spec) -> url``."""
        dc = self.add_data_collection(list(specs))
        pid = self.add_project(id=project_id, data_collection=dc)
        file_url = file_url or (lambda i, spec: f"https://files.example.com/{spec}/{i}.{'jpg' if spec == specs[0] else 'json'}")
        for i in range(n_tasks):
            files = {
                spec: {"url": file_url(i, spec), "is_primary": spec == specs[0],
                       "file_name_original": f"{i}.{'jpg' if spec == specs[0] else 'json'}"}
                for spec in specs
            }
            du = self.add_data_unit(files, data_collection=dc)
            self.add_task(pid, du, **task_fields)
        return pid

    def add_agent(self, *, id: int | None = None, name: str = "agent", status: str = "connected") -> int:
        aid = id or self._next_id()
        self.agents[aid] = {"id": aid, "name": name, "status": status}
        return aid

    def revoke(self, token: str) -> None:
        self.revoked.add(token)

    def project_tasks(self, project: int) -> list[dict]:
        return [t for t in self.tasks.values() if t["project"] == project]

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
        r.add_get("/plugin_releases/{id}/", self._get_release)
        r.add_get("/serve_applications/", self._list_serve_apps)
        r.add_post("/plugins/{code}/run/", self._run_plugin)
        r.add_get("/jobs/{id}/", self._get_job)
        r.add_patch("/jobs/{id}/", self._patch_job)
        r.add_post("/logs/", self._create_logs)
        r.add_get("/agents/", self._list_agents)
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
            return _validation_error("body must be {'action': 'submit'|'save', 'data': ...}")
        data = body["data"]
        if request.query.get("schema", "dm_schema_v1") != "any":
            problem = _dm_v1_problem(data)
            if problem:
                return _validation_error(problem)
            if body["action"] == "submit" and _is_empty_submit(data):
                # SYN-7201: the backend refuses a submit without annotations
                return _validation_error("data holds no annotations: an empty submit is refused")
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

    async def _get_release(self, request: web.Request) -> web.Response:
        release = self.releases.get(self._id(request))
        return json_response(release) if release else self._not_found()

    async def _list_serve_apps(self, request: web.Request) -> web.Response:
        q = request.query
        apps = []
        for app in self.serve_apps.values():
            if "plugin_code" in q and app["plugin_code"] != q["plugin_code"]:
                continue
            if "job__agent" in q and str(app["agent"]) != q["job__agent"]:
                continue
            status = app["statuses"][0]
            if len(app["statuses"]) > 1:
                app["statuses"].pop(0)
            apps.append({"id": app["id"], "plugin_code": app["plugin_code"], "agent": app["agent"], "status": status})
        return self._paginate(request, apps)

    async def _run_plugin(self, request: web.Request) -> web.Response:
        code = request.match_info["code"]
        if not any(r["config"]["code"] == code for r in self.releases.values()):
            return self._not_found()
        body = request[RECORDED].body
        if not isinstance(body, dict) or "agent" not in body or "action" not in body:
            return _validation_error("body must hold 'agent' and 'action'")
        if body["action"] == "deployment":
            job = self.add_job()
            aid = self.add_serve_app(code, body["agent"], list(self.deploy_statuses))
            self.serve_apps[aid]["job"] = job
            return json_response({"job_id": job})
        if body["action"] != "inference":
            return _validation_error(f"unknown action {body['action']!r}")
        params = body.get("params") or {}
        payload = params.get("json") or {}
        ticket = payload.get("__synapse_poll__") if isinstance(payload, dict) else None
        if ticket is not None:
            state = self._tickets.get(ticket)
            if state is None:
                return json_response({"__synapse_deferred__": True, "status": "not_found", "ticket": ticket})
            if state["remaining"] > 0:
                state["remaining"] -= 1
                return json_response({"__synapse_deferred__": True, "status": "pending", "ticket": ticket})
            del self._tickets[ticket]
            return json_response(state["result"])
        if self.inference is not None:
            result = self.inference(body)
        else:
            result = self.inference_results.get(payload.get("image_path"), {})
        if self.defer_polls > 0:
            ticket = f"t{self._next_id()}"
            self._tickets[ticket] = {"remaining": self.defer_polls - 1, "result": result}
            return json_response({"__synapse_deferred__": True, "status": "pending", "ticket": ticket})
        return json_response(result)

    async def _get_job(self, request: web.Request) -> web.Response:
        job = self.jobs.get(self._id(request))
        return json_response(job) if job else self._not_found()

    async def _patch_job(self, request: web.Request) -> web.Response:
        jid = self._id(request)
        job = self.jobs.get(jid)
        if not job:
            return self._not_found()
        body = request[RECORDED].body
        if not isinstance(body, dict):
            return _validation_error("body must be an object")
        job.update(copy.deepcopy(body))
        self.job_patches.setdefault(jid, []).append(copy.deepcopy(body))
        return json_response(job)

    async def _list_agents(self, request: web.Request) -> web.Response:
        agents = sorted(self.agents.values(), key=lambda a: a["id"])
        wanted = request.query.get("id")
        if wanted is not None:
            agents = [a for a in agents if str(a["id"]) == wanted]
        return self._paginate(request, [dict(a) for a in agents])

    async def _create_logs(self, request: web.Request) -> web.Response:
        body = request[RECORDED].body
        entries = body if isinstance(body, list) else [body]
        self.logs.extend(copy.deepcopy(entries))
        return json_response(entries, 201)


def presign(url: str, expires: float) -> str:
    """``url`` with ``expires=<epoch seconds>`` in its query, as a presigned storage URL carries."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != "expires"] + [("expires", f"{expires:.3f}")]
    return urlunsplit(parts._replace(query=urlencode(query)))


def _validation_error(message: str) -> web.Response:
    return json_response(
        {"error": {"code": "VALIDATION_ERROR", "message": message, "details": [{"field": "data", "message": message}]}},
        400,
    )


def _last_wins(request: web.Request) -> web.Request:
    """The request with its query as Django's ``QueryDict.get`` reads it: of repeated keys, the
    last value wins (aiohttp's ``request.query.get`` would give the first)."""
    query = request.query
    if len(set(query.keys())) == len(query):
        return request
    return request.clone(rel_url=request.rel_url.with_query({k: v for k, v in query.items()}))


def _is_empty_submit(data: Any) -> bool:
    """No annotation at all: ``{}``, ``None``, or every media list of ``annotations`` (and of the
    ``objects`` shape) empty."""
    if not data:
        return True
    if not isinstance(data, dict):
        return False
    annotations = data.get("annotations")
    media = annotations.values() if isinstance(annotations, dict) else []
    objects = data.get("objects")
    return not any(isinstance(v, list) and v for v in media) and not (isinstance(objects, list) and objects)


def _dm_v1_problem(data: Any) -> str | None:
    """A light stand-in for the backend's DM schema v1 check (``?schema=any`` skips it)."""
    if not isinstance(data, dict):
        return "data must be an object (DM schema v1)"
    extra = set(data) - DM_V1_KEYS
    if extra:
        return f"data has keys outside DM schema v1: {', '.join(sorted(extra))}"
    for key in ("annotations", "annotationsData", "relations", "annotationGroups"):
        if key in data and not isinstance(data[key], dict):
            return f"{key} must be an object keyed by media id"
    return None


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
