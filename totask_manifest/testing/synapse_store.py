"""The Synapse contract server's store: its objects, the helpers that add them, and the backend's data rules.

``SynapseStore`` is the in-memory database that ``synapse_server.SynapseServer`` serves: projects,
data collections and units, tasks, plugin releases, serve applications, jobs, agents and logs,
each a plain dict in the documented shape (synapse-api.md §2). The functions below are what the
real backend checks or does to data (presigned URLs, its DM schema v1 check, its refusal of an
empty submit, the shape of its 400 answer); they are kept beside the store so the server module
holds only the HTTP surface.
"""

from __future__ import annotations

import copy
import itertools
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from aiohttp import web

from .recording import json_response

DM_V1_KEYS = frozenset({"assignmentId", "extra", "annotations", "relations", "annotationGroups", "annotationsData"})


class SynapseStore:
    """The objects a ``SynapseServer`` serves. Add them with the ``add_*`` helpers (or ``seed``)."""

    def _init_store(self) -> None:
        #: agents listed by ``GET agents/`` (``add_agent``)
        self.agents: dict[int, dict] = {}
        self.projects: dict[int, dict] = {}
        self.data_collections: dict[int, dict] = {}
        self.tasks: dict[int, dict] = {}
        self.data_units: dict[int, dict] = {}
        self.releases: dict[int, dict] = {}
        self.serve_apps: dict[int, dict] = {}
        self.jobs: dict[int, dict] = {}
        self.job_patches: dict[int, list[dict]] = {}
        self.logs: list[dict] = []
        self._ids = itertools.count(1000)

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

    def project_tasks(self, project: int) -> list[dict]:
        return [t for t in self.tasks.values() if t["project"] == project]


def presign(url: str, expires: float) -> str:
    """``url`` with ``expires=<epoch seconds>`` in its query, as a presigned storage URL carries."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != "expires"] + [("expires", f"{expires:.3f}")]
    return urlunsplit(parts._replace(query=urlencode(query)))


def is_empty_submit(data: Any) -> bool:
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


def dm_v1_problem(data: Any) -> str | None:
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


def validation_error(message: str) -> web.Response:
    return json_response(
        {"error": {"code": "VALIDATION_ERROR", "message": message, "details": [{"field": "data", "message": message}]}},
        400,
    )
