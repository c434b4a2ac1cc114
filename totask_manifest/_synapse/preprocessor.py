"""The inference method through Synapse: a pre-processor plugin release served on an agent.

``PreProcessor`` does what the SDK's prepare step does (synapse-api.md §1.1): read the release
(``plugin_releases/{id}/``: ``config.code``, ``version``), look for a serve application of that
code on the agent, deploy one when none exists (``GET agents/?id=``, then ``POST
plugins/{code}/run/`` with action ``deployment`` and the release's resources taken as given,
``deploy_params``), and poll until it is ``RUNNING`` (every 10 s, up to 600 s), failing at once on
``DEPLOY_FAILED``, ``UNHEALTHY`` or ``UNAVAILABLE``. A deployment already under way
(``NOT_STARTED``, ``DEPLOYING``) is waited for, not duplicated.

Each task's primary image URL then goes to ``POST plugins/{code}/run/`` as
``{agent, action: "inference", version, params: {model, method: "post", json: {image_path,
**pre_processor_params}}, language}`` (``model`` only when one is given: the pre-processor has
its default; ``language`` added by the client, as the SDK's ``PluginRunRequest``). A deferred
reply (``{"__synapse_deferred__": true, "status": "pending", "ticket": T}``) is polled by re-posting ``json: {"__synapse_poll__": T}`` with backoff
(2 s, ×1.5, at most 10 s, 1,800 s in all) until it carries the result (the bare result, or
``status: "done"`` with ``result``); ``failed`` and ``not_found`` fail the task.

``annotators.synapse_preprocessor.PreProcessorAnnotator`` (method ``synapse-preprocessor``) wraps
this in the Annotator interface (it sits on the annotators' floor, above this one): a result in the backend's format (DM schema v1, the ``objects`` shape; with ``native:
any`` any JSON) travels as it is, as a custom label naming its format (``formats.native``);
otherwise it (a Ground Truth label) becomes the line's label (``native: convert`` converts all,
refusing what would be lost unless ``allow_drop``). With ``converter`` (an existing ToTask plugin
class) its ``setup_inference_params`` builds the call and ``convert_data_from_inference`` the task
data. An empty result fails that task only (``TASK_INFERENCE_EMPTY_RESULT``); a refused token or
a pre-processor that cannot run stops the job.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from .._errors import FatalSynapseError
from .client import AsyncSynapseClient, BackendMoved, SynapseHTTPError, TokenRejected
from .sync_client import SynapseClient

log = logging.getLogger(__name__)

RUNNING = "RUNNING"
TERMINAL = frozenset({"DEPLOY_FAILED", "UNHEALTHY", "UNAVAILABLE"})
PENDING = frozenset({"NOT_STARTED", "DEPLOYING"})
DEFERRED = "__synapse_deferred__"
POLL = "__synapse_poll__"


@dataclass(frozen=True)
class Timing:
    """How long to wait for things; tests shrink these."""

    poll_interval: float = 10.0
    ready_timeout: float = 600.0
    deferred_initial: float = 2.0
    deferred_factor: float = 1.5
    deferred_max: float = 10.0
    deferred_budget: float = 1800.0

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> Timing:
        known = cls.__dataclass_fields__
        return cls(**{k: float(v) for k, v in (options.get("timing") or {}).items() if k in known})


@dataclass(frozen=True)
class Served:
    """A running pre-processor: where inference requests go."""

    code: str
    version: str
    max_batch_size: int


class InferenceFailed(Exception):
    """One task's inference did not produce a result."""


