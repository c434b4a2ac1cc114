"""Existing ToTask plugins as converters: a class with the SDK's hook methods, named ``package.module:Class``.

A ToTask plugin (synapse-api.md §1.1, §4) is a class with some of
``convert_data_from_file(primary_file_url, primary_file_name, data_file_url, data_file_name, task_data=None)``,
``convert_data_from_inference(inference_data, task_data=None)`` and
``setup_inference_params(primary_file_url, primary_file_name, data_files, *, model_id,
pre_processor_params, pre_processor_config, task_data)``. A plain class needs no ``synapse-sdk``;
a subclass of the SDK's ``ToTaskAction`` works where the SDK is installed (its constructor wants a
run context, so it is made without calling ``__init__``; the hooks use only their arguments).
What a hook returns is the task data, written unchanged (the SDK never reinterprets it).
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import math
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

from .._credentials import hide_env_credentials
from .._errors import UsageError
from .._plugin_output import plugin_code
from .._signals import OwnInterrupt, own_interrupts
from .taskdata import dumps_exact

FILE_HOOK = "convert_data_from_file"
INFERENCE_HOOK = "convert_data_from_inference"
PARAMS_HOOK = "setup_inference_params"
HOOKS = (FILE_HOOK, INFERENCE_HOOK, PARAMS_HOOK)


def _instantiate(cls: type, params: dict | None = None) -> Any:
    """``cls()`` when it takes no arguments; else an instance without ``__init__`` (the SDK's
    action needs ``(params, ctx)``). Such an instance gets what a hook may read of its run:
    ``self.params`` (the action's parameters, attribute access) and ``self.context.params`` (a dict)."""
    try:
        signature = inspect.signature(cls)
        required = [p for p in signature.parameters.values()
                    if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    except (TypeError, ValueError):
        required = ["?"]
    if not required:
        try:
            return cls()
        except TypeError:
            pass
    instance = cls.__new__(cls)
    given = dict(params or {})
    for name, value in (("params", SimpleNamespace(**given)), ("context", SimpleNamespace(params=given))):
        try:
            setattr(instance, name, value)
        except (AttributeError, TypeError):  # a read-only property of the class: leave it
            pass
    return instance


def job_params(job_name: str, method: str, options: dict[str, Any]) -> dict[str, Any]:
    """The ToTask parameters a job outside ``run`` has (``annotate --converter``), for a plugin that
    reads its run's parameters (``self.params.name``, ``self.context.params["target_specification_name"]``)
    as the SDK documents: what ``run`` gives it from the action's parameters, here from the job's
    name and options. Only parameters the job has are given."""
    params: dict[str, Any] = {"name": job_name, "method": method}
    keys = ("target_specification_name",) if method == "file" else (
        "pre_processor", "agent", "model", "pre_processor_params", "batch_size")
    params.update({k: options[k] for k in keys if options.get(k) is not None})
    return params


def load_plugin(target: str, *, needs: str, params: dict | None = None) -> Any:
    """The plugin object named ``package.module:Class`` (or ``package.module.Class``), checked to
    have the hook ``needs``; a one-line ``UsageError`` otherwise."""
    if not isinstance(target, str) or not target.strip():
        raise UsageError("converter: name a class as 'package.module:Class'")
    module_name, sep, attr = target.strip().partition(":")
    if not sep:
        module_name, _, attr = target.strip().rpartition(".")
    if not module_name or not attr:
        raise UsageError(f"converter {target!r}: name a class as 'package.module:Class'")
    try:
        with plugin_code():
            module = importlib.import_module(module_name)
    except ImportError as exc:
        raise UsageError(f"converter {target!r}: cannot import {module_name!r} ({exc})") from None
    except Exception as exc:  # the plugin's own module failed while loading
        raise UsageError(f"converter {target!r}: importing {module_name!r} failed: {type(exc).__name__}: {exc}") \
            from None
    cls = getattr(module, attr, None)
    if cls is None:
        raise UsageError(f"converter {target!r}: {module_name} has no {attr!r}")
    if not isinstance(cls, type):
        raise UsageError(f"converter {target!r}: {attr!r} is not a class")
    if not callable(getattr(cls, needs, None)):
        raise UsageError(f"converter {target!r}: {attr} has no {needs}() method")
    try:
        with plugin_code():
            return _instantiate(cls, params)
    except Exception as exc:
        raise UsageError(f"converter {target!r}: cannot create {attr}: {type(exc).__name__}: {exc}") from None


async def call_hook(hook: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``hook(*args, **kwargs)`` in a worker thread, where a ``KeyboardInterrupt`` it raises is
    its own error (``OwnInterrupt``: no signal raises one off the main thread), for ``hook_failure``
    to fail its task: taken for Ctrl-C, it stopped the job, and every resume met it again."""
    def call() -> Any:
        with own_interrupts():
            return hook(*args, **kwargs)

    return await asyncio.to_thread(call)


def hook_failure(hook: str, exc: BaseException) -> str:
    """The reason a task fails when a plugin's hook raised (the SDK fails that task and goes on).

    A plugin is arbitrary code that can read the Synapse credentials from the environment, so its
    message is scrubbed (URL queries) and every configured token is masked before it reaches
    failures.jsonl, the manifest, the result or the Synapse job's log."""
    from .._fetch import scrub

    kind, text = ("KeyboardInterrupt", str(exc.__cause__ or "")) if isinstance(exc, OwnInterrupt) else (
        type(exc).__name__, str(exc))
    return f"{hook}: {kind}: {scrub(hide_env_credentials(text), 200)}"


def json_problem(value: Any) -> str | None:
    """Why a hook's return cannot be sent as task data unchanged, or None.

    The SDK sends it with ``requests``' ``json=``; what JSON cannot hold must fail its task with a
    reason, not be changed on the way (orjson would write ``NaN`` as ``null`` without a word). An
    integer beyond 64 bits is JSON (``requests`` sends it exactly, and so do we)."""
    try:
        dumps_exact(value)
    except TypeError as exc:
        return f"the converter returned data that is not JSON ({exc})"
    except ValueError:  # NaN or infinity beside a big integer (Python's json refuses them): named below
        pass
    where = _non_finite(value, "")
    if where is not None:
        return f"the converter returned a number JSON cannot hold (NaN or infinity) at {where or '<root>'}"
    return None


def _non_finite(value: Any, path: str) -> str | None:
    if isinstance(value, float):
        return None if math.isfinite(value) else path
    if isinstance(value, dict):
        items = ((f"{path}.{k}" if path else str(k), v) for k, v in value.items())
    elif isinstance(value, list | tuple):
        items = ((f"{path}[{i}]", v) for i, v in enumerate(value))
    else:
        return None
    for where, item in items:
        found = _non_finite(item, where)
        if found is not None:
            return found
    return None


def task_data_of_line(record: dict) -> dict:
    """A task-shaped dict (``id``, ``data_unit.{id, files}``) from an exported line, for a hook's
    ``task_data`` when the backend is not asked for the task itself."""
    syn = record.get("synapse") if isinstance(record.get("synapse"), dict) else {}
    return {"id": syn.get("task_id"), "project": syn.get("project"),
            "data_unit": {"id": syn.get("data_unit_id"), "files": syn.get("files") or {}}}


def file_name_of(url: str) -> str:
    """The last path segment of a URL, without its query (a name for a file the line does not name)."""
    return url.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]


def converted_outcome(converted: Any, step: str, *, submit_empty: bool, label_file: str | None = None) -> Any:
    """What a plugin's conversion (``convert_data_from_file`` / ``_from_inference``) makes of a
    task, as the SDK submits it: nothing (or an empty result) fails the task, a value JSON cannot
    carry fails it naming ``step``, anything else is the task data, kept as it is (a custom label
    naming its format, ``any`` when it is of no known one). ``label_file``: the file method's label
    file (redacted), named by the empty result's reason as the file method's own empty document is
    (``formats.native.empty_failure`` decides it by method: no inference code for a file)."""
    from .._formats.detect import detect_input_format
    from .._formats.model import FormatError
    from .._formats.native import ANY, NATIVE_FORMATS, empty_failure, native_label, refused_as_empty
    from .._outcomes import Failed

    if refused_as_empty(converted, submit_empty=submit_empty):
        return empty_failure(label_file, made_by=f"the converter's {FILE_HOOK}" if label_file is not None else None)
    problem = json_problem(converted)
    if problem is not None:
        return Failed(f"{step}: {problem}")
    try:
        fmt = detect_input_format(converted)
    except FormatError:
        fmt = ANY
    return native_label(converted, fmt if fmt in NATIVE_FORMATS else ANY)
