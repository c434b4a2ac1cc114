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

import importlib
import inspect
from types import SimpleNamespace
from typing import Any

from ..errors import UsageError

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
        return _instantiate(cls, params)
    except Exception as exc:
        raise UsageError(f"converter {target!r}: cannot create {attr}: {type(exc).__name__}: {exc}") from None


def task_data_of_line(record: dict) -> dict:
    """A task-shaped dict (``id``, ``data_unit.{id, files}``) from an exported line, for a hook's
    ``task_data`` when the backend is not asked for the task itself."""
    syn = record.get("synapse") if isinstance(record.get("synapse"), dict) else {}
    return {"id": syn.get("task_id"), "project": syn.get("project"),
            "data_unit": {"id": syn.get("data_unit_id"), "files": syn.get("files") or {}}}


def file_name_of(url: str) -> str:
    """The last path segment of a URL, without its query (a name for a file the line does not name)."""
    return url.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]
