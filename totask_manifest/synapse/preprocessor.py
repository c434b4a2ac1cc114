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

``PreProcessorAnnotator`` (method ``synapse-preprocessor``) wraps this in the Annotator
interface: a result in the backend's format (DM schema v1, the ``objects`` shape; with ``native:
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
from typing import Any, ClassVar

from ..annotators.base import BatchAnnotator, Failed, Item, Outcome
from ..errors import FatalSynapseError, UsageError
from ..jobs.run import JobRun
from ..options import Options, option
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


@dataclass(frozen=True)
class PreProcessorOptions(Options):
    """``--method synapse-preprocessor``'s options, set by the ToTask action (no flags)."""

    #: the pre-processor plugin release id
    pre_processor: int | None = option(None, cli=False, omit_default=True)
    agent: int | None = option(None, cli=False, omit_default=True)
    model: Any = option(None, cli=False, omit_default=True)
    pre_processor_params: dict | None = option(None, cli=False, omit_default=True)
    #: inference calls in flight
    batch_size: int | None = option(None, cli=False, omit_default=True)
    #: see ``Timing``
    timing: dict | None = option(None, cli=False, omit_default=True)
    native: str = option("keep", cli=False, omit_default=True)
    allow_drop: bool = option(False, cli=False, omit_default=True)
    submit_empty: bool = option(False, cli=False, omit_default=True)
    converter: str | None = option(None, cli=False, omit_default=True)
    converter_params: dict | None = option(None, cli=False, omit_default=True)