class PreProcessor:
    def __init__(self, client: SynapseClient, release: int, agent: int, *, timing: Timing | None = None,
                 sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic,
                 on_wait: Callable[[str], None] | None = None) -> None:
        self.client = client
        self.release_id = release
        self.agent = agent
        self.timing = timing or Timing()
        self.sleep = sleep
        self.clock = clock
        self.on_wait = on_wait

    def release(self) -> tuple[str, str, dict]:
        try:
            release = self.client.get_plugin_release(self.release_id)
        except (TokenRejected, BackendMoved):
            raise
        except SynapseHTTPError as exc:
            raise FatalSynapseError(f"Pre-processor not found: release {self.release_id} ({exc})") from None
        config = release.get("config") if isinstance(release, dict) else None
        code = config.get("code") if isinstance(config, dict) else None
        version = release.get("version") if isinstance(release, dict) else None
        if not code or not version:
            raise FatalSynapseError(
                f"Invalid pre-processor configuration: release {self.release_id} lacks config.code or version"
            )
        return str(code), str(version), config

    def applications(self, code: str) -> list[dict]:
        apps = self.client.list_serve_applications({"plugin_code": code, "job__agent": self.agent})
        return [a for a in apps if isinstance(a, dict)]

    def statuses(self, code: str) -> list[str]:
        return [str(a.get("status")) for a in self.applications(code)]

    def ensure_running(self) -> Served:
        """Return once a serve application for the release runs on the agent (deploying if needed).

        Failed applications listed before this call are history (yesterday's failed deploy stays
        listed): only the applications that appear after our deploy (or the one carrying its
        ``job_id``), or that were still pending, are judged for a terminal status.
        """
        code, version, config = self.release()
        batch = _dig(config, "actions", "deployment", "serve_options", "batch", "max_batch_size")
        served = Served(code, version, int(batch) if isinstance(batch, int) and batch > 0 else 1)
        before = self.applications(code)
        statuses = [str(a.get("status")) for a in before]
        if RUNNING in statuses:
            return served
        deploy_job = None
        if not any(s in PENDING for s in statuses):
            deploy_job = self._deploy(code, config)
            old = {a.get("id") for a in before}
        else:
            old = {a.get("id") for a in before if str(a.get("status")) in TERMINAL}
        old.discard(None)
        started = self.clock()
        while True:
            apps = self.applications(code)
            statuses = [str(a.get("status")) for a in apps]
            if RUNNING in statuses:
                log.info("pre-processor %s is running", code)
                return served
            judged = [str(a.get("status")) for a in apps
                      if a.get("id") not in old or (deploy_job is not None and _job_of(a) == deploy_job)]
            bad = sorted(TERMINAL.intersection(judged))
            if bad:
                raise FatalSynapseError(f"Pre-processor not active: serve application of {code} is {bad[0]}")
            elapsed = self.clock() - started
            if elapsed >= self.timing.ready_timeout:
                raise FatalSynapseError(
                    f"Pre-processor did not become ready within timeout ({self.timing.ready_timeout:g} s; "
                    f"status: {', '.join(statuses) or 'no serve application'})"
                )
            if self.on_wait:
                self.on_wait(f"Still waiting for pre-processor {code}... ({int(elapsed)}s elapsed)")
            self.sleep(min(self.timing.poll_interval, max(0.0, self.timing.ready_timeout - elapsed)))

    def _look_up_agent(self) -> None:
        """``GET agents/?id=<agent>`` before deploying, as the SDK does to find the agent for its
        capacity check; only logged: an error or an agent missing from the answer is not fatal
        (the SDK skips the check on a 404; the deployment itself then says what is wrong)."""
        try:
            agents = self.client.list_agents({"id": self.agent})
        except (TokenRejected, BackendMoved):
            raise
        except SynapseHTTPError as exc:
            log.info("agent %s could not be looked up before deploying (%s); deploying anyway", self.agent,
                     type(exc).__name__)
            return
        if not any(str(a.get("id")) == str(self.agent) for a in agents):
            log.warning("agent %s is not among the agents the backend lists for this token; deploying anyway",
                        self.agent)

    def _deploy(self, code: str, config: dict) -> str | None:
        """Dispatch a deployment; returns its ``job_id`` when the backend gives one."""
        params = deploy_params(_dig(config, "actions", "inference", "required_resources"))
        self._look_up_agent()
        log.info("deploying pre-processor %s on agent %s", code, self.agent)
        try:
            answer = self.client.run_plugin(code, {"agent": self.agent, "action": "deployment", "params": params})
        except (TokenRejected, BackendMoved):
            raise
        except SynapseHTTPError as exc:
            # the type only: the message could carry URLs of the deployment backend
            raise FatalSynapseError(f"Pre-processor deployment dispatch failed ({type(exc).__name__})") from None
        job = answer.get("job_id") if isinstance(answer, dict) else None
        return str(job) if job is not None else None


def deploy_params(resources: Any) -> dict[str, Any]:
    """The deployment's ``params`` from the release's ``required_resources``, as the SDK's prepare step
    builds them: values taken as given (``required_gpu_count: 0`` stays 0: a CPU-only pre-processor
    must not ask for a GPU share), read with ``.get(key, default)``: ``num_cpus`` from
    ``required_cpu_count``, else ``num_cpus``, else 1; ``num_gpus`` from ``required_gpu_count``,
    else ``num_gpus``, else 0.1; ``num_replicas`` and ``memory`` (or ``memory_bytes``) only when
    the release declares them (a ``None`` is not sent)."""
    res = resources if isinstance(resources, dict) else {}
    params: dict[str, Any] = {
        "num_cpus": res.get("required_cpu_count", res.get("num_cpus", 1)),
        "num_gpus": res.get("required_gpu_count", res.get("num_gpus", 0.1)),
    }
    if res.get("num_replicas") is not None:
        params["num_replicas"] = res["num_replicas"]
    memory = res.get("memory")
    if memory is None:
        memory = res.get("memory_bytes")
    if memory is not None:
        params["memory"] = memory
    return params


def _job_of(app: dict) -> str | None:
    job = app.get("job_id", app.get("job"))
    if isinstance(job, dict):
        job = job.get("id")
    return str(job) if job is not None else None


async def infer(aio: AsyncSynapseClient, served: Served, agent: int, model: Any, image_url: str,
                params: dict[str, Any], timing: Timing,
                sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep, request: dict | None = None) -> Any:
    """One inference call, following deferred replies to the result (``request``: the call's
    ``params`` as a plugin's ``setup_inference_params`` built them)."""
    chosen = {"model": model} if model not in (None, "") else {}
    request = request if request is not None else {**chosen, "method": "post",
                                                   "json": {"image_path": image_url, **params}}
    reply = await aio.run_plugin(served.code, {"agent": agent, "action": "inference", "version": served.version,
                                               "params": request})
    delay = timing.deferred_initial
    deadline = time.monotonic() + timing.deferred_budget
    while isinstance(reply, dict) and reply.get(DEFERRED):
        status = str(reply.get("status", "")).lower()
        if status in ("done", "completed", "succeeded", "success"):
            return reply.get("result")
        if status in ("failed", "not_found", "error", "cancelled"):
            raise InferenceFailed(f"deferred inference {status}" + (f": {reply['error']}" if reply.get("error") else ""))
        ticket = reply.get("ticket") or reply.get("ticket_id") or reply.get("id")
        if ticket is None:
            raise InferenceFailed("deferred inference reply has no ticket")
        if time.monotonic() + delay > deadline:
            raise InferenceFailed(f"deferred inference still pending after {timing.deferred_budget:g} s")
        await sleep(delay)
        delay = min(delay * timing.deferred_factor, timing.deferred_max)
        reply = await aio.run_plugin(served.code, {
            "agent": agent, "action": "inference", "version": served.version,
            "params": {**chosen, "method": "post", "json": {POLL: ticket}},
        })
    return reply


def _dig(obj: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj
