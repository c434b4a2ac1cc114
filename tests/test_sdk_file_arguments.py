"""What an existing ToTask plugin's hooks are given, file by file, when the backend's files are not
in the contract server's usual shape: the SDK's rules (``AnnotateTaskDataStep`` of synapse-sdk
2026.2.17, ``plugins/actions/to_task/steps/annotate_task_data.py``) are

* a file's name is its ``file_name_original``, else ``filename``, else ``name`` (``_get_file_name``);
* the primary file is the first with ``is_primary`` and a ``url`` (``_extract_primary_file``);
* ``data_files`` for ``setup_inference_params`` are the non-primary files that have a ``url``, each
  ``{url, file_name, specification_name}`` (``_extract_data_files``): a file without a URL is left out.

Real contract server and file server on 127.0.0.1; the tasks are read right before converting, as
the SDK reads them, so the backend's own file entries reach the hooks.
"""

from __future__ import annotations

import pytest

from tests.support import totask_plugins
from totask_manifest import ToTaskAction
from totask_manifest import _api as api
from totask_manifest._jobs.config import JobConfig
from totask_manifest._synapse.export import export_tasks
from totask_manifest.testing.builders import seed_tasks

pytest_plugins = ["totask_manifest.testing.fixtures"]

SPEC = "annotation_data"


def label(i: int) -> dict:
    return {"annotations": {"image_1": [{"id": f"Bx{i:08d}", "tool": "bounding_box",
                                         "classification": {"class": "car"}}]},
            "annotationsData": {"image_1": [{"id": f"Bx{i:08d}", "coordinate": {"x": 1, "y": 2, "width": 3,
                                                                              "height": 4}}]}}


def seed_backend_names(synapse, files, n: int) -> int:
    """Tasks whose files carry ``filename`` (not ``file_name_original``), a primary with no URL
    before the real one, and a non-primary ``depth`` file with no URL."""
    pid = seed_tasks(synapse, files, n, label=label)
    for task in synapse.project_tasks(pid):
        unit = synapse.data_units[task["data_unit"]]["files"]
        i = task["id"]
        image, data = unit["image_1"], unit[SPEC]
        unit.clear()
        unit["thumbnail"] = {"url": None, "is_primary": True, "filename": "thumb.png"}
        unit["image_1"] = {"url": image["url"], "is_primary": True, "filename": f"img-{i}.png"}
        unit[SPEC] = {"url": data["url"], "is_primary": False, "name": f"label-{i}.json"}
        unit["depth"] = {"url": None, "is_primary": False, "filename": "depth.bin"}
    return pid


def test_convert_data_from_file_gets_the_sdks_file_names(synapse, files, client, tmp_path) -> None:
    totask_plugins.calls.clear()
    pid = seed_backend_names(synapse, files, 2)
    manifest = tmp_path / "export.manifest"
    export_tasks(pid, str(manifest), client=client)
    config = JobConfig(job_name="names", input=str(manifest), output_root=str(tmp_path / "jobs"),
                       label_attribute="boxes", task_type="object-detection", method="file",
                       options={"target_specification_name": SPEC,
                                "converter": "tests.support.totask_plugins:PassThrough"})
    result = api.annotate(config)
    assert result.metrics["success"] == 2, result.metrics
    calls = sorted(c[1] for c in totask_plugins.calls if c[0] == "convert_data_from_file")
    want = []
    for task in sorted(synapse.project_tasks(pid), key=lambda t: t["id"]):
        unit = synapse.data_units[task["data_unit"]]["files"]
        want.append((unit["image_1"]["url"], f"img-{task['id']}.png", unit[SPEC]["url"], f"label-{task['id']}.json"))
    assert calls == sorted(want)


@pytest.mark.slow
def test_setup_inference_params_gets_the_sdks_primary_name_and_data_files(synapse, files, tmp_path) -> None:
    totask_plugins.calls.clear()
    pid = seed_backend_names(synapse, files, 2)
    rel = synapse.add_release("det", version="2.0.0")
    synapse.inference = lambda body: {"label": "dog", "box": {"x": 1, "y": 2, "width": 3, "height": 4}}
    params = {"name": "Names_Inference", "project": pid, "agent": 1, "method": "inference", "pre_processor": rel,
              "model": 7, "converter": "tests.support.totask_plugins:PassThrough"}
    result = ToTaskAction(params=params, output_root=str(tmp_path), timing={"poll_interval": 0.01}).start()
    assert result["status"] == "SUCCEEDED" and "success=2" in result["message"], result
    calls = sorted((c[1] for c in totask_plugins.calls if c[0] == "setup_inference_params"), key=lambda a: a[1])
    want = []
    for task in sorted(synapse.project_tasks(pid), key=lambda t: t["id"]):
        unit = synapse.data_units[task["data_unit"]]["files"]
        data_files = [{"url": unit[SPEC]["url"], "file_name": f"label-{task['id']}.json", "specification_name": SPEC}]
        want.append((unit["image_1"]["url"], f"img-{task['id']}.png", data_files))
    assert calls == want
