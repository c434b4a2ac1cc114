"""The plugin side of the Synapse contract server: releases, serve applications, plugin runs, jobs,
agents and logs (what the ``synapse-preprocessor`` annotator and the ToTask action talk to).

``PluginRoutes`` is a part of ``synapse_server.SynapseServer``, which lends it the store
(``add_job``, ``add_serve_app``...) and the shared answers (``_id``, ``_not_found``, ``_paginate``);
kept apart so the task side and the plugin side of the backend each read in one file.
"""

from __future__ import annotations

import copy
from typing import Any

from aiohttp import web

from .recording import RECORDED, json_response
from .synapse_store import validation_error


class PluginRoutes:
    """The plugin endpoints and what a test sets to steer them (deploys, inference answers)."""

    def _init_plugins(self) -> None:
        #: statuses a newly deployed serve application goes through, one per listing
        self.deploy_statuses: list[str] = ["DEPLOYING", "RUNNING"]
        #: ``inference(payload) -> result``; default: ``inference_results[image_path]`` or ``{}``
        self.inference: Any = None
        self.inference_results: dict[str, Any] = {}
        #: answer inference with a deferred ticket that stays pending for this many polls
        self.defer_polls = 0
        self._tickets: dict[str, dict] = {}

    def _add_plugin_routes(self, r: web.UrlDispatcher) -> None:
        r.add_get("/plugin_releases/{id}/", self._get_release)
        r.add_get("/serve_applications/", self._list_serve_apps)
        r.add_post("/plugins/{code}/run/", self._run_plugin)
        r.add_get("/jobs/{id}/", self._get_job)
        r.add_patch("/jobs/{id}/", self._patch_job)
        r.add_post("/logs/", self._create_logs)
        r.add_get("/agents/", self._list_agents)

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
            return validation_error("body must hold 'agent' and 'action'")
        if body["action"] == "deployment":
            job = self.add_job()
            aid = self.add_serve_app(code, body["agent"], list(self.deploy_statuses))
            self.serve_apps[aid]["job"] = job
            return json_response({"job_id": job})
        if body["action"] != "inference":
            return validation_error(f"unknown action {body['action']!r}")
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
            return validation_error("body must be an object")
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