class PreProcessorAnnotator(BatchAnnotator):
    """Labels each line by Synapse inference on its primary image (``--method synapse-preprocessor``).

    Options: ``pre_processor`` (release id), ``agent``, ``model`` (optional), ``pre_processor_params``,
    ``batch_size`` (inference calls in flight), ``timing`` (see ``Timing``).
    """

    name: ClassVar[str] = "synapse-preprocessor"
    Options = PreProcessorOptions

    def __init__(self, context: JobRun) -> None:
        super().__init__(context)
        options = context.options
        self.check(self.options, context.task_type)
        self.agent = int(options["agent"])
        self.model = options.get("model")
        self.params = dict(options.get("pre_processor_params") or {})
        self.timing = Timing.from_options(options)
        self.client = SynapseClient(max_concurrency=max(8, int(options.get("batch_size") or 1)))
        self.pre = PreProcessor(self.client, int(options["pre_processor"]), self.agent, timing=self.timing)
        self._served: Served | None = None
        self._requested_batch = int(options.get("batch_size") or 1)
        self._fetcher: Any = None
        #: results in the backend's format travel as they are (as in ``FileAnnotator``)
        self.native: str = options.get("native") or "keep"
        self.allow_drop = bool(options.get("allow_drop"))
        #: a non-falsy result without annotations is kept (a ``schema: any`` run submits it, as the
        #: SDK does; a falsy one, ``{}`` or nothing, is never submitted, as in the SDK)
        self.submit_empty = bool(options.get("submit_empty"))
        self.plugin: Any = None
        if options.get("converter"):
            from .plugin import INFERENCE_HOOK, job_params, load_plugin

            self.plugin = load_plugin(options["converter"], needs=INFERENCE_HOOK,
                                      params=options.get("converter_params")
                                      or job_params(context.job_name, "inference", options))
        self._release_config: dict | None = None

    @classmethod
    def check(cls, options: PreProcessorOptions, task_type: str) -> None:
        missing = [k for k in ("pre_processor", "agent") if getattr(options, k) in (None, "")]
        if missing:
            raise UsageError(f"method synapse-preprocessor needs {', '.join(missing)}")
        params = options.pre_processor_params
        if params is not None and not isinstance(params, dict):
            raise UsageError("pre_processor_params must be an object")

    def _ensure(self) -> Served:
        if self._served is None:
            self._served = self.pre.ensure_running()
            self.batch_size = max(self._requested_batch, self._served.max_batch_size, 1)
        return self._served

    def annotate_batch(self, items: list[Item]) -> list[Outcome]:
        served = self._ensure()

        async def window() -> list[Outcome]:
            return list(await asyncio.gather(*(self._one(served, item) for item in items)))

        return self.client.run(window())

    async def _one(self, served: Served, item: Item) -> Outcome:
        url = item.record.get("source-ref")
        if not isinstance(url, str) or not url:
            return Failed("no image: the line has no source-ref (the primary file URL)")
        from ..formats.native import EMPTY_RESULT

        task = None
        if isinstance(item.task_id, int) and not isinstance(item.task_id, bool):
            # the SDK reads each task right before its inference call: fresh file URLs, current data
            from .fresh_urls import fetch_task, primary_file, task_files

            try:
                task = await fetch_task(self.client.aio, item.task_id)
            except (TokenRejected, BackendMoved):
                raise
            except SynapseHTTPError as exc:
                return Failed(f"task: {exc}")
            url = primary_file(task_files(task))[1].get("url") or url
        from .plugin import PARAMS_HOOK, hook_failure, json_problem

        try:
            request = await self._plugin_request(served, item, url, task) if self.plugin is not None else None
        except Exception as exc:  # the plugin's own failure fails this task, as in the SDK
            return Failed(hook_failure(PARAMS_HOOK, exc))
        problem = json_problem(request) if request is not None else None
        if problem is not None:  # it could not be sent: that task fails, as the SDK's request would
            return Failed(f"{PARAMS_HOOK}: {problem}")
        try:
            result = await infer(self.client.aio, served, self.agent, self.model, url, self.params, self.timing,
                                 request=request)
        except (TokenRejected, BackendMoved):
            raise
        except (InferenceFailed, SynapseHTTPError) as exc:
            return Failed(f"inference: {exc}")
        if not result:
            return Failed(EMPTY_RESULT)
        try:
            return await self._to_label(result, item, task)
        except Exception as exc:  # a reply that cannot be read fails its task only
            return Failed(f"inference result: {exc}")

    async def _plugin_request(self, served: Served, item: Item, url: str, task: dict | None) -> dict | None:
        """The call's ``params`` from the plugin's ``setup_inference_params`` (None: ours)."""
        from .plugin import PARAMS_HOOK, file_name_of, task_data_of_line

        hook = getattr(self.plugin, PARAMS_HOOK, None)
        if not callable(hook):
            return None
        if self._release_config is None:  # the SDK passes the release's config
            self._release_config = await asyncio.to_thread(lambda: self.pre.release()[2])
        from .fresh_urls import task_files

        task = task or task_data_of_line(item.record)
        files = task_files(task)
        primary = next((f for f in files.values() if isinstance(f, dict) and f.get("is_primary")), {})
        data_files = [{"url": f.get("url"), "file_name": f.get("file_name_original"), "specification_name": name}
                      for name, f in files.items() if isinstance(f, dict) and not f.get("is_primary")]
        params = await asyncio.to_thread(
            hook, url, primary.get("file_name_original") or file_name_of(url), data_files, model_id=self.model,
            pre_processor_params=dict(self.params),
            pre_processor_config=self._release_config, task_data=task)
        return params if isinstance(params, dict) and params else None

    async def _to_label(self, result: Any, item: Item, task: dict | None = None) -> Outcome:
        from ..formats.detect import detect_input_format, to_label
        from ..formats.model import FormatError
        from ..formats.native import ANY, EMPTY_RESULT, NATIVE_FORMATS, native_label, refused_as_empty
        from .plugin import INFERENCE_HOOK, task_data_of_line

        if self.plugin is not None:  # the plugin's conversion is the task data, unchanged
            from .plugin import hook_failure, json_problem

            try:
                converted = await asyncio.to_thread(getattr(self.plugin, INFERENCE_HOOK), result,
                                                    task_data=task or task_data_of_line(item.record))
            except Exception as exc:  # the plugin's own failure fails this task, as in the SDK
                return Failed(hook_failure(INFERENCE_HOOK, exc))
            if refused_as_empty(converted, submit_empty=self.submit_empty):
                return Failed(EMPTY_RESULT)
            problem = json_problem(converted)
            if problem is not None:
                return Failed(f"{INFERENCE_HOOK}: {problem}")
            try:
                fmt = detect_input_format(converted)
            except FormatError:
                fmt = ANY
            return native_label(converted, fmt if fmt in NATIVE_FORMATS else ANY)
        try:
            fmt = detect_input_format(result)
        except FormatError:
            if self.native != "any":
                raise
            fmt = ANY
        if self.native != "convert" and (fmt in NATIVE_FORMATS or self.native == "any"):
            if refused_as_empty(result, fmt, submit_empty=self.submit_empty):
                return Failed(EMPTY_RESULT)
            return native_label(result, fmt)
        image_size = None
        if self.context.task_type == "object-detection" and fmt in ("synapse-objects", "dm-schema-v1"):
            image_size = (result.get("image_size") if isinstance(result, dict) else None) or await self._image_size(item)
        return to_label(result, fmt, self.context.task_type, image_size=image_size, allow_drop=self.allow_drop)

    async def _image_size(self, item: Item) -> Any:
        """Read from the image itself (headers only), without any Synapse credentials."""
        from ..annotators.file import read_image_size
        from ..fetch import Fetcher

        if self._fetcher is None:
            self._fetcher = Fetcher()
        return read_image_size(await self._fetcher.fetch(item.record["source-ref"]))

    def close(self) -> None:
        if self._fetcher is not None:
            self.client.run(self._fetcher.aclose())
            self._fetcher = None
        self.client.close()


def _dig(obj: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj
