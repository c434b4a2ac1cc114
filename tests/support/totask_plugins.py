"""ToTask plugin classes written the SDK's way, used as converters by the tests (no synapse-sdk needed).

``calls`` records every hook call with its arguments, so a test can assert what the SDK would
have passed.
"""

from __future__ import annotations

from typing import Any

import httpx

calls: list[tuple[str, tuple, dict]] = []


class PassThrough:
    """The SDK template's file plugin: download the data file and return what it holds, marked."""

    def convert_data_from_file(self, primary_file_url: str, primary_file_name: str, data_file_url: str,
                               data_file_name: str, task_data: Any = None) -> dict:
        calls.append(("convert_data_from_file",
                      (primary_file_url, primary_file_name, data_file_url, data_file_name), {"task_data": task_data}))
        doc = httpx.get(data_file_url, timeout=10).raise_for_status().json()
        doc.setdefault("extra", {})["converted_by"] = "PassThrough"
        return doc

    def convert_data_from_inference(self, inference_data: Any, task_data: Any = None) -> dict:
        calls.append(("convert_data_from_inference", (inference_data,), {"task_data": task_data}))
        return {"annotations": {"image_1": [{"id": "inf0000001", "tool": "bounding_box",
                                             "classification": {"class": inference_data["label"]}}]},
                "annotationsData": {"image_1": [{"id": "inf0000001", "coordinate": inference_data["box"]}]},
                "extra": {"converted_by": "PassThrough"}}

    def setup_inference_params(self, primary_file_url: str, primary_file_name: str, data_files: list, *,
                               model_id: Any, pre_processor_params: dict, pre_processor_config: dict,
                               task_data: Any) -> dict:
        calls.append(("setup_inference_params", (primary_file_url, primary_file_name, data_files),
                      {"model_id": model_id, "pre_processor_params": pre_processor_params}))
        return {"model": model_id, "method": "post",
                "json": {"image_path": primary_file_url, "from_plugin": True, **pre_processor_params}}


class NeedsContext(PassThrough):
    """Like the SDK's ``ToTaskAction`` subclass: its constructor wants a run context."""

    def __init__(self, params: dict, ctx: Any) -> None:  # never called by totask-manifest
        raise AssertionError("the converter must be made without its run context")

    def convert_data_from_file(self, *args: Any, **kwargs: Any) -> dict:
        # what an SDK action's hook may read of its run: self.params (attributes), self.context.params (a dict)
        calls.append(("context", (getattr(self.params, "name", None), self.context.params.get("name"),
                                  self.context.params.get("target_specification_name")), {}))
        return super().convert_data_from_file(*args, **kwargs)


class Empty:
    """A plugin whose conversion holds nothing: the task must not be submitted."""

    def convert_data_from_file(self, primary_file_url, primary_file_name, data_file_url, data_file_name,
                               task_data=None) -> dict:
        return {"annotations": {"image_1": []}, "annotationsData": {"image_1": []}}


class Misbehaving(PassThrough):
    """A plugin that goes wrong differently per task, by the task's position in ``task_data``'s data
    unit file name (``0.json``, ``1.json``...): it raises with the Synapse token (read from the
    environment, as any plugin can) in its message, returns a value JSON cannot hold, returns NaN,
    or converts properly. Each must fail (or write) only its own task."""

    def _misbehave(self, index: int) -> Any:
        import os

        if index == 0:
            raise RuntimeError(f"backend refused token {os.environ.get('SYNAPSE_ACCESS_TOKEN')}")
        if index == 1:
            return {"annotations": {"image_1": [{"id": "a", "tool": "bounding_box",
                                                 "classification": {"class": {"car", "bus"}}}]}}
        if index == 2:
            return {"annotations": {"image_1": [{"id": "a", "tool": "bounding_box", "classification": {"class": "c"}}]},
                    "annotationsData": {"image_1": [{"id": "a", "coordinate": {"x": float("nan"), "y": 1,
                                                                               "width": 2, "height": 3}}]}}
        return None

    def convert_data_from_file(self, primary_file_url, primary_file_name, data_file_url, data_file_name,
                               task_data=None) -> dict:
        index = int(str(data_file_name).split(".", 1)[0])
        return self._misbehave(index) or super().convert_data_from_file(
            primary_file_url, primary_file_name, data_file_url, data_file_name, task_data=task_data)

    def convert_data_from_inference(self, inference_data: Any, task_data: Any = None) -> dict:
        return self._misbehave(int(inference_data["index"])) or super().convert_data_from_inference(
            inference_data, task_data=task_data)
