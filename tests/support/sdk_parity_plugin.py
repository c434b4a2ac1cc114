"""A ToTask plugin for the REAL synapse-sdk, run by ``tests/test_sdk_parity.py`` in a Python 3.12 venv.

This module is imported by ``python -m synapse_sdk.plugins.entrypoint`` (the SDK's own Ray-job entry
point) with ``SYNAPSE_ACTION_ENTRYPOINT=sdk_parity_plugin.PassThroughToTask``; it must not import
``totask_manifest`` (the project's package is not installed in that venv).

The converter is the simplest faithful plugin: the file method downloads the target file (without
Synapse credentials, as a plugin's ``requests.get`` does) and returns its JSON unchanged; the
inference method asks the pre-processor with the parameters of the SDK's own docstring example
(``synapse_sdk/plugins/actions/to_task/action.py``, ``setup_inference_params``) and returns the
reply unchanged. Whatever the SDK then writes is what a task gets from Synapse's own ToTask.
"""

from __future__ import annotations

from typing import Any

import requests
from synapse_sdk.plugins.actions.to_task import ToTaskAction


class PassThroughToTask(ToTaskAction):
    """``convert_data_from_file`` = the file's JSON; ``convert_data_from_inference`` = the reply."""

    def convert_data_from_file(self, primary_file_url: str, primary_file_name: str | None, data_file_url: str,
                               data_file_name: str | None, task_data: dict[str, Any] | None = None) -> dict[str, Any]:
        response = requests.get(data_file_url, timeout=30)
        response.raise_for_status()
        return response.json()

    def convert_data_from_inference(self, inference_data: Any, task_data: dict[str, Any] | None = None) -> Any:
        return inference_data

    def setup_inference_params(self, primary_file_url: str, primary_file_name: str | None,
                               data_files: list[dict[str, Any]], *, model_id: int | None = None,
                               pre_processor_params: dict[str, Any] | None = None,
                               pre_processor_config: dict[str, Any] | None = None,
                               task_data: dict[str, Any] | None = None) -> dict[str, Any]:
        return {"model": model_id, "method": "post",
                "json": {"image_path": primary_file_url, **(pre_processor_params or {})}}


class ContextReadingToTask(PassThroughToTask):
    """A plugin written the way the SDK documents it: it reads its run's parameters through
    ``self.context.params`` and ``self.params`` (``action.py``: "use self.context") and the task through
    ``task_data``. It stamps what it read into ``extra.image_1.converted_by``, so a runner that does not
    give a plugin what the SDK gives it writes other data (or fails) instead of passing silently."""

    def convert_data_from_file(self, primary_file_url: str, primary_file_name: str | None, data_file_url: str,
                               data_file_name: str | None, task_data: dict[str, Any] | None = None) -> dict[str, Any]:
        doc = super().convert_data_from_file(primary_file_url, primary_file_name, data_file_url, data_file_name,
                                             task_data=task_data)
        doc.setdefault("extra", {}).setdefault("image_1", {})["converted_by"] = {
            "task": (task_data or {}).get("id"),
            "data_unit": ((task_data or {}).get("data_unit") or {}).get("id"),
            "spec": self.context.params["target_specification_name"],
            "job": self.params.name,
            "primary": primary_file_name,
            "data_file": data_file_name,
        }
        return doc
