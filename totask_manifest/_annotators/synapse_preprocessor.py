"""The ``synapse-preprocessor`` method: each line labeled by Synapse inference on its primary image.

``synapse.preprocessor`` talks to Synapse (the release, the serve application, the inference call
and its deferred replies); this annotator turns its results into outcomes. A result in the
backend's format (DM schema v1, the ``objects`` shape; with ``native: any`` any JSON) travels as it
is, as a custom label naming its format (``formats.native``); otherwise it (a Ground Truth label)
becomes the line's label (``native: convert`` converts all, refusing what would be lost unless
``allow_drop``). With ``converter`` (an existing ToTask plugin class) its
``setup_inference_params`` builds the call and ``convert_data_from_inference`` the task data. An
empty result fails that task only (``TASK_INFERENCE_EMPTY_RESULT``); a refused token or a
pre-processor that cannot run stops the job.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from .._credentials import run_params
from .._errors import UsageError
from .._jobs.run import JobRun
from .._options import Options, option
from .._outcomes import Failed, Item, Outcome
from .base import BatchAnnotator

if TYPE_CHECKING:
    from .._synapse.client import TokenRejected
    from .._synapse.preprocessor import Served
    from .._synapse.workers import TokenCheck


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
        # the Synapse client (aiohttp: a fifth of a second) on use: every annotate and chain
        # command imports this module for its options, and runs another method but seldom
        from .._synapse.preprocessor import PreProcessor, Timing
        from .._synapse.sync_client import SynapseClient

        super().__init__(context)
        options = context.options
        self.check(self.options, context.task_type)
        self.agent = int(options["agent"])
        self.model = options.get("model")
        # a credential it was given is stored as ``${VARIABLE}``: its value is read again here, never from job.json
        self.params = dict(run_params(options.get("pre_processor_params") or {}, "pre_processor_params"))
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
            from .._synapse.plugin import INFERENCE_HOOK, job_params, load_plugin

            self.plugin = load_plugin(options["converter"], needs=INFERENCE_HOOK,
                                      params=run_params(options.get("converter_params") or job_params(
                                          context.job_name, "inference", options), "converter_params"))
        self._release_config: dict | None = None

    @classmethod
    def check(cls, options: PreProcessorOptions, task_type: str) -> None:
        missing = [k for k in ("pre_processor", "agent") if getattr(options, k) in (None, "")]
        if missing:
            # the command line has no flags for them: say where they are given
            raise UsageError(f"method synapse-preprocessor needs {', '.join(missing)}: it runs as the ToTask action's "
                             "inference method, configured in its parameter file (totask-manifest run PARAMS.yaml "
                             "with method: inference, pre_processor, agent), or through the job options in Python")
        params = options.pre_processor_params
        if params is not None and not isinstance(params, dict):
            raise UsageError("pre_processor_params must be an object")
        # a credential kept masked (``${***}``), or by a variable unset now: refused before the job runs
        run_params(params or {}, "pre_processor_params")
        if options.converter_params:
            run_params(options.converter_params, "converter_params")

    def _ensure(self) -> Served:
        if self._served is None:
            self._served = self.pre.ensure_running()
            self.batch_size = max(self._requested_batch, self._served.max_batch_size, 1)
        return self._served

    def annotate_batch(self, items: list[Item]) -> list[Outcome]:
        served = self._ensure()

        async def window() -> list[Outcome]:
            from .._synapse.workers import TokenCheck

            token = TokenCheck(self.client.aio)  # made in the loop that runs the window
            return list(await asyncio.gather(*(self._one(served, item, token) for item in items)))

        return self.client.run(window())

    async def _one(self, served: Served, item: Item, token: TokenCheck) -> Outcome:
        url = item.record.get("source-ref")
        if not isinstance(url, str) or not url:
            return Failed("no image: the line has no source-ref (the primary file URL)")
        from .._formats.native import empty_failure
        from .._synapse.client import BackendMoved, SynapseHTTPError, TokenRejected
        from .._synapse.preprocessor import InferenceFailed, infer

        task = None
        if isinstance(item.task_id, int) and not isinstance(item.task_id, bool):
            # the SDK reads each task right before its inference call: fresh file URLs, current data
            from .._synapse.fresh_urls import fetch_task, primary_file, task_files

            try:
                task = await fetch_task(self.client.aio, item.task_id)
            except TokenRejected as exc:
                return await _refused_alone(exc, item, token, "task")
            except BackendMoved:
                raise
            except SynapseHTTPError as exc:
                return Failed(f"task: {exc}")
            url = primary_file(task_files(task))[1].get("url") or url
        from .._synapse.plugin import PARAMS_HOOK, hook_failure, json_problem

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
        except TokenRejected as exc:
            return await _refused_alone(exc, item, token, "inference")
        except BackendMoved:
            raise
        except (InferenceFailed, SynapseHTTPError) as exc:
            return Failed(f"inference: {exc}")
        if not result:
            return empty_failure()
        try:
            return await self._to_label(result, item, task)
        except Exception as exc:  # a reply that cannot be read fails its task only
            return Failed(f"inference result: {exc}")

    async def _plugin_request(self, served: Served, item: Item, url: str, task: dict | None) -> dict | None:
        """The call's ``params`` from the plugin's ``setup_inference_params`` (None: ours)."""
        from .._synapse.plugin import PARAMS_HOOK, call_hook, file_name_of, task_data_of_line

        hook = getattr(self.plugin, PARAMS_HOOK, None)
        if not callable(hook):
            return None
        if self._release_config is None:  # the SDK passes the release's config
            self._release_config = await asyncio.to_thread(lambda: self.pre.release()[2])
        from .._synapse.fresh_urls import primary_file, task_files
        from .._synapse.taskdata import file_name

        task = task or task_data_of_line(item.record)
        files = task_files(task)
        # the SDK's arguments: the primary is the first with a URL, a name is file_name_original, else
        # filename, else name, and data_files are the other files that have a URL
        _, primary = primary_file(files)
        data_files = [{"url": f["url"], "file_name": file_name(f), "specification_name": name}
                      for name, f in files.items() if not f.get("is_primary") and f.get("url")]
        params = await call_hook(
            hook, url, file_name(primary) or file_name_of(url), data_files, model_id=self.model,
            pre_processor_params=dict(self.params),
            pre_processor_config=self._release_config, task_data=task)
        return params if isinstance(params, dict) and params else None

    async def _to_label(self, result: Any, item: Item, task: dict | None = None) -> Outcome:
        from .._formats.detect import detect_input_format, to_label
        from .._formats.model import FormatError
        from .._formats.native import ANY, NATIVE_FORMATS, empty_failure, native_label, refused_as_empty
        from .._synapse.plugin import INFERENCE_HOOK, task_data_of_line

        if self.plugin is not None:  # the plugin's conversion is the task data, unchanged
            from .._synapse.plugin import call_hook, converted_outcome, hook_failure

            try:
                converted = await call_hook(getattr(self.plugin, INFERENCE_HOOK), result,
                                            task_data=task or task_data_of_line(item.record))
            except Exception as exc:  # the plugin's own failure fails this task, as in the SDK
                return Failed(hook_failure(INFERENCE_HOOK, exc))
            return converted_outcome(converted, INFERENCE_HOOK, submit_empty=self.submit_empty)
        try:
            fmt = detect_input_format(result)
        except FormatError:
            if self.native != "any":
                raise
            fmt = ANY
        if self.native != "convert" and (fmt in NATIVE_FORMATS or self.native == "any"):
            # ``native: any`` (ToTask's pass-through) keeps it as the SDK submits it: only a falsy
            # reply is "empty" there (``if not result:`` in ``AnnotateTaskDataStep._run_inference``,
            # steps/annotate_task_data.py:832, synapse-sdk 2026.2.17), refused in ``_one``; a reply
            # with no annotation (``{"image_1": []}``) is sent, the backend's 400 its task's failure
            if self.native != "any" and refused_as_empty(result, fmt, submit_empty=self.submit_empty):
                return empty_failure()
            return native_label(result, fmt)
        image_size = None
        if self.context.task_type == "object-detection" and fmt in ("synapse-objects", "dm-schema-v1"):
            image_size = (result.get("image_size") if isinstance(result, dict) else None) or await self._image_size(item)
        return to_label(result, fmt, self.context.task_type, image_size=image_size, allow_drop=self.allow_drop)

    async def _image_size(self, item: Item) -> Any:
        """Read from the image itself (headers only), without any Synapse credentials."""
        from .._fetch import Fetcher
        from .file_convert import read_image_size

        if self._fetcher is None:
            self._fetcher = Fetcher()
        return read_image_size(await self._fetcher.fetch(item.record["source-ref"]))

    def close(self) -> None:
        if self._fetcher is not None:
            self.client.run(self._fetcher.aclose())
            self._fetcher = None
        self.client.close()


async def _refused_alone(exc: TokenRejected, item: Item, token: TokenCheck, what: str) -> Outcome:
    """A 401 to one line's request: that line's failure unless the token's own check finds the token
    refused too (``workers.refused_alone``, the rule apply and export use); raised then (revoked:
    every later request would be), which stops the job as before."""
    from .._synapse.workers import refused_alone

    synapse = item.record.get("synapse")
    alone = await refused_alone(token, exc, synapse.get("project") if isinstance(synapse, dict) else None)
    if alone is None:
        raise exc
    return Failed(f"{what}: {alone}")
